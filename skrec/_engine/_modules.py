"""Neural network modules: tables and layers only, no training logic.

Every module takes ``(users, items, features)`` -- int64 codes and an optional
float32 matrix -- and returns one score per row. Row 0 of every embedding table
is reserved for IDs that were not seen in fit.
"""

import torch
from torch import nn

ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}

# Small initial embeddings keep the product branch near zero at the start, so
# early training fits the biases first, as biased matrix factorization does.
EMBEDDING_INIT_STD = 0.05


class EmbeddingMLP(nn.Module):
    """User and item embeddings fed to an MLP, fused with their product and biases.

    The score of a (user, item) pair with side features ``x`` is::

        b + b_u + b_i + p_u . q_i + w . MLP([p_u, q_i, x])

    The MLP on the concatenation is the network of the seed design; the dot
    product and the bias terms give it the structure of biased matrix
    factorization, which an MLP learns poorly on its own. The dot product has no
    learned scale on purpose: a free scale would let the model shrink the
    embeddings and escape their L2 penalty.
    """

    def __init__(
        self,
        n_users,
        n_items,
        n_features=0,
        embedding_dim=32,
        hidden_layer_sizes=(64, 32),
        activation="relu",
        dropout=0.0,
    ):
        super().__init__()
        self.user_embedding = _embedding(n_users, embedding_dim, EMBEDDING_INIT_STD)
        self.item_embedding = _embedding(n_items, embedding_dim, EMBEDDING_INIT_STD)
        self.user_bias = _embedding(n_users, 1, 0.0)
        self.item_bias = _embedding(n_items, 1, 0.0)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self.mlp, mlp_width = _mlp(
            2 * embedding_dim + n_features, hidden_layer_sizes, activation, dropout
        )
        self.output = nn.Linear(mlp_width, 1, bias=False)

    def forward(self, users, items, features=None):
        p = self.user_embedding(users)
        q = self.item_embedding(items)
        mlp_input = [p, q] if features is None else [p, q, features]
        mlp_score = self.output(self.mlp(torch.cat(mlp_input, dim=1)))
        bias = self.user_bias(users) + self.item_bias(items)
        return (mlp_score + bias).squeeze(1) + (p * q).sum(dim=1) + self.global_bias

    def embedding_tables(self):
        """The tables whose row 0 stands for an unknown ID, by kind."""
        return {
            "user": [self.user_embedding, self.user_bias],
            "item": [self.item_embedding, self.item_bias],
        }


MODULES = {"mlp": EmbeddingMLP}


def _embedding(n_rows, dim, std):
    table = nn.Embedding(n_rows, dim)
    nn.init.normal_(table.weight, std=std) if std > 0 else nn.init.zeros_(table.weight)
    return table


def _mlp(n_inputs, hidden_layer_sizes, activation, dropout):
    layers = []
    for width in hidden_layer_sizes:
        layers += [nn.Linear(n_inputs, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_inputs = width
    return nn.Sequential(*layers), n_inputs
