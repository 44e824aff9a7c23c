"""Neural network modules: tables and layers only, no training logic.

Every module takes ``(users, items, features)`` -- int64 codes and an optional
float32 matrix -- and returns one score per row. Row 0 of every embedding table
is reserved for IDs that were not seen in fit.
"""

import warnings

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

# Pairs per table row from which the MLP's first layer is computed once per
# table row: below it, the matrix product over the whole table and the gather
# cost more than the product over the batch's rows.
PROJECTED_ROWS_PER_TABLE_ROW = 2


ARCHITECTURES = {
    # name: (has an MLP, product of the embeddings, the kinds of rows whose
    # embeddings gain a sum over their implicit history)
    "neumf": (True, "dot", ()),
    "mlp": (True, None, ()),
    "gmf": (False, "weighted", ()),
    "mf": (False, "dot", ()),
    "svdpp": (False, "dot", ("user", "item")),
    "svdpp_user": (False, "dot", ("user",)),
}

# Initial scale of the history tables: their sums start near zero, so training
# starts as plain matrix factorization.
HISTORY_INIT_STD = 0.01


def _other(kind):
    return "item" if kind == "user" else "user"


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

    With ``biases=False`` the three bias terms are left out.

    The first ``n_user_features`` columns of ``x`` describe the user and the
    next ``n_item_features`` the item; the module keeps a table of them per
    user and per item (``user_side`` and ``item_side``, set by the estimator),
    which replaces the given values for known IDs and lets ``score_matrix``
    score every item. An unknown ID (code 0) keeps the values it is given:
    that is how a new user or item gets a prediction from its features.

    A user's embedding and bias are one row ``[p_u, b_u]`` of one table (and
    likewise for items), so a batch costs one lookup per table.
    ``score_with_rows`` returns the rows it looked up with the scores, so that
    the trainer can penalise the very rows of the batch.
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
        n_user_features=0,
        n_item_features=0,
        biases=True,
    ):
        super().__init__()
        has_mlp, self.product, self.history_kinds = ARCHITECTURES[architecture]
        self.biases = biases
        self.register_buffer("user_side", torch.zeros(n_users, n_user_features))
        self.register_buffer("item_side", torch.zeros(n_items, n_item_features))
        self.user_table = _embedding_with_bias(n_users, embedding_dim)
        self.item_table = _embedding_with_bias(n_items, embedding_dim)
        self.history_tables = None
        if self.history_kinds:
            # A user's sum runs over a table of item vectors, an item's over
            # one of user vectors: each table is named by the kind of its rows.
            n_rows = {"user": n_users, "item": n_items}
            self.history_tables = nn.ParameterDict(
                {
                    _other(kind): _small_table(n_rows[_other(kind)], embedding_dim)
                    for kind in self.history_kinds
                }
            )
            self.set_history(
                torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
            )
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
        return self.score_with_rows(users, items, features)[0]

    def score_with_rows(self, users, items, features=None):
        """Scores of pairs, and the table rows ``[p, b]`` they looked up, on
        which the trainer puts its penalty."""
        features = self.side_features(users, items, features)
        user_rows, item_rows = self.embed(users, items)
        with_history = self.with_history(user_rows, item_rows, users, items)
        scores = self.score(*with_history, features, codes=(users, items))
        return scores, user_rows, item_rows

    def set_history(self, users, items):
        """Take the (user, item) code pairs whose implicit histories ``svdpp``
        sums: each user's items and each item's users."""
        n_rows = {
            "user": self.user_table.num_embeddings,
            "item": self.item_table.num_embeddings,
        }
        codes = {"user": users, "item": items}
        counts = {
            kind: torch.bincount(codes[kind], minlength=n_rows[kind]) for kind in codes
        }
        norms = {kind: counts[kind].clamp(min=1).float().rsqrt() for kind in codes}
        for kind in ("user", "item"):
            other = _other(kind)
            order = torch.argsort(codes[kind], stable=True)
            self.register_buffer(f"{kind}_history_indptr", _offsets(counts[kind]))
            self.register_buffer(f"{kind}_history", codes[other][order])
            # Each kind's weights in its own row order, and the other kind's:
            # the latter make this matrix the transpose of the other's.
            self.register_buffer(
                f"{kind}_history_weights", norms[kind][codes[kind][order]]
            )
            self.register_buffer(
                f"{kind}_history_transposed", norms[other][codes[other][order]]
            )

    def with_history(self, user_rows, item_rows, users, items):
        """The table rows with, for ``svdpp``, the normalised sums of the
        history tables over each user's items and each item's users added to
        the embeddings (SVD++ on both sides): ``p_u + |N(u)|^-1/2 sum_j y_j``;
        for ``svdpp_user``, on the user's side only."""
        if "user" in self.history_kinds:
            user_rows = _plus_embedding(user_rows, self._history_sums("user")[users])
        if "item" in self.history_kinds:
            item_rows = _plus_embedding(item_rows, self._history_sums("item")[items])
        return user_rows, item_rows

    def _history_sums(self, kind):
        """Every user's (item's) normalised sum, as one sparse product.

        Summing for all rows costs one pass over the interactions per step,
        which sparse kernels do faster than gathering per batch row up to
        millions of interactions.
        """
        other = _other(kind)
        return _SparseProduct.apply(
            self._history_matrix(kind, f"{kind}_history_weights"),
            self._history_matrix(other, f"{other}_history_transposed"),
            self.history_tables[other],
        )

    def _history_matrix(self, kind, weights):
        indptr = getattr(self, f"{kind}_history_indptr")
        n_columns = getattr(self, f"{_other(kind)}_history_indptr").numel() - 1
        with warnings.catch_warnings():
            # torch flags its CSR support as beta; the product used here is
            # covered by skrec's tests.
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            return torch.sparse_csr_tensor(
                indptr,
                getattr(self, f"{kind}_history"),
                getattr(self, weights),
                size=(len(indptr) - 1, n_columns),
                # Built from sorted codes, valid by construction.
                check_invariants=False,
            )

    def factorizes(self):
        """Whether every score is a dot product of a user-side and an
        item-side vector plus terms that do not depend on the item: true
        without an MLP, or with one of no hidden layer, whose output layer is
        linear in the embeddings."""
        return self.mlp is None or len(self.mlp) == 0

    def user_states(self, users, leave_out=None):
        """The user side of a factorized score, and the table rows ``[p, b]``
        looked up.

        ``leave_out``, item codes of the users' own interactions, one per
        user, takes each out of its user's history sum (``svdpp`` and
        ``svdpp_user``): a training row's state must not contain the item it
        predicts (as FISM, Kabbur et al. 2013, leaves it out), or the model
        learns to score the items a user already has, which on short
        histories weigh much in the sum, and which it never recommends.

        With ``item_outputs``, ``score(u, i) = states_u . outputs_i + c_u``,
        where ``c_u`` (the global and user biases, user and per-row features)
        is the same for every item and cancels in a softmax over items.
        """
        user_rows = self.user_table(users)
        p = user_rows[:, :-1]
        if "user" in self.history_kinds:
            p = p + self._history_sums("user")[users]
            if leave_out is not None:
                p = p - self._own_history_terms(users, leave_out)
        return self.states_of(p), user_rows

    def _own_history_terms(self, users, items):
        """Each item's term in its user's normalised history sum."""
        indptr = self.user_history_indptr
        counts = (indptr[users + 1] - indptr[users]).clamp(min=1)
        return self.history_tables["item"][items] * counts.float().rsqrt()[:, None]

    def states_of(self, p):
        """The user side of a factorized score (see ``user_states``) of user
        embeddings ``p``, history sums included."""
        parts = [p.new_ones(len(p), 1)]
        if self.product == "weighted":
            parts.insert(0, p * self.product_weight)
        elif self.product == "dot":
            parts.insert(0, p)
        return torch.cat(parts, dim=1)

    def session_history(self, items, owners, n_sessions):
        """For ``svdpp``, the normalised sum of the history table over each
        session's items, as each user's in fit: ``|S|^-1/2 sum_j y_j``; zeros
        for the other architectures. ``owners`` gives each item's session."""
        dim = self.user_table.embedding_dim - 1
        sums = self.user_table.weight.new_zeros(n_sessions, dim)
        if "user" not in self.history_kinds:
            return sums
        sums.index_add_(0, owners, self.history_tables["item"][items])
        counts = torch.bincount(owners, minlength=n_sessions).clamp(min=1)
        return sums * counts.float().rsqrt()[:, None]

    def item_outputs(self, items):
        """The item side of a factorized score (see ``user_states``): ``[q,
        o]``, ``o`` being the item's bias and linear terms, and the table
        rows ``[q, b]`` looked up."""
        item_rows = self.item_table(items)
        q, bias = item_rows[:, :-1], item_rows[:, -1]
        if "item" in self.history_kinds:
            q = q + self._history_sums("item")[items]
        offset = bias if self.biases else torch.zeros_like(bias)
        x = self.item_side[items]
        if self.feature_weights is not None:
            _, item_columns = self._side_columns(0)
            offset = offset + x @ self.feature_weights.weight[0, item_columns]
        if self.output is not None:
            # A linear output layer on [p, q, x]: its q and item-feature
            # columns depend on the item.
            dim = q.shape[1]
            weight = self.output.weight[0]
            _, item_columns = self._side_columns(2 * dim)
            offset = offset + q @ weight[dim : 2 * dim] + x @ weight[item_columns]
        parts = [offset[:, None]]
        if self.product is not None:
            parts.insert(0, q)
        return torch.cat(parts, dim=1), item_rows

    def vector_scores(self, p, items, user_side=None):
        """Scores of user embeddings ``p`` against every item of ``items``,
        without the terms that are the same for every item (the user and
        global biases, a linear term on user features), with gradients.

        ``user_side`` holds the users' declared features, which enter an MLP;
        None takes them at their mean, 0 once standardised, as for a new
        session, which has none. Per-row features are taken at their mean.
        """
        if self.factorizes():
            return self.states_of(p) @ self.item_outputs(items)[0].T
        item_rows = self.item_table(items)
        q, item_bias = item_rows[:, :-1], item_rows[:, -1]
        if user_side is None:
            user_side = p.new_zeros(len(p), self.user_side.shape[1])
        user_input = torch.cat([p, user_side], dim=1)
        item_input = torch.cat([q, self.item_side[items]], dim=1)
        first = self.mlp[0]
        weight_user, weight_item = self._split_weight(first.weight, q.shape[1])
        hidden = (user_input @ weight_user.T + first.bias)[:, None, :] + (
            item_input @ weight_item.T
        )
        terms = [self.output(self.mlp[1:](hidden)).squeeze(-1)]
        if self.product == "dot":
            terms.append(p @ q.T)
        if self.biases:
            terms.append(item_bias[None, :])
        return _summed(terms)

    def score_grid(self, users, items):
        """Scores of every pair of ``users`` and ``items`` through the MLP,
        with gradients (and dropout in training), per-row features at their
        mean, and the user table rows looked up: ``score_matrix`` for
        training. For architectures with hidden layers."""
        user_rows = self.user_table(users)
        scores = self.vector_scores(user_rows[:, :-1], items, self.user_side[users])
        if self.biases:
            scores = scores + (user_rows[:, -1] + self.global_bias)[:, None]
        return scores, user_rows

    def has_row_features(self, features):
        """Whether ``features`` hold columns beyond the declared user and item
        features, which make a score depend on more than the pair."""
        declared = self.user_side.shape[1] + self.item_side.shape[1]
        return features is not None and features.shape[1] > declared

    def penalised_tables(self):
        """Tables penalised as a whole at each step, by kind of ``alpha``."""
        if self.history_tables is None:
            return {}
        return dict(self.history_tables)

    def side_features(self, users, items, features):
        """``features`` with the user and item columns of known IDs replaced by
        the values kept for them."""
        if not self.user_side.shape[1] and not self.item_side.shape[1]:
            return features
        user_columns, item_columns = self._side_columns(0)
        return torch.cat(
            [
                _kept_or_given(users, self.user_side, features[:, user_columns]),
                _kept_or_given(items, self.item_side, features[:, item_columns]),
                features[:, item_columns.stop :],
            ],
            dim=1,
        )

    def embed(self, users, items):
        """The table rows ``[p, b]`` of ``users`` and of ``items``."""
        return self.user_table(users), self.item_table(items)

    def score(self, user_rows, item_rows, features=None, codes=None):
        """Scores of pairs given their table rows and side features, and
        optionally their ``(users, items)`` codes, which let the MLP's first
        layer be computed per table row (see ``_mlp_scores``)."""
        p, user_bias = user_rows[:, :-1], user_rows[:, -1]
        q, item_bias = item_rows[:, :-1], item_rows[:, -1]
        terms = []
        if self.mlp is not None:
            terms.append(self._mlp_scores(p, q, features, codes))
        if self.product == "dot":
            terms.append((p * q).sum(dim=1))
        elif self.product == "weighted":
            terms.append((p * q) @ self.product_weight)
        if self.feature_weights is not None and features is not None:
            terms.append(self.feature_weights(features).squeeze(1))
        if not self.biases:
            return _summed(terms)
        return _summed(terms) + user_bias + item_bias + self.global_bias

    def _mlp_scores(self, p, q, features, codes):
        """The MLP's score of pairs with embeddings ``p`` and ``q``.

        The first layer is linear in ``[p, q, x]``, so its ``p`` part can be
        computed once per user row of the table and gathered for the batch,
        and likewise for items. A batch with several times more pairs than a
        table has rows (large batches, small catalogues) then costs a
        fraction of the work: the same values, summed in another order.
        """
        tables = (self.user_table, self.item_table)
        per_table_row = (False, False)
        if codes is not None and len(self.mlp) and self.history_tables is None:
            per_table_row = tuple(map(_computed_per_table_row, tables, codes))
        if not any(per_table_row):
            mlp_input = [p, q] if features is None else [p, q, features]
            return self.output(self.mlp(torch.cat(mlp_input, dim=1))).squeeze(1)
        first = self.mlp[0]
        dim = p.shape[1]
        weights = (first.weight[:, :dim], first.weight[:, dim : 2 * dim])
        hidden = first.bias
        for table, table_codes, x, weight, projected in zip(
            tables, codes, (p, q), weights, per_table_row, strict=True
        ):
            if projected:
                rows = table.weight[:, :-1] @ weight.T
                hidden = hidden + rows.index_select(0, table_codes)
            else:
                hidden = hidden + x @ weight.T
        if features is not None:
            hidden = hidden + features @ first.weight[:, 2 * dim :].T
        return self.output(self.mlp[1:](hidden)).squeeze(1)

    def score_matrix(self, users, items):
        """Scores of every (user, item) pair, from the kept user and item features.

        The first layer of the MLP is linear in the concatenation
        ``[p, q, x_user, x_item]``, so it is computed once per user and once
        per item and the two are summed for every pair: several times less
        work than scoring the pairs one by one, which is what ranking all items
        for a user costs. Per-row features have no value for unseen pairs:
        they are taken at their mean, 0 once standardised.
        """
        user_rows, item_rows = self.with_history(
            *self.embed(users, items), users, items
        )
        p, user_bias = user_rows[:, :-1], user_rows[:, -1]
        q, item_bias = item_rows[:, :-1], item_rows[:, -1]
        # Concatenating the kept features to the embeddings puts the grid in
        # the layout the first layer expects: [p, x_user] then [q, x_item].
        user_input = torch.cat([p, self.user_side[users]], dim=1)
        item_input = torch.cat([q, self.item_side[items]], dim=1)
        terms = []
        if self.mlp is not None:
            terms.append(self._mlp_matrix(user_input, item_input))
        if self.product == "dot":
            terms.append(p @ q.T)
        elif self.product == "weighted":
            terms.append((p * self.product_weight) @ q.T)
        if self.feature_weights is not None:
            terms.append(
                self._linear_matrix(self.feature_weights.weight[0], users, items)
            )
        if not self.biases:
            return _summed(terms)
        bias = user_bias[:, None] + item_bias[None, :] + self.global_bias
        return _summed(terms) + bias

    def _split_weight(self, weight, dim):
        """The columns of a first-layer ``weight`` on ``[p, x_user]`` and on
        ``[q, x_item]``, for inputs laid out as ``[p, q, x_user, x_item,
        x_row]``; those on ``x_row`` are left out."""
        user_columns, item_columns = self._side_columns(2 * dim)
        user = torch.cat([weight[..., :dim], weight[..., user_columns]], -1)
        item = torch.cat([weight[..., dim : 2 * dim], weight[..., item_columns]], -1)
        return user, item

    def _side_columns(self, start):
        """The slices of the user and of the item features in an input whose
        side features begin at column ``start``."""
        n_user, n_item = self.user_side.shape[1], self.item_side.shape[1]
        return (
            slice(start, start + n_user),
            slice(start + n_user, start + n_user + n_item),
        )

    def _linear_matrix(self, weight, users, items):
        """``weight . [x_user, x_item]`` for every pair of ``users`` and ``items``."""
        user_columns, item_columns = self._side_columns(0)
        return (self.user_side[users] @ weight[user_columns])[:, None] + (
            self.item_side[items] @ weight[item_columns]
        )

    def _mlp_matrix(self, user_input, item_input):
        """The MLP's score of every pair of rows of ``user_input`` = ``[p,
        x_user]`` and ``item_input`` = ``[q, x_item]``."""
        dim = self.user_table.embedding_dim - 1
        if len(self.mlp) == 0:
            weight_user, weight_item = self._split_weight(self.output.weight[0], dim)
            return (user_input @ weight_user)[:, None] + (item_input @ weight_item)
        first, rest = self.mlp[0], self.mlp[1:]
        weight_user, weight_item = self._split_weight(first.weight, dim)
        hidden_user = user_input @ weight_user.T + first.bias
        hidden_item = item_input @ weight_item.T
        n_users, n_items = len(user_input), len(item_input)
        mlp_score = hidden_user.new_empty((n_users, n_items))
        # Blocks of (users, items) small enough for their (users, items, width)
        # hidden tensors to stay in cache: the grid is memory-bound otherwise.
        columns = min(n_items, GRID_BLOCK_PAIRS)
        rows = max(1, GRID_BLOCK_PAIRS // max(1, columns))
        for row in range(0, n_users, rows):
            for column in range(0, n_items, columns):
                block = slice(row, row + rows), slice(column, column + columns)
                hidden = hidden_user[block[0], None, :] + hidden_item[None, block[1]]
                hidden = _forward_in_place(rest, hidden)
                mlp_score[block] = self.output(hidden).squeeze(-1)
        return mlp_score

    def embedding_tables(self):
        """The user and item tables, whose row 0 stands for an unknown ID."""
        return {"user": self.user_table, "item": self.item_table}


class _SparseProduct(torch.autograd.Function):
    """``matrix @ dense``, with the transpose given for the backward pass:
    torch's own backward through a CSR product is slow on the CPU."""

    @staticmethod
    def forward(ctx, matrix, transposed, dense):
        ctx.transposed = transposed
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.transposed @ grad


def _computed_per_table_row(table, codes):
    """Whether the MLP's first layer is computed once per row of ``table``
    for a batch with these ``codes``: a dense table whose rows the batch holds
    ``PROJECTED_ROWS_PER_TABLE_ROW`` times over."""
    return (
        not table.sparse
        and len(codes) >= PROJECTED_ROWS_PER_TABLE_ROW * table.num_embeddings
    )


def _offsets(counts):
    """``[0, cumsum(counts)]``: where each code's run starts, and the end."""
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _plus_embedding(rows, extra):
    """Table rows ``[p, b]`` with ``extra`` added to ``p``."""
    return torch.cat([rows[:, :-1] + extra, rows[:, -1:]], dim=1)


def _small_table(n_rows, dim):
    return nn.Parameter(torch.randn(n_rows, dim) * HISTORY_INIT_STD)


def _kept_or_given(codes, kept, given):
    """The kept rows of known codes, the given values for unknown ones (0)."""
    return torch.where((codes > 0)[:, None], kept[codes], given)


def embedding_tables(module):
    """A module's ``{"user": table, "item": table}``, empty if it has none.

    The trainer's per-row penalty, the unknown rows and the growth of the
    tables for new IDs apply to the tables a module reports; a custom module
    without an ``embedding_tables`` method gets none of them.
    """
    if hasattr(module, "embedding_tables"):
        return module.embedding_tables()
    return {}


def factorizes(module):
    """Whether ``module`` scores by ``user_states`` and ``item_outputs``."""
    return isinstance(module, EmbeddingMLP) and module.factorizes()


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
        # The table starts standard normal: scaling it is one contiguous pass,
        # where drawing anew into the strided columns is several times slower
        # (seconds for a million users).
        table.weight[:, :-1] *= EMBEDDING_INIT_STD
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
