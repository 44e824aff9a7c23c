"""SequentialRecommender: next-item models over each user's ordered history."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
)

from ._base import BaseRecommender, TorchStateMixin
from ._distributed import (
    agreed_seed,
    any_process,
    pooled_histories,
    pooled_mean,
    pooled_vocabulary,
    run_on_every_process,
    training_group,
)
from ._encoding import UNKNOWN_CODE, encode_ids, raise_for_unknown
from ._engine._device import resolve_device
from ._engine._optimizers import resume_optimizer
from ._engine._sequence_modules import (
    EMBEDDING_INIT_STD,
    FIRST_ITEM_CODE,
    PAD_CODE,
    SEQUENCE_ARCHITECTURES,
    output_table,
)
from ._engine._sequence_training import (
    SEQUENCE_LOSSES,
    NextItemData,
    SequenceTrainer,
    last_states,
    ndcg_of_next_items,
    padded_windows,
)
from ._engine._training import seeded
from ._fit_loop import attach_progress, raise_if_diverged, run_epochs, set_fit_history
from ._parallel import FEW_ROWS, FEW_USERS, cpu_threads
from ._recommend import (
    RecommendMixin,
    check_n,
    encode_histories,
    user_item_matrix,
)
from ._retrieval import Rows, approximate_top, resolve_method
from ._sklearn_compat import Interval, StrOptions, _fit_context
from ._validation import (
    column_label,
    interaction_column,
    validate_table,
    validate_weights,
)
from .metrics import make_ranking_scorer

# loss="auto": the largest catalog trained with the full softmax. Its cost
# per position grows with the catalog; beyond this the sampled softmax.
AUTO_SOFTMAX_MAX_ITEMS = 20_000
# n_negatives="auto": items shared by a batch's positions with
# "sampled_softmax".
AUTO_NEGATIVES = 256
# recommend_next for at most this many sessions runs on one thread.
# A fit on at most this many interactions runs on one thread with
# n_jobs=None: its steps are too small to share, and threads that spin while
# they wait for each other cost more than they save (and, following the load,
# would round differently from one fit to the next).
FEW_INTERACTIONS = 2_000


class SequentialRecommender(RecommendMixin, TorchStateMixin, BaseRecommender):
    """Next-item recommender over each user's ordered history.

    Each row of ``X`` is an interaction of a user with an item. A user's
    interactions, in time order, form a history; a network reads the
    history and predicts, at every position, which item comes next. It is
    trained on every position of every history at once, and recommends from
    the state after a user's latest item. New visitors get recommendations
    from the items they just clicked with :meth:`recommend_next`, without
    refitting.

    Parameters
    ----------
    architecture : {"sasrec", "gru", "cnn"}, default="sasrec"
        How a history is read. ``"sasrec"``: causal self-attention over the
        latest ``max_len`` items with learned positions (SASRec, Kang &
        McAuley 2018); ``"gru"``: a recurrent network (GRU4Rec, Hidasi et
        al. 2016); ``"cnn"``: stacked causal dilated convolutions (NextItNet,
        Yuan et al. 2019). All share the item table between their input and
        their output.

    embedding_dim : int, default=64
        Length of the item embeddings and of the hidden states.

    n_layers : int, default=2
        Attention blocks (``"sasrec"``), GRU layers (``"gru"``) or residual
        convolution blocks (``"cnn"``, each doubling the dilation).

    n_heads : int, default=1
        Attention heads of ``"sasrec"``; ``embedding_dim`` must be a multiple
        of it. Ignored by the other architectures.

    max_len : int, default=200
        The latest items of a history that the network reads, for training
        and for recommending: the earlier items of a longer history are
        neither read nor trained on.

    dropout : float, default=0.2
        Dropout on the embeddings and within the network during training.

    module : callable, default=None
        A factory of a custom sequence encoder, called as ``module(n_items=...,
        max_len=...)``, that replaces the built-in one and still gets the
        training loop, the losses, the device handling and the scikit-learn
        API. The encoder must have an ``item_embedding`` attribute, an
        ``nn.Embedding`` of ``n_items`` rows, which is also its output layer:
        row 0 is padding, row 1 marks the start of a history and rows 2 and up
        are the items. Its ``forward(items, padding_mask)`` takes int64 codes
        of shape ``(batch, length)``, left-padded with 0 so that the latest
        item is last, and a boolean mask that is True at padding, and returns
        float hidden states of shape ``(batch, length, dim)``, the state at
        each position depending on that position and earlier ones only. The
        score of item row ``j`` after a position is the dot product of its
        state with ``item_embedding.weight[j]``. With a module,
        ``architecture``, ``embedding_dim``, ``n_layers``, ``n_heads`` and
        ``dropout`` are ignored. Use a class or a module-level function so
        that the model pickles.

    loss : {"auto", "softmax", "sampled_softmax", "bce"}, default="auto"
        Training loss at every position. ``"softmax"``: cross-entropy over
        every item of the catalog. ``"sampled_softmax"``: cross-entropy over
        the next item and ``n_negatives`` items drawn per batch in proportion
        to their frequency, shared by all positions, with the log-Q
        correction of that frequency and the draws that hit a position's own
        next item left out; its cost does not grow with the catalog.
        ``"bce"``: the next item against one uniformly drawn item (which may
        be the next item itself), as in SASRec's paper. ``"auto"``:
        ``"softmax"`` for catalogs of at most 20,000 items,
        ``"sampled_softmax"`` for larger ones.

    n_negatives : int or "auto", default="auto"
        Items drawn per batch by ``"sampled_softmax"``; ``"auto"`` is 256.
        Ignored by the other losses.

    batch_size : int, default=64
        Histories per optimizer step.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The learning-rate schedule, as in
        :class:`~sklearn.neural_network.MLPRegressor`: ``"adaptive"``
        divides the rate by 5 each time ``n_iter_no_change`` epochs pass
        without improvement.

    learning_rate_init : float, default=3e-3
        Adam's initial learning rate. On the leave-last-out validation items
        of MovieLens-100K, 3e-3 reached the NDCG@10 of 1e-3 in a third of the
        epochs.

    weight_averaging : float in [0, 1) or None, default=0.99
        If a float, recommend with an exponential moving average of the
        weights over the optimizer's steps, this being its decay (0.99
        averages about the last 100 steps), and watch it for early stopping,
        as in :class:`NeuralRecommender`. None uses the last weights.
        ``partial_fit`` does not average.

    max_iter : int, default=200
        Maximum number of epochs (passes over the histories).

    tol : float, default=1e-3
        Improvement of the validation score (with early stopping) or of the
        training loss (without) below which an epoch counts as no improvement.
        Ten times ``MLPRegressor``'s: the NDCG@10 of a few thousand held-out
        items moves by about 0.002 from epoch to epoch without getting better,
        and smaller gains would keep training for tens of epochs that change
        nothing.

    early_stopping : bool, default=True
        Hold out each user's latest interaction (of users with at least two),
        train on the earlier ones, stop when the NDCG@10 of the held-out
        items ranked among all items has not improved by ``tol`` for
        more than ``n_iter_no_change`` epochs, and keep the weights of the
        best epoch.
        The held-out items still belong to the histories that
        ``recommend`` reads.

    n_iter_no_change : int, default=10
        Training stops after more than ``n_iter_no_change`` consecutive epochs
        that do not improve the best score by ``tol``.

    device : str, default="auto"
        Where to train and predict: ``"auto"`` (the ``SKREC_DEVICE``
        environment variable, else CUDA, else MPS, else CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"``. An unavailable device raises
        ``ValueError``.

    n_jobs : int, default=None
        The CPU threads torch trains and predicts on, as in
        :class:`NeuralRecommender`: by default the usable cores, fewer while
        other processes keep them busy, and one for ``recommend_next`` on at
        most 16 sessions; an int fixes the count.

    distributed : "auto" or bool, default="auto"
        Data-parallel training over ``torch.distributed``, as in
        :class:`NeuralRecommender`: in a process group of several processes,
        each passes the whole histories of its own users (a user's rows on
        one process only) and they fit one model together.

    handle_unknown : {"fallback", "error"}, default="fallback"
        What ``predict`` does with users or items not seen in fit. With
        ``"fallback"`` an unknown user's scores are the log-frequencies of
        the items in fit (the popularity ranking), and an unknown item is
        scored as the average item. ``"error"`` raises ``ValueError``.

    user_col, item_col : int or str, default=0 and 1
        Position of the user and item ID columns in ``X``, or their name when
        ``X`` is a DataFrame. IDs may be any ints or strings.

    time_col : int, str or None, default=None
        Position or name of the column that orders each user's interactions
        (numbers, datetimes or strings that sort in time order). None means
        that the rows of each user are already in time order. Rows with equal
        times keep their order in ``X``; to match
        :class:`~skrec.model_selection.LeaveLastOut`, which counts the larger
        item ID as the later of tied rows, sort ``X`` by time and item first.
        Columns other than these three are ignored.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the batch order, the sampled items and
        dropout. An int gives bitwise identical predictions across fits on
        the CPU with the same torch and thread count (``n_jobs`` as an int).

    warm_start : bool, default=False
        Continue from the previous fit's weights; items new to the second
        fit get new embedding rows.

    verbose : bool, default=False
        Print one line per epoch: loss, validation score, seconds and
        histories per second (printed as samples/s).

    Attributes
    ----------
    users_ : ndarray of shape (n_users,)
        User IDs seen in fit.

    items_ : ndarray of shape (n_items,)
        Item IDs seen in fit.

    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        1 where a user of ``users_`` interacted with an item of ``items_``:
        the items that ``recommend`` leaves out with ``exclude_seen``.

    module_ : torch.nn.Module
        The trained sequence encoder.

    device_ : torch.device
        The device the encoder lives on.

    n_iter_ : int
        Epochs run.

    loss_curve_ : list of float
        Mean training loss per next item, per epoch.

    validation_scores_ : list of float or None
        NDCG@10 of the held-out latest items per epoch; None without early
        stopping.

    best_validation_score_ : float or None
        Best of ``validation_scores_``.

    best_loss_ : float or None
        Lowest training loss; None with early stopping.

    n_features_in_ : int
        Number of columns of ``X``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` when it is a DataFrame with string names.

    See Also
    --------
    NeuralRecommender : Neural recommender on (user, item) pairs, without order.
    PopularityRecommender : The most popular items, for every user.

    Notes
    -----
    A history starts with a learned start code, so a user's first item is
    trained too (from an empty history) and a user with a single interaction
    still contributes it. Consecutive interactions of a user with the same
    item count as one, of their summed weight; interactions of weight 0 are
    left out altogether.

    Examples
    --------
    >>> from skrec import SequentialRecommender
    >>> from skrec.datasets import make_sequences
    >>> X = make_sequences(n_users=200, n_items=30, random_state=0)
    >>> est = SequentialRecommender(
    ...     embedding_dim=16, max_len=20, time_col="timestamp", max_iter=5,
    ...     user_col="user_id", item_col="item_id", random_state=0,
    ... ).fit(X)
    >>> est.recommend([0, 1], n=3).shape
    (2, 3)
    >>> est.recommend_next([[3, 7, 1]], n=3).shape
    (1, 3)
    """

    _parameter_constraints = {
        "architecture": [StrOptions(set(SEQUENCE_ARCHITECTURES))],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "max_len": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "module": [callable, None],
        "loss": [StrOptions({"auto", *SEQUENCE_LOSSES})],
        "n_negatives": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "weight_averaging": [Interval(Real, 0, 1, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "distributed": [StrOptions({"auto"}), "boolean"],
        "handle_unknown": [StrOptions({"fallback", "error"})],
        "user_col": [Integral, str],
        "item_col": [Integral, str],
        "time_col": [Integral, str, None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        architecture="sasrec",
        *,
        embedding_dim=64,
        n_layers=2,
        n_heads=1,
        max_len=200,
        dropout=0.2,
        module=None,
        loss="auto",
        n_negatives="auto",
        batch_size=64,
        learning_rate="constant",
        learning_rate_init=3e-3,
        weight_averaging=0.99,
        max_iter=200,
        tol=1e-3,
        early_stopping=True,
        n_iter_no_change=10,
        device="auto",
        n_jobs=None,
        distributed="auto",
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
        time_col=None,
        random_state=None,
        warm_start=False,
        verbose=False,
    ):
        self.architecture = architecture
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.max_len = max_len
        self.dropout = dropout
        self.module = module
        self.loss = loss
        self.n_negatives = n_negatives
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.weight_averaging = weight_averaging
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.n_jobs = n_jobs
        self.distributed = distributed
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model to the ordered histories of the users of ``X``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            One interaction per row: a user ID, an item ID and, if
            ``time_col`` is set, a time.

        y : array-like of shape (n_samples,), default=None
            Optional non-negative weights of the interactions as next items,
            as for the other implicit-feedback estimators.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the interactions, multiplied with ``y``.

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> from skrec import SequentialRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = SequentialRecommender(max_iter=3, random_state=0).fit(X)
        >>> est.items_
        array(['alien', 'jaws', 'up'], dtype=object)
        """
        return self._keeping_state_on_failure(self._fit, X, (y, sample_weight))

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train one epoch on ``X``, appending its interactions to the histories.

        The first call sets up the model as ``fit`` does, without early
        stopping. Each later call appends the rows of ``X`` to the histories
        of their users, after those seen before (new users and items get new
        rows), and trains one epoch over the histories of the users of
        ``X``, with Adam's state carried over.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Interactions, with the same columns in every call.

        y : array-like of shape (n_samples,), default=None
            Optional non-negative weights of the interactions.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the interactions, multiplied with ``y``.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> from skrec import SequentialRecommender
        >>> est = SequentialRecommender(random_state=0)
        >>> est = est.partial_fit([["ann", "up"], ["ann", "jaws"]])
        >>> est = est.partial_fit([["ann", "heat"], ["bob", "up"]])
        >>> est.users_, est.n_iter_
        (array(['ann', 'bob'], dtype=object), 2)
        """
        return self._keeping_state_on_failure(self._partial_fit, X, (y, sample_weight))

    def predict(self, X):
        """Score each (user, item) row of ``X`` as that user's next item.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with the same columns as in fit.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The score of each row's item after its user's history (higher is
            more likely next); see ``handle_unknown`` for unseen IDs.

        Examples
        --------
        >>> from skrec import SequentialRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = SequentialRecommender(max_iter=3, random_state=0).fit(X)
        >>> est.predict([["ann", "alien"], ["eve", "up"]]).shape
        (2,)
        """
        user_codes, item_codes, _ = self._encode_rows(X)
        users, row_user = np.unique(user_codes, return_inverse=True)
        scores = np.empty(len(user_codes))
        known_item = item_codes != UNKNOWN_CODE
        with cpu_threads(self.n_jobs, little_work=len(user_codes) <= FEW_ROWS):
            states = self._user_states(users)
            table = output_table(self.module_)
            with torch.inference_mode():
                rows = torch.from_numpy(np.maximum(item_codes - 1, 0)).to(self.device_)
                item_rows = table[rows]
                item_rows[torch.from_numpy(~known_item).to(self.device_)] = table.mean(
                    dim=0
                )
                per_row = (states[torch.from_numpy(row_user)] * item_rows).sum(1)
        scores[:] = per_row.double().cpu().numpy()
        unknown_user = user_codes == UNKNOWN_CODE
        if unknown_user.any():
            log_frequency = self._log_frequencies()
            scores[unknown_user] = log_frequency[item_codes[unknown_user]]
        return scores

    def score(self, X, y=None, sample_weight=None):
        """Return the mean NDCG@10 of the items of ``X`` as each user's next items.

        Each user of ``X`` ranks every item unseen in fit after the history
        seen in fit, and the rows of ``X`` are the relevant items: see
        :func:`skrec.metrics.make_ranking_scorer`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Held-out interactions, such as each user's next ones.

        y : array-like of shape (n_samples,), default=None
            Ignored: every row of ``X`` is relevant.

        sample_weight : array-like of shape (n_samples,), default=None
            Ignored.

        Returns
        -------
        score : float
            The mean NDCG@10 over the users of ``X``.

        Examples
        --------
        >>> from skrec import SequentialRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = SequentialRecommender(max_iter=3, random_state=0).fit(X)
        >>> 0.0 <= est.score([["ann", "alien"]]) <= 1.0
        True
        """
        return make_ranking_scorer("ndcg", k=10)(self, X)

    def recommend_next(
        self,
        histories,
        n=10,
        *,
        exclude_seen=True,
        items=None,
        return_scores=False,
        method="auto",
    ):
        """Recommend the next items of new sessions, from the items they hold.

        Each history is read as a user's history is in fit, without
        refitting: the network's state after its latest item scores every
        item. Item IDs not seen in fit are skipped; a history left empty gets
        the most popular items, as an unknown user does in ``recommend``.

        Parameters
        ----------
        histories : list of array-like of item IDs
            One sequence of item IDs per session, the most recent last.

        n : int, default=10
            Items per session. At most the number of candidate items.

        exclude_seen : bool, default=True
            Leave out the items of each session's own history.

        items : array-like of shape (n_candidates,), default=None
            Candidate item IDs to choose from; all items seen in fit if None.

        return_scores : bool, default=False
            Also return the score of each recommended item.

        method : {"auto", "exact", "approximate"}, default="auto"
            Score every candidate, or search the item index, as in
            ``recommend``.

        Returns
        -------
        item_ids : ndarray of shape (n_sessions, n)
            Recommended item IDs, best first.

        scores : ndarray of shape (n_sessions, n)
            Their scores; only when ``return_scores`` is True. An empty
            session's scores are the items' interaction counts in fit.

        Examples
        --------
        >>> from skrec import SequentialRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = SequentialRecommender(max_iter=3, random_state=0).fit(X)
        >>> est.recommend_next([["up"], [], ["unknown-item"]], n=2).shape
        (3, 2)
        """
        check_is_fitted(self)
        check_n(n)
        codes, starts = self._encode_histories(histories)
        candidates = self._candidate_codes(items)
        little_work = len(starts) - 1 <= FEW_USERS
        with cpu_threads(self.n_jobs, little_work=little_work), torch.inference_mode():
            windows = torch.from_numpy(
                padded_windows(codes, starts[:-1], starts[1:], self.max_len)
            ).to(self.device_)
            states = last_states(self.module_, windows)
        if resolve_method(self, method, len(candidates)) == "approximate":
            rows = self._session_rows(
                states, codes, starts, candidates, n, exclude_seen
            )
            columns, values = approximate_top(self, rows, candidates, n, exclude_seen)
        else:
            columns, values = self._exact_next(
                states, codes, starts, candidates, n, exclude_seen, little_work
            )
        return self._ranked_items(candidates, columns, values, return_scores)

    def _exact_next(
        self, states, codes, starts, candidates, n, exclude_seen, little_work=False
    ):
        """``recommend_next`` of the sessions of ``states``, whose items
        ``codes`` start at ``starts``, by scoring every candidate."""
        with cpu_threads(self.n_jobs, little_work=little_work), torch.inference_mode():
            rows = (candidates - 1).to(self.device_)
            scores = (states @ output_table(self.module_)[rows].T).float()
            return self._top_of_sessions(
                scores, codes, starts, candidates, n, exclude_seen
            )

    def _session_rows(self, states, codes, starts, candidates, n, exclude_seen):
        """The sessions of ``recommend_next`` as ``approximate_top`` reads
        them: an empty session has no query."""
        lengths = np.diff(starts)
        known = np.flatnonzero(lengths > 0)
        seen = sp.csr_matrix(
            (np.ones(len(codes), dtype=np.float32), codes, starts),
            shape=(len(lengths), len(self.items_)),
        )

        def exact_top(sessions):
            kept = [codes[starts[i] : starts[i + 1]] for i in sessions]
            kept_starts = np.concatenate([[0], np.cumsum(lengths[sessions])])
            return self._exact_next(
                states[torch.from_numpy(sessions).to(self.device_)],
                np.concatenate(kept).astype(np.int64),
                kept_starts.astype(np.int64),
                candidates,
                n,
                exclude_seen,
            )

        return Rows(
            lengths > 0,
            lambda positions, expansion: states[known[positions]],
            lambda positions, items: self._state_scores(
                states[known[positions]], items
            ),
            seen[known],
            exact_top,
        )

    # -- scoring ------------------------------------------------------------------

    def _score_matrix(self, user_codes, item_codes):
        with cpu_threads(self.n_jobs, little_work=len(user_codes) <= FEW_USERS):
            states = self._user_states(user_codes.numpy())
            with torch.inference_mode():
                table = output_table(self.module_)
                return states @ table[(item_codes - 1).to(self.device_)].T

    def _retrieval_unsupported(self):
        """Why ``recommend`` cannot rank through an item index: never, the
        scores being inner products of states and item rows."""
        return None

    def _item_vectors(self):
        return output_table(self.module_).detach(), None

    def _query_vectors(self, user_codes, expansion):
        return self._user_states(user_codes.numpy())

    def _pair_scores(self, user_codes, item_codes):
        return self._state_scores(self._user_states(user_codes.numpy()), item_codes)

    def _state_scores(self, states, item_codes):
        """The score of each state with each item code of its row of
        ``item_codes``."""
        with torch.inference_mode():
            rows = output_table(self.module_)[(item_codes - 1).to(self.device_)]
            return torch.einsum("ud,ukd->uk", states, rows)

    def _user_states(self, user_codes):
        """The encoder's state after each user's latest item; users of code 0
        (unknown) get the state of an empty history."""
        rows = torch.from_numpy(np.asarray(user_codes, dtype=np.int64))
        return self._states_by_code[rows.to(self.device_)]

    def _encode_user_states(self):
        """The states of every user's history, row 0 that of an empty history:
        encoded once per fit, so that ``recommend`` and ``predict`` score
        users by one matrix product."""
        starts = self._history_starts
        first = np.concatenate([[0], starts[:-1]])
        last = np.concatenate([[0], starts[1:]])
        windows = padded_windows(self._history_codes, first, last, self.max_len)
        windows = torch.from_numpy(windows).to(self.device_)
        self._states_by_code = last_states(self.module_, windows)

    def _log_frequencies(self):
        """Log of each item's share of the interactions of fit, smoothed, by
        item code (0: an unknown item)."""
        counts = np.concatenate([[0.0], self._interaction_counts()]) + 1.0
        return np.log(counts / counts.sum())

    # -- fitting ------------------------------------------------------------------

    def _fit(self, X, weights):
        with cpu_threads(self.n_jobs, True, _is_little(X)) as threads:
            self._fit_on_threads(X, weights, threads)

    def _fit_on_threads(self, X, weights, threads):
        group = training_group(self)
        first_pass = not hasattr(self, "module_") or not self.warm_start
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        seed = agreed_seed(group, seed)
        codes, starts, row_weights, mine = self._ordered_histories(
            X, weights, first_pass, group
        )
        self._set_histories(codes, starts, row_weights)
        device = resolve_device(self.device)
        train, validation = self._split_latest(
            codes, starts, row_weights, device, mine, group
        )
        with seeded(seed, device):
            module = self._initial_module(device, first_pass)
            trainer = self._trainer(
                module, train, seed, averaging=self.weight_averaging, group=group
            )
            trainer.step_hooks.append(threads.follow_load_now)
            history = self._run_epochs(trainer, validation, group)
        self._set_fitted_module(trainer.averaged_module, device, trainer)
        set_fit_history(self, history)

    def _run_epochs(self, trainer, validation, group=None):
        score = None
        if validation is not None:

            def score():
                ndcg = ndcg_of_next_items(trainer.averaged_module, *validation)
                return pooled_mean(group, ndcg, len(validation[0]))

        return run_epochs(
            self,
            trainer,
            validation_score=score,
            constant_loss=self._constant_loss(),
        )

    def _partial_fit(self, X, weights):
        with cpu_threads(self.n_jobs, True, _is_little(X)) as threads:
            self._partial_fit_on_threads(X, weights, threads)

    def _partial_fit_on_threads(self, X, weights, threads):
        group = training_group(self)
        first_pass = not hasattr(self, "module_")
        codes, starts, row_weights, mine = self._ordered_histories(
            X, weights, first_pass, group
        )
        if not first_pass:
            codes, starts, row_weights, _ = self._appended_histories(
                codes, starts, row_weights
            )
        users = np.flatnonzero(mine)
        self._set_histories(codes, starts, row_weights)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        seed = (seed + (0 if first_pass else self.n_iter_)) % np.iinfo(np.int32).max
        seed = agreed_seed(group, seed)
        device = resolve_device(self.device)
        windows, window_weights = padded_windows(
            codes, starts[:-1], starts[1:], self.max_len + 1, row_weights
        )
        train = NextItemData(windows[users], window_weights[users], device)
        with seeded(seed, device):
            module = self._initial_module(device, first_pass)
            trainer = self._trainer(module, train, seed, group=group)
            if not first_pass and getattr(self, "_optimizer_state", None):
                resume_optimizer(
                    trainer.optimizer, copy.deepcopy(self._optimizer_state)
                )
            trainer.step_hooks.append(threads.follow_load_now)
            progress = attach_progress(self, trainer)
            if progress is not None:
                progress.start(1 if first_pass else self.n_iter_ + 1)
            loss = trainer.train_epoch()
        raise_if_diverged(self, loss, 1, self._constant_loss())
        self._set_fitted_module(module, device, trainer)
        if first_pass:
            self.n_iter_, self.loss_curve_, self.best_loss_ = 0, [], None
            self.validation_scores_ = self.best_validation_score_ = None
        self.n_iter_ += 1
        self.loss_curve_ = [*self.loss_curve_, loss]
        self.best_loss_ = min(self.loss_curve_)

    def _ordered_histories(self, X, weights, first_pass, group=None):
        """Validate ``X`` and the weights, update the vocabularies on the first
        pass (extend them otherwise), and return the histories of ``X``: the
        item codes (0-based rows of ``items_``) of each user in time order,
        where each user's starts (indexed by user code - 1), the weights, and
        which users' histories this process passed (under a ``group``, the
        histories are those of every process)."""
        users, items, row_weights = run_on_every_process(
            group, self._validated_rows, X, weights, first_pass
        )
        user_col = column_label(self, "user_col")
        item_col = column_label(self, "item_col")
        if first_pass:
            self.users_ = pooled_vocabulary(group, users, user_col)
            self.items_ = pooled_vocabulary(group, items, item_col)
        else:
            self.users_ = pooled_vocabulary(group, users, user_col, self.users_)
            self.items_ = pooled_vocabulary(group, items, item_col, self.items_)
        codes, starts, row_weights = self._grouped_by_user(users, items, row_weights)
        mine = np.diff(starts) > 0
        if group is not None:
            codes, starts, row_weights = pooled_histories(
                group, codes, starts, row_weights, self.users_, user_col
            )
        return codes, starts, row_weights, mine

    def _validated_rows(self, X, weights, first_pass):
        """The user and item IDs of ``X`` with weight, in time order, and
        their weights."""
        y, sample_weight = weights
        table = validate_table(self, X, reset=first_pass, ignore_features=True)
        users, items = table.users, table.items
        row_weights = validate_weights(y, users, type(self).__name__)
        if sample_weight is not None:
            row_weights = row_weights * _check_sample_weight(
                sample_weight, np.empty((len(users), 0)), ensure_non_negative=True
            )
        order = self._time_order(X, users)
        kept = order[row_weights[order] > 0]
        if len(kept) == 0:
            raise ValueError(
                f"{type(self).__name__} needs at least one interaction of positive "
                "weight; every row of X has weight 0 (y times sample_weight)."
            )
        users, items = users.iloc[kept], items.iloc[kept]
        return users, items, row_weights[kept].astype(np.float32)

    def _grouped_by_user(self, users, items, row_weights):
        """Item codes, user starts and weights of time-ordered rows."""
        user_codes = encode_ids(users, self.users_)
        item_codes = encode_ids(items, self.items_) - 1
        # Rows are grouped by user in time order: a stable sort by user keeps
        # that order within each user.
        by_user = np.argsort(user_codes, kind="stable")
        user_codes, item_codes = user_codes[by_user], item_codes[by_user]
        row_weights = row_weights[by_user]
        user_codes, item_codes, row_weights = _merge_repeats(
            user_codes, item_codes, row_weights
        )
        counts = np.bincount(user_codes - 1, minlength=len(self.users_))
        starts = np.concatenate([[0], np.cumsum(counts)])
        return item_codes, starts, row_weights

    def _time_order(self, X, users):
        """Row positions in time order; ties keep the order of ``X``."""
        if self.time_col is None:
            return np.arange(len(users))
        times = interaction_column(self, X, "time_col")
        try:
            return np.argsort(times.to_numpy(), kind="stable")
        except TypeError as exc:
            kinds = sorted({type(value).__name__ for value in times})
            raise ValueError(
                f"Column {column_label(self, 'time_col')} cannot be ordered: it "
                f"mixes values of types {', '.join(kinds)}. Give times of one "
                "kind: numbers, datetimes or strings that sort in time order."
            ) from exc

    def _appended_histories(self, codes, starts, row_weights):
        """The fitted histories with those of a later chunk appended, their
        weights, and the users of the chunk."""
        n_users = len(self.users_)
        before = np.diff(self._history_starts)
        before = np.concatenate([before, np.zeros(n_users - len(before), int)])
        new = np.diff(starts)
        owner_before = np.repeat(np.arange(n_users), before)
        owner_new = np.repeat(np.arange(n_users), new)
        owners = np.concatenate([owner_before, owner_new])
        order = np.argsort(owners, kind="stable")
        merged_codes = np.concatenate([self._history_codes, codes])[order]
        old_weights = self._history_weights
        merged_weights = np.concatenate([old_weights, row_weights])[order]
        merged_starts = np.concatenate([[0], np.cumsum(before + new)])
        return merged_codes, merged_starts, merged_weights, np.flatnonzero(new > 0)

    def _set_histories(self, codes, starts, weights):
        self._history_codes = codes
        self._history_starts = starts
        self._history_weights = weights
        owners = np.repeat(np.arange(len(self.users_)), np.diff(starts))
        self.user_items_ = user_item_matrix(
            owners + 1, codes + 1, len(self.users_), len(self.items_)
        )

    def _split_latest(self, codes, starts, row_weights, device, mine, group=None):
        """Training windows and, with early stopping, the validation windows,
        next items and seen items: each user's latest item held out. Only the
        users of ``mine`` (this process's) are trained and validated on."""
        lengths = np.diff(starts)
        held = lengths >= 2 if self.early_stopping else np.zeros(len(lengths), bool)
        held &= mine
        # Whether any process holds out an item: all validate, or none does.
        validating = any_process(group, held.any())
        if self.early_stopping and not validating:
            warnings.warn(
                "early_stopping=True holds out each user's latest interaction, "
                "but no user has two; SequentialRecommender trains on every "
                f"interaction for max_iter={self.max_iter} epochs without early "
                "stopping.",
                UserWarning,
                stacklevel=7,
            )
        latest = starts[1:] - 1
        keep = np.ones(len(codes), dtype=bool)
        keep[latest[held]] = False
        train_starts = np.concatenate([[0], np.cumsum(lengths - held)])
        windows, weights = padded_windows(
            codes[keep],
            train_starts[:-1],
            train_starts[1:],
            self.max_len + 1,
            row_weights[keep],
        )
        if mine.all():
            train = NextItemData(windows, weights, device)
        else:
            train = NextItemData(windows[mine], weights[mine], device)
        if not validating:
            return train, None
        users = np.flatnonzero(held)
        inputs = torch.as_tensor(windows[users, 1:], device=device)
        targets = torch.as_tensor(codes[latest[users]], device=device)
        train_owner = np.repeat(np.arange(len(lengths)), lengths - held)
        in_validation = held[train_owner]
        seen_rows = (np.cumsum(held) - 1)[train_owner[in_validation]]
        seen = codes[keep][in_validation]
        validation = (
            inputs,
            targets,
            torch.as_tensor(seen_rows, device=device),
            torch.as_tensor(seen, device=device),
        )
        return train, validation

    def _trainer(self, module, data, seed, averaging=None, group=None):
        return SequenceTrainer(
            module,
            data,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate_init,
            seed=seed,
            loss=self._loss(),
            n_negatives=(
                AUTO_NEGATIVES if self.n_negatives == "auto" else self.n_negatives
            ),
            averaging=averaging,
            group=group,
        )

    def _loss(self):
        if self.loss != "auto":
            return self.loss
        if len(self.items_) <= AUTO_SOFTMAX_MAX_ITEMS:
            return "softmax"
        return "sampled_softmax"

    def _constant_loss(self):
        """The loss of scoring every item alike, against which a diverging loss
        is recognised."""
        return float(np.log(max(len(self.items_), 2)))

    def _initial_module(self, device, first_pass):
        n_rows = len(self.items_) + FIRST_ITEM_CODE
        if first_pass:
            return self._new_module(n_rows).to(device)
        module = copy.deepcopy(self.module_).to(device)
        _grow_item_table(module, n_rows)
        return module

    def _new_module(self, n_rows):
        if self.module is not None:
            module = self.module(n_items=n_rows, max_len=self.max_len)
            _check_encoder(module, self.module, n_rows)
            return module
        return SEQUENCE_ARCHITECTURES[self.architecture](
            n_rows,
            dim=self.embedding_dim,
            max_len=self.max_len,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            dropout=self.dropout,
        )

    def _set_fitted_module(self, module, device, trainer):
        self.module_ = module
        self.device_ = device
        self._optimizer_state = trainer.optimizer.state_dict()
        self._encode_user_states()

    # -- input checks ---------------------------------------------------------------

    def _encode_rows(self, X):
        check_is_fitted(self)
        table = validate_table(self, X, reset=False, ignore_features=True)
        user_codes = encode_ids(table.users, self.users_)
        item_codes = encode_ids(table.items, self.items_)
        if self.handle_unknown == "error":
            raise_for_unknown(table.users, user_codes, table.items, item_codes)
        return user_codes, item_codes, None

    def _encode_histories(self, histories):
        """Item rows of every history, unknown IDs left out and consecutive
        repeats read once, as in fit, and where each history starts."""
        codes, starts = encode_histories(histories, self.items_)
        owners = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
        repeat = _consecutive_repeats(owners, codes)
        codes, owners = codes[~repeat], owners[~repeat]
        counts = np.bincount(owners, minlength=len(starts) - 1)
        return codes, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A ranker: y holds optional weights, never a target to predict.
        tags.regressor_tags.poor_score = True
        tags.target_tags.required = False
        tags.target_tags.positive_only = True
        return tags

    # -- persistence ----------------------------------------------------------------

    def _empty_module(self):
        """An untrained encoder of the fitted shape, to load weights into."""
        return self._new_module(len(self.items_) + FIRST_ITEM_CODE)

    def __getstate__(self):
        state = super().__getstate__()
        if "module_" in state:
            state["_states_by_code"] = self._states_by_code.cpu().numpy()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "module_" in state:
            self._states_by_code = torch.as_tensor(self._states_by_code).to(
                self.device_
            )


def _is_little(X):
    """Whether ``X`` has at most ``FEW_INTERACTIONS`` rows; input that is not
    a table is left for validation to reject."""
    try:
        return _num_samples(X) <= FEW_INTERACTIONS
    except TypeError:
        return False


def _merge_repeats(user_codes, item_codes, weights):
    """Consecutive rows of one user with one item as one row, of their summed
    weight."""
    new = ~_consecutive_repeats(user_codes, item_codes)
    if new.all():
        return user_codes, item_codes, weights
    group = np.cumsum(new) - 1
    summed = np.bincount(group, weights=weights).astype(np.float32)
    return user_codes[new], item_codes[new], summed


def _consecutive_repeats(owners, codes):
    """Whether each position repeats the code before it, of the same owner."""
    repeat = np.zeros(len(codes), dtype=bool)
    repeat[1:] = (codes[1:] == codes[:-1]) & (owners[1:] == owners[:-1])
    return repeat


def _is_sequence(value):
    return isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index)


def _grow_item_table(module, n_rows):
    """Append rows for new items to the encoder's item table."""
    table = module.item_embedding
    extra = n_rows - table.num_embeddings
    if extra <= 0:
        return
    with torch.no_grad():
        rows = torch.randn(extra, table.embedding_dim, device=table.weight.device)
        grown = torch.cat([table.weight, rows * EMBEDDING_INIT_STD])
    table.weight = torch.nn.Parameter(grown)
    table.num_embeddings = n_rows


def _check_encoder(module, factory, n_rows):
    """A custom encoder must be a module with an item table of ``n_rows`` rows
    that returns one state per position."""
    table = getattr(module, "item_embedding", None)
    if not isinstance(module, torch.nn.Module) or not isinstance(
        table, torch.nn.Embedding
    ):
        raise TypeError(
            f"module={factory!r} must return a torch.nn.Module with an "
            "item_embedding attribute of type torch.nn.Embedding, got "
            f"{type(module).__name__}."
        )
    if table.num_embeddings != n_rows:
        raise ValueError(
            f"The item_embedding of module={factory!r} has {table.num_embeddings} "
            f"rows; it needs n_items={n_rows}."
        )
    items = torch.tensor([[PAD_CODE, 1, FIRST_ITEM_CODE]])
    module.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        states = module(items, items == PAD_CODE)
    module.train()
    shape = tuple(getattr(states, "shape", ()))
    if not isinstance(states, torch.Tensor) or shape != (1, 3, table.embedding_dim):
        raise ValueError(
            f"The module of module={factory!r} must return one state per "
            f"position, a tensor of shape (batch, length, {table.embedding_dim}); "
            f"on a batch of shape (1, 3) it returned {type(states).__name__} of "
            f"shape {shape}."
        )
