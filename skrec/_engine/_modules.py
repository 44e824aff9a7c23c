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

# (user, item) pairs per block of the MLP when scoring a grid.
GRID_BLOCK_PAIRS = 8192


ARCHITECTURES = {
    # name: (has an MLP, product of the embeddings)
    "neumf": (True, "dot"),
    "mlp": (True, None),
    "gmf": (False, "weighted"),
    "mf": (False, "dot"),
}


class EmbeddingMLP(nn.Module):
    """User and item embeddings fed to an MLP, fused with their product and biases.

    The score of a (user, item) pair with side features ``x`` is, for the
    default ``architecture="neumf"``::

        b + b_u + b_i + p_u . q_i + w . MLP([p_u, q_i, x])

    The MLP on the concatenation is the network of the seed design; the dot
    product and the bias terms give it the structure of biased matrix
    factorization, which an MLP learns poorly on its own. The dot product has no
    learned scale on purpose: a free scale would let the model shrink the
    embeddings and escape their L2 penalty. The other architectures keep the
    biases and drop terms: ``"mlp"`` the product, ``"mf"`` the MLP (biased
    matrix factorization), and ``"gmf"`` the MLP, with a learned weight per
    dimension of the product, ``h . (p_u * q_i)`` (generalized matrix
    factorization). Without an MLP, side features enter through a linear
    term ``v . x``.

    A user's embedding and bias are one row ``[p_u, b_u]`` of one table (and
    likewise for items), so a batch costs one lookup per table. ``embed`` and
    ``score`` split the forward pass so that the trainer can penalise the very
    rows the batch looked up.
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
        architecture="neumf",
    ):
        super().__init__()
        has_mlp, self.product = ARCHITECTURES[architecture]
        self.user_table = _embedding_with_bias(n_users, embedding_dim)
        self.item_table = _embedding_with_bias(n_items, embedding_dim)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self.mlp = self.output = self.feature_weights = None
        if n_features and not has_mlp:
            self.feature_weights = nn.Linear(n_features, 1, bias=False)
        if has_mlp:
            self.mlp, mlp_width = _mlp(
                2 * embedding_dim + n_features, hidden_layer_sizes, activation, dropout
            )
            self.output = nn.Linear(mlp_width, 1, bias=False)
        if self.product == "weighted":
            self.product_weight = nn.Parameter(torch.ones(embedding_dim))

    def forward(self, users, items, features=None):
        return self.score(*self.embed(users, items), features)

    def embed(self, users, items):
        """The table rows ``[p, b]`` of ``users`` and of ``items``."""
        return self.user_table(users), self.item_table(items)

    def score(self, user_rows, item_rows, features=None):
        """Scores of pairs given their table rows and side features."""
        p, user_bias = user_rows[:, :-1], user_rows[:, -1]
        q, item_bias = item_rows[:, :-1], item_rows[:, -1]
        terms = []
        if self.mlp is not None:
            mlp_input = [p, q] if features is None else [p, q, features]
            terms.append(self.output(self.mlp(torch.cat(mlp_input, dim=1))).squeeze(1))
        if self.product == "dot":
            terms.append((p * q).sum(dim=1))
        elif self.product == "weighted":
            terms.append((p * q) @ self.product_weight)
        if self.feature_weights is not None and features is not None:
            terms.append(self.feature_weights(features).squeeze(1))
        return _summed(terms) + user_bias + item_bias + self.global_bias

    def score_matrix(self, users, items):
        """Scores of every (user, item) pair without side features.

        The first layer of the MLP is linear in the concatenation ``[p, q]``, so
        it is computed once per user and once per item and the two are summed
        for every pair: several times less work than scoring the pairs one by
        one, which is what ranking all items for a user costs.
        """
        user_rows, item_rows = self.embed(users, items)
        p, user_bias = user_rows[:, :-1], user_rows[:, -1]
        q, item_bias = item_rows[:, :-1], item_rows[:, -1]
        terms = []
        if self.mlp is not None:
            terms.append(self._mlp_matrix(p, q))
        if self.product == "dot":
            terms.append(p @ q.T)
        elif self.product == "weighted":
            terms.append((p * self.product_weight) @ q.T)
        bias = user_bias[:, None] + item_bias[None, :] + self.global_bias
        return _summed(terms) + bias

    def _mlp_matrix(self, p, q):
        """The MLP's score of every pair of rows of ``p`` and ``q``."""
        dim = p.shape[1]
        if len(self.mlp) == 0:
            weight = self.output.weight[0]
            return (p @ weight[:dim])[:, None] + (q @ weight[dim:])[None, :]
        first, rest = self.mlp[0], self.mlp[1:]
        hidden_user = p @ first.weight[:, :dim].T + first.bias
        hidden_item = q @ first.weight[:, dim : 2 * dim].T
        mlp_score = hidden_user.new_empty((len(p), len(q)))
        # Blocks of rows small enough for the (rows, items, width) hidden
        # tensors to stay in cache: the grid is memory-bound otherwise.
        rows = max(1, GRID_BLOCK_PAIRS // max(1, len(q)))
        for start in range(0, len(p), rows):
            block = slice(start, start + rows)
            hidden = hidden_user[block, None, :] + hidden_item[None, :, :]
            hidden = _forward_in_place(rest, hidden)
            mlp_score[block] = self.output(hidden).squeeze(-1)
        return mlp_score

    def embedding_tables(self):
        """The user and item tables, whose row 0 stands for an unknown ID."""
        return {"user": self.user_table, "item": self.item_table}


def _summed(terms):
    """The sum of a non-empty list of tensors, added left to right."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


# Activations applied in place when scoring a grid: the (users, items, width)
# tensors are large, and on the CPU a fresh output costs more than the
# activation itself.
IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_, nn.Sigmoid: torch.sigmoid_}


def _forward_in_place(layers, hidden):
    """``layers(hidden)`` with the activations done in place; for inference."""
    for layer in layers:
        if type(layer) in IN_PLACE:
            hidden = IN_PLACE[type(layer)](hidden)
        elif not isinstance(layer, nn.Identity | nn.Dropout):
            hidden = layer(hidden)
    return hidden


def _embedding_with_bias(n_rows, embedding_dim):
    """A table of rows ``[p, b]``: small random vectors ``p``, biases ``b`` at 0."""
    table = nn.Embedding(n_rows, embedding_dim + 1)
    with torch.no_grad():
        nn.init.normal_(table.weight[:, :-1], std=EMBEDDING_INIT_STD)
        table.weight[:, -1] = 0.0
    return table


def _mlp(n_inputs, hidden_layer_sizes, activation, dropout):
    layers = []
    for width in hidden_layer_sizes:
        layers += [nn.Linear(n_inputs, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_inputs = width
    return nn.Sequential(*layers), n_inputs
