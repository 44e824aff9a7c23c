"""NeuralRecommender: the scikit-learn estimator around the torch engine."""

import copy
import math
import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender, RecomputedOnFailure, TorchStateMixin
from ._distributed import (
    agreed_seed,
    every_pair,
    every_process,
    pool_side_features,
    pooled_codes,
    pooled_mean,
    pooled_moments,
    pooled_vocabulary,
    run_on_every_process,
    training_group,
)
from ._encoding import encode_ids
from ._engine._device import resolve_device
from ._engine._fold_in import is_small, session_scores
from ._engine._modules import ACTIVATIONS, ARCHITECTURES, EmbeddingMLP, factorizes
from ._engine._optimizers import SOLVERS, resume_optimizer
from ._engine._ranking import ndcg_of_held_out, score_matrix
from ._engine._retrieval import expanded_queries, expanded_vectors, pair_scores
from ._engine._training import (
    SOFTMAX_LOSSES,
    Interactions,
    Trainer,
    fill_unknown_rows,
    grow_embedding_tables,
    keep_side_features,
    predict_scores,
    seeded,
    set_history,
)
from ._fit_loop import (
    attach_progress,
    raise_if_diverged,
    run_epochs,
    set_fit_history,
)
from ._parallel import FEW_ROWS, FEW_USERS, cpu_threads
from ._recommend import (
    RecommendMixin,
    check_n,
    encode_histories,
    new_pairs,
    pairs_without,
    union_of_pairs,
    user_item_matrix,
)
from ._sklearn_compat import Interval, StrOptions, _fit_context
from ._validation import (
    column_label,
    validate_table,
    validate_target,
    validate_weights,
)
from .metrics import make_ranking_scorer

AUTO_BATCH_SIZE = 1024
# n_negatives="auto": negatives per row of "bce" and "bpr", and items shared
# by a batch with the sampled softmax: the cost of a negative is a dot
# product per user of the batch, or the MLP's pass per user through an MLP.
AUTO_NEGATIVES = 4
AUTO_SOFTMAX_NEGATIVES = 256
AUTO_MLP_SOFTMAX_NEGATIVES = 64
# alpha="auto" and learning_rate_init="auto" with the softmax losses; chosen
# on the MovieLens-100K validation items (see the docstrings). The other
# losses' values are each estimator's _auto_alpha and _auto_learning_rate.
AUTO_SOFTMAX_ALPHA = 3.0
AUTO_SOFTMAX_LEARNING_RATE = 1e-2
# architecture="auto" with the softmax losses: "svdpp" from this many distinct
# items per user in fit on average, "svdpp_user" below. On MovieLens-100K
# validation items the item-side sums ranked higher with 30 items per user and
# more and about level with 10; on make_sequences' short histories, lower.
AUTO_SVDPP_MIN_ITEMS_PER_USER = 20
# weight_averaging="auto": the decay, and the largest network it applies to.
AUTO_AVERAGING = 0.99
AUTO_AVERAGING_MAX_WEIGHTS = 4_000_000
# The largest rating: its square, times the fit loop's divergence factor,
# stays finite in float64. The largest implicit weight: a batch's weighted
# loss stays finite in float32.
MAX_RATING = 1e150
MAX_WEIGHT = 1e30


class NeuralRecommender(RecommendMixin, TorchStateMixin, BaseRecommender):
    """Neural recommender on user and item embeddings, with optional side features.

    Each row of ``X`` is a (user, item) pair, possibly followed by numeric side
    features. User and item IDs index learned embedding tables; the two vectors
    and the side features are concatenated and fed to a multi-layer perceptron,
    whose output is fused with the element-wise product of the embeddings and
    with global, user and item bias terms (the NeuMF structure). The network is
    trained with Adam on the squared error to predict the rating ``y``.

    Read more about the parameters shared with
    :class:`~sklearn.neural_network.MLPRegressor` in its documentation: they
    mean the same here.

    Parameters
    ----------
    embedding_dim : int, default=64
        Length of the user and item embedding vectors.

    hidden_layer_sizes : array-like of shape (n_layers,), default=(64, 32)
        Widths of the hidden layers of the MLP; empty for none.

    architecture : {"auto", "neumf", "mlp", "gmf", "mf", "svdpp", "svdpp_user"}, \
            default="auto"
        How the embeddings become a score; all add a global, a user and an
        item bias. ``"neumf"``: an MLP on the concatenated embeddings and side
        features plus the embeddings' dot product (He et al.'s NeuMF);
        ``"mlp"``: the MLP alone; ``"gmf"``: generalized matrix factorization,
        the product of the embeddings weighted per dimension by learned weights;
        ``"mf"``: their dot product (biased matrix factorization);
        ``"svdpp"``: the dot product after adding to each user's embedding the
        normalised sum of learned vectors of the items the user interacted
        with in fit, and to each item's the same over its users (SVD++,
        Koren 2008, on both sides), whose tables ``alpha`` also penalises;
        ``"svdpp_user"``: the same on the user's side only, as Koren defined
        SVD++. With the softmax losses each training row's own item is left
        out of its user's sum, as it is when the model recommends.
        ``"gmf"``, ``"mf"``, ``"svdpp"`` and ``"svdpp_user"`` have no MLP:
        they ignore ``hidden_layer_sizes``, ``activation`` and ``dropout``,
        and side features enter them through a linear term. ``"auto"`` is
        ``"neumf"`` for ``loss`` ``"mse"``, ``"bce"`` and ``"bpr"``. For the
        softmax losses, whose full softmax needs scores that factorize, it is
        ``"svdpp"`` when the users of the first fit have 20 distinct items or
        more on average, and ``"svdpp_user"`` below; ``architecture_`` says
        which. On held-out validation items (see the user guide on implicit
        feedback) the item-side sums of ``"svdpp"`` ranked higher on
        MovieLens-100K's long histories, about level where each user was cut
        to the latest 10 items, and lower on synthetic catalogs of 22,000
        users with 7 items each, whose users have no tastes for them to
        capture; the guide gives the figures. Name an architecture with an
        MLP to train one on a softmax loss.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    dropout : float, default=0.0
        Dropout probability after each hidden layer during training.

    biases : bool, default=True
        Add a global, a per-user and a per-item bias to every score.

    module : callable, default=None
        A factory of a custom network, called as ``module(n_users=...,
        n_items=..., n_features=...)``, that replaces the built-in one and
        still gets the training loop, the device handling and the scikit-learn
        API. Its ``forward(users, items, features)`` takes int64 codes (``1``
        to ``n`` for the IDs seen in fit, ``0`` for an unknown ID; the tables
        have ``n_users`` and ``n_items`` rows, row 0 included) and the
        standardised side features (a float32 matrix, or None), and returns
        one score per row. If it has a method ``embedding_tables()`` returning
        ``{"user": nn.Embedding, "item": nn.Embedding}``, ``alpha`` penalises
        their rows, unknown IDs get the mean row and ``partial_fit`` grows them
        for new IDs; otherwise ``alpha`` has no effect. A ``score_matrix(users,
        items)`` method, if present, scores grids for ``recommend``. With a
        module, ``embedding_dim``, ``architecture``, ``hidden_layer_sizes``,
        ``activation``, ``dropout`` and ``biases`` are ignored, and
        ``user_features``/``item_features`` are passed as given, not kept.
        Use a class or a module-level function so that the model pickles.

    alpha : float, dict or "auto", default="auto"
        Strength of the L2 penalty on the embedding and bias tables: the loss
        minimised is the sum of squared errors of the standardised ratings plus
        ``alpha`` times the squared norm of every user's and item's rows. Users
        and items with few ratings are thus pulled towards the average far more
        than frequent ones. Unlike ``MLPRegressor``'s ``alpha`` it is not scaled
        by the number of samples, so useful values are in the tens. A dict
        ``{"user": a, "item": b}`` sets each table's strength. ``"auto"`` is
        80 for ``loss`` ``"mse"``, ``"bce"`` and ``"bpr"``, and 3 for the
        softmax losses, whose gradients are spread over the whole catalog and
        which a strong penalty holds at popularity (HR@10 of the
        MovieLens-100K validation items, means of 3 seeds: with ``"svdpp"``
        0.128 at 1 and at 3, 0.126 at 10 and 0.118 at 30; with
        ``"svdpp_user"`` 0.119 at 1 and at 10, 0.128 at 3).

    batch_size : int or "auto", default="auto"
        Rows per optimizer step. ``"auto"`` is ``min(1024, n_samples)``.

    solver : {"adam", "adamw", "sgd", "adagrad"}, default="adam"
        The optimizer: Adam; AdamW, which also decays the weights of the MLP
        layers by 0.01 (the tables have ``alpha``); SGD with Nesterov momentum
        0.9; or Adagrad.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The learning-rate schedule, as in ``MLPRegressor``: ``"constant"``
        keeps ``learning_rate_init``; ``"adaptive"`` divides the learning rate
        by 5 each time ``n_iter_no_change`` epochs pass without improvement
        (of the validation score with early stopping, of the training loss
        without), and stops once it falls below 1e-6.

    learning_rate_init : float or "auto", default="auto"
        The solver's initial learning rate. ``"auto"`` is 1e-3, and 1e-2 for
        the softmax losses, which converge in a few epochs at that rate (with
        ``"svdpp_user"``, HR@10 of the MovieLens-100K validation items 0.128,
        against 0.123 at 3e-3 and 0.118 at 3e-2).

    weight_averaging : float in [0, 1), "auto" or None, default="auto"
        If a float, predict with an exponential moving average of the weights
        over the optimizer's steps, this being its decay (0.99 averages about
        the last 100 steps), and watch it for early stopping. Averaging smooths
        the noise of the last steps out of the weights; on MovieLens-100K it
        lowers the validation RMSE by about 0.01. It costs a pass over every
        weight per step, so ``"auto"`` means 0.99 for networks of at most 4
        million weights and no averaging for larger ones, whose steps touch
        few of their rows. None predicts with the last weights.
        ``partial_fit`` does not average.

    sparse_embeddings : bool or "auto", default="auto"
        Give the embedding tables sparse gradients and update only the rows
        of each batch, with a lazy Adam whose moments move only when their row
        is in a batch (solvers ``"adam"`` and ``"adamw"``; the others stay
        dense). A dense step reads and writes every row of every table, which
        dominates training once the tables are much larger than a batch.
        ``"auto"`` makes sparse the tables with more than 16 rows per row of a
        batch: a million users at the default batch size, not MovieLens-100K.

    max_iter : int, default=100
        Maximum number of epochs (passes over the training data).

    tol : float, default=1e-4
        Improvement of the validation score (with early stopping) or of the
        training loss (without) below which an epoch counts as no improvement.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, stop when their R^2 has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and keep the weights
        of the best epoch. Unlike ``MLPRegressor`` this is on by default, since
        recommenders overfit long before their training loss stops falling.

    validation_fraction : float, default=0.05
        Share of the rows held out for early stopping. Half of
        ``MLPRegressor``'s 0.1: every interaction held out is one the model
        does not learn from, and 5% of a rating data set is still thousands
        of rows (on the training folds of MovieLens-100K it gave a lower
        validation RMSE than 10%, 0.920 against 0.922).

    n_iter_no_change : int, default=5
        Training stops after more than ``n_iter_no_change`` consecutive epochs
        that do not improve the best score by ``tol``, as in
        :class:`~sklearn.neural_network.MLPRegressor`.

    loss : {"mse", "bce", "bpr", "softmax", "sampled_softmax"}, default="mse"
        Training loss. ``"mse"`` fits explicit ratings ``y``. The implicit-
        feedback losses treat every row of ``X`` as a positive interaction (``y``
        optional, weighting the rows). ``"bce"`` and ``"bpr"`` sample
        ``n_negatives`` items per row among those the user did not interact
        with (see ``negative_sampling``): ``"bce"`` is binary cross-entropy
        with the negatives labelled 0, ``"bpr"`` Bayesian personalised
        ranking. ``"softmax"`` is the cross-entropy of each row's item among
        every item, the user's scores of the items being the logits;
        ``"sampled_softmax"`` the cross-entropy among the row's item and
        ``n_negatives`` items drawn once per batch and shared by its rows,
        with the log-Q correction of their sampling probability and with the
        row's own item left out of them (Yi et al., RecSys 2019). The full
        softmax scores a batch against the whole catalog in one matrix
        product, which needs scores that are a dot product of a user and an
        item vector: architectures ``"mf"``, ``"gmf"``, ``"svdpp"`` and
        ``"svdpp_user"``, or any with ``hidden_layer_sizes=()``. An MLP on the
        pair would score batch x catalog x width values, so with ``"neumf"``
        and ``"mlp"`` (and a custom ``module``) ``"softmax"`` trains the
        sampled softmax. With every implicit loss ``predict`` returns
        relevance scores, ``score`` returns NDCG@10 and early stopping
        watches the NDCG@10 of the held-out rows; the penalty ``alpha`` falls
        on the rows of the observed pairs, not of the negatives.

    n_negatives : int or "auto", default="auto"
        Negative items sampled per positive row by ``"bce"`` and ``"bpr"``,
        or shared by a batch with the sampled softmax. ``"auto"`` is 4 for
        the former; for the latter 256 when the scores factorize, and 64
        through an MLP, which scores each of them for each user of a batch.

    negative_sampling : {"uniform", "popularity", "hard"}, default="uniform"
        How the implicit losses draw negative items among those the user did
        not interact with: ``"uniform"``, every item alike;
        ``"popularity"``, in proportion to each item's number of rows in fit
        (as the ``implicit`` library's BPR does), which teaches the model to
        rank a user's items above popular ones rather than above random ones;
        or ``"hard"``, the ``n_negatives`` items the model scores highest
        among ``4 * n_negatives`` uniform draws (dynamic negative sampling).
        Hard negatives are the items that push a user's own out of the top of
        the list, so they sharpen the head of the ranking, at the cost of
        scoring the draws at each step; they call for a lower
        ``learning_rate_init`` than uniform ones. The sampled softmax draws
        its shared negatives uniformly or by popularity (its log-Q correction
        removes the bias of either), and refuses ``"hard"``; the full softmax
        ignores this parameter. On a small catalog uniform draws train the
        sampled softmax better: on MovieLens-100K, popularity draws give rare
        items large, noisy updates the few times they are drawn.

    device : str, default="auto"
        Where to train and predict: ``"auto"`` (the ``SKREC_DEVICE`` environment
        variable, else CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``. An unavailable device raises ``ValueError``.

    n_jobs : int, default=None
        The CPU threads torch trains and predicts on. None: as many as the
        cores this process may use (its CPU affinity and container limits),
        within any limit set by ``OMP_NUM_THREADS``, ``torch.set_num_threads``
        or ``threadpoolctl.threadpool_limits``; and, during fit, fewer while
        other processes keep those cores busy, since torch's threads spin
        while they wait for each other and crawl on cores shared with other
        work. An int fixes the count whatever the load (-1: every core this
        process may use), as a fit that must repeat bit for bit on a busy
        machine needs.

    distributed : "auto" or bool, default="auto"
        Data-parallel training over ``torch.distributed``. ``"auto"``: when
        ``fit`` runs in an initialised process group of several processes
        (a script launched with ``torchrun``), each process passes its own
        shard of the rows and they train one model together; every process
        ends with the same fitted estimator. Outside a process group, or
        with ``False``, the process trains on its rows alone. ``True``
        requires a process group. See :ref:`distributed`.

    handle_unknown : {"fallback", "error"}, default="fallback"
        What ``predict`` does with users or items not seen in fit. With
        ``"fallback"`` an unknown ID is scored with the average of the learned
        embedding and bias rows, so an unknown item paired with a known user gets
        that user's bias and average preferences. Every user and item weighs
        the same in that average, however many ratings it has, so an unknown
        pair gets the score of a typical user and item rather than the mean
        rating: on MovieLens, where most movies are rated below the global
        mean, somewhat below it. ``"error"`` raises ``ValueError``
        naming how many users and items were unknown.

    user_col, item_col : int or str, default=0 and 1
        Position of the user and item ID columns in ``X``, or their name when
        ``X`` is a DataFrame. IDs may be any ints or strings. All other columns
        are numeric side features.

    user_features, item_features : list of str or int, or callable, default=None
        Side-feature columns that describe the user (age, occupation) or the
        item (genres, year), by name or position, or a callable that returns
        them from ``X`` such as
        :func:`~sklearn.compose.make_column_selector`. Their values must be
        constant per user (per item) within a fit; the model keeps them, which
        lets ``recommend`` score every item and makes predictions for a known
        user or item use the kept values. A user or item unseen in fit is
        scored from the values of its row: a feature-based prediction for a
        cold start. Side features not declared are per-row (context) features,
        and a model with any cannot ``recommend``.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split, the batch order and
        dropout. An int gives bitwise identical predictions across fits, and
        across pickling, on the CPU with the same torch and thread count
        (``n_jobs`` as an int fixes the count; by default it drops while other
        processes load the cores, which a few operations round differently
        with). On a
        GPU, scatter-adds in the embedding backward run in a nondeterministic
        order, so two fits differ in the last bits and drift apart over
        epochs; ``torch.use_deterministic_algorithms(True)`` makes them
        repeatable, at some cost in speed.

    warm_start : bool, default=False
        Continue from the previous fit's weights. IDs new to the second fit get
        new embedding rows; the previous ones keep theirs.

    verbose : bool, default=False
        Print one line per epoch: loss, validation score, seconds, samples/s;
        and, within epochs longer than 10 s, a line every 10 s with the rows
        done, rows per second and the estimated time left.

    Attributes
    ----------
    users_ : ndarray of shape (n_users,)
        User IDs seen in fit; ``users_[k]`` owns embedding row ``k + 1``.

    items_ : ndarray of shape (n_items,)
        Item IDs seen in fit, as ``users_``.

    module_ : torch.nn.Module
        The trained network.

    architecture_ : str or None
        The architecture trained: ``architecture``, or the one ``"auto"``
        chose on the first fit; None with a custom ``module``.

    device_ : torch.device
        The device the network lives on.

    rating_range_ : tuple of float
        Smallest and largest rating seen in fit; predictions are clipped to it.

    n_iter_ : int
        Epochs run.

    loss_curve_ : list of float
        Mean squared error on the training rows, per epoch.

    validation_scores_ : list of float or None
        R^2 on the held-out rows per epoch; None without early stopping.

    best_validation_score_ : float or None
        Best of ``validation_scores_``; None without early stopping.

    best_loss_ : float or None
        Lowest training loss; None with early stopping, as in ``MLPRegressor``.

    n_features_in_ : int
        Number of columns of ``X``, ID columns included.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` when it is a DataFrame with string names.

    See Also
    --------
    sklearn.neural_network.MLPRegressor : MLP on dense features only.

    Notes
    -----
    The network follows He et al., "Neural Collaborative Filtering" (WWW 2017),
    with the bias terms of biased matrix factorization added, since an MLP
    alone learns a dot product poorly (Rendle et al., RecSys 2020).

    Duplicate (user, item) rows are kept: each is one more observation of the
    pair, so a pair rated twice weighs twice in the loss, as a rating repeated
    in the data would in any regressor; ``recommend`` counts the pair as seen
    once. Constant ratings give constant predictions. A single user or a
    single item is a valid table.

    Examples
    --------
    >>> from skrec import NeuralRecommender
    >>> from skrec.datasets import make_ratings
    >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
    >>> est = NeuralRecommender(
    ...     embedding_dim=8, learning_rate_init=0.02, random_state=0
    ... )
    >>> est.fit(X, y).predict(X[:3]).shape
    (3,)
    >>> est.predict([[0, 10**6]])  # an item never seen in fit still gets a rating
    array([...])

    Declared user and item features let ``recommend`` score every item and give
    a new item a prediction from its features:

    >>> import pandas as pd
    >>> X = pd.DataFrame({
    ...     "user": [1, 1, 2, 2, 3, 3],
    ...     "item": ["a", "b", "a", "c", "b", "c"],
    ...     "age": [20.0, 20.0, 35.0, 35.0, 50.0, 50.0],
    ...     "genre": [0.0, 1.0, 0.0, 1.0, 1.0, 1.0],
    ... })
    >>> est = NeuralRecommender(
    ...     embedding_dim=4, user_col="user", item_col="item", user_features=["age"],
    ...     item_features=["genre"], early_stopping=False, learning_rate_init=0.02,
    ...     random_state=0,
    ... ).fit(X, [4, 2, 5, 3, 1, 2])
    >>> est.recommend([1], n=1)  # the one item user 1 has not rated
    array([['c']], dtype=object)
    >>> new_item = pd.DataFrame(
    ...     {"user": [1], "item": ["z"], "age": [20.0], "genre": [1.0]}
    ... )
    >>> est.predict(new_item).shape
    (1,)
    """

    # alpha="auto" and learning_rate_init="auto" for "mse", "bce" and "bpr".
    _auto_alpha = 80.0
    _auto_learning_rate = 1e-3

    _parameter_constraints = {
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "architecture": [StrOptions({"auto", *ARCHITECTURES})],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "biases": ["boolean"],
        "module": [callable, None],
        "alpha": [Interval(Real, 0, None, closed="left"), dict, StrOptions({"auto"})],
        "solver": [StrOptions(set(SOLVERS))],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate_init": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "sparse_embeddings": ["boolean", StrOptions({"auto"})],
        "weight_averaging": [
            Interval(Real, 0, 1, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"mse", "bce", "bpr", *SOFTMAX_LOSSES})],
        "n_negatives": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "negative_sampling": [StrOptions({"uniform", "popularity", "hard"})],
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
        "user_features": ["array-like", callable, None],
        "item_features": ["array-like", callable, None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        embedding_dim=64,
        hidden_layer_sizes=(64, 32),
        *,
        architecture="auto",
        activation="relu",
        dropout=0.0,
        biases=True,
        module=None,
        alpha="auto",
        batch_size="auto",
        solver="adam",
        learning_rate="constant",
        learning_rate_init="auto",
        weight_averaging="auto",
        sparse_embeddings="auto",
        max_iter=100,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.05,
        n_iter_no_change=5,
        loss="mse",
        n_negatives="auto",
        negative_sampling="uniform",
        device="auto",
        n_jobs=None,
        distributed="auto",
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
        user_features=None,
        item_features=None,
        random_state=None,
        warm_start=False,
        verbose=False,
    ):
        self.embedding_dim = embedding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.architecture = architecture
        self.activation = activation
        self.dropout = dropout
        self.biases = biases
        self.module = module
        self.alpha = alpha
        self.batch_size = batch_size
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.weight_averaging = weight_averaging
        self.sparse_embeddings = sparse_embeddings
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.device = device
        self.n_jobs = n_jobs
        self.distributed = distributed
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.user_features = user_features
        self.item_features = item_features
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X``, continuing from the current weights.

        The first call sets up the model as ``fit`` does; each later call runs
        one more pass over the rows it is given, with Adam's moment estimates
        carried over, so that ``n`` calls on the same rows train like ``fit``
        with ``max_iter=n`` and ``early_stopping=False``. Use it to watch a
        metric of your own after every epoch, or to train on data that arrives
        in chunks. New user and item IDs get new embedding rows, as with
        ``warm_start``; the pairs of every call count as seen by ``recommend``.
        There is no early stopping: ``validation_scores_`` is None after the
        first call.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            User IDs, item IDs and optional numeric side features, with the
            same columns in every call.

        y : array-like of shape (n_samples,), default=None
            Ratings; for implicit-feedback models, optional weights of the
            interactions (None: every row weighs 1). Ratings are standardised
            with the mean and scale of the first call's ``y``.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> from skrec import NeuralRecommender
        >>> from skrec.datasets import make_ratings
        >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
        >>> est = NeuralRecommender(embedding_dim=8, random_state=0)
        >>> for epoch in range(3):
        ...     est = est.partial_fit(X, y)
        >>> est.n_iter_, len(est.loss_curve_)
        (3, 3)
        """
        return self._keeping_state_on_failure(self._partial_fit, X, y)

    def predict(self, X):
        """Predict the rating of each (user, item) row of ``X``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with the same columns as in fit.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted ratings, clipped to ``rating_range_``; with an implicit
            ``loss``, relevance scores (higher is more relevant).

        Examples
        --------
        >>> from skrec import NeuralRecommender
        >>> from skrec.datasets import make_ratings
        >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
        >>> est = NeuralRecommender(
        ...     embedding_dim=8, learning_rate_init=0.02, random_state=0
        ... ).fit(X, y)
        >>> est.rating_range_
        (1.0, 5.0)
        >>> y_pred = est.predict([[0, 1], [0, 2], [0, 10**6]])  # item 10**6 is new
        >>> y_pred.shape
        (3,)
        >>> bool(y_pred.min() >= 1.0 and y_pred.max() <= 5.0)
        True
        """
        user_codes, item_codes, features = self._encode_rows(X)
        data = Interactions.from_arrays(
            user_codes, item_codes, self._scale_features(features), device=self.device_
        )
        with cpu_threads(self.n_jobs, little_work=len(data) <= FEW_ROWS):
            scores = predict_scores(self.module_, data)
        if self._implicit():
            return scores
        return np.clip(self._y_mean + self._y_scale * scores, *self.rating_range_)

    def score(self, X, y=None, sample_weight=None):
        """Return the R^2 of the predicted ratings, or NDCG@10 for implicit feedback.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Test rows.

        y : array-like of shape (n_samples,), default=None
            True ratings; ignored with an implicit loss.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows for R^2.

        Returns
        -------
        score : float
            For ``loss="mse"``, the coefficient of determination as for any
            scikit-learn regressor. For implicit losses, the mean NDCG@10 of the
            users of ``X`` when each ranks all items unseen in fit, the rows of
            ``X`` being the relevant items: see
            :func:`skrec.metrics.make_ranking_scorer`.

        Examples
        --------
        >>> from skrec import NeuralRecommender
        >>> from skrec.datasets import make_ratings
        >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
        >>> est = NeuralRecommender(
        ...     embedding_dim=8, learning_rate_init=0.02, random_state=0
        ... ).fit(X, y)
        >>> round(est.score(X, y), 1)
        0.4
        """
        if self._implicit():
            return make_ranking_scorer("ndcg", k=10)(self, X)
        return super().score(X, y, sample_weight=sample_weight)

    def recommend_next(
        self, histories, n=10, *, exclude_seen=True, items=None, return_scores=False
    ):
        """Recommend items to new visitors, from the items of their sessions.

        Each session is folded into the model as a new user, without
        refitting: its user embedding ``p`` is the one under which its items
        are the most likely in a softmax over every item, with the table
        penalty ``alpha`` as prior, i.e. the minimiser of
        ``sum_j (log sum_k exp(s_k) - s_j) + alpha * |p|^2`` over the
        session's items ``j``, ``s`` being the model's scores with every
        other weight as fitted. That is the training objective of
        ``loss="softmax"`` for one user's row, so a session holding a fitted
        user's items gets about that user's embedding; models fitted with
        other losses read their scores as the logits of the same likelihood.
        When the scores are linear in ``p`` (architectures ``"mf"``,
        ``"gmf"``, ``"svdpp"`` and ``"svdpp_user"``, whose session also gets
        SVD++'s sum over its items, or no hidden layer) the minimiser is found
        by a few Newton steps; through an MLP by L-BFGS, which takes longer.
        A session's order and repeated items weigh like a user's rows: each
        occurrence counts once. Item IDs not seen in fit are skipped; a
        session left empty gets the most popular items, as an unknown user
        does in ``recommend``.

        Parameters
        ----------
        histories : list of array-like of item IDs
            One sequence of item IDs per session.

        n : int, default=10
            Items per session. At most the number of candidate items.

        exclude_seen : bool, default=True
            Leave out the items of each session.

        items : array-like of shape (n_candidates,), default=None
            Candidate item IDs to choose from; all items seen in fit if None.
            IDs not seen in fit are ignored.

        return_scores : bool, default=False
            Also return the score of each recommended item.

        Returns
        -------
        item_ids : ndarray of shape (n_sessions, n)
            Recommended item IDs, best first.

        scores : ndarray of shape (n_sessions, n)
            Their scores (up to a constant per session); only when
            ``return_scores`` is True.

        Examples
        --------
        >>> from skrec import MatrixFactorization
        >>> from skrec.datasets import make_ratings
        >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
        >>> est = MatrixFactorization(
        ...     embedding_dim=8, loss="softmax", random_state=0
        ... ).fit(X[y >= 4])
        >>> sessions = [[3, 17, 8], [], [10**6]]  # item 10**6 is unknown: skipped
        >>> est.recommend_next(sessions, n=3).shape
        (3, 3)
        >>> popular = est.recommend(["a new user"], n=3)
        >>> bool((est.recommend_next(sessions, n=3)[1:] == popular).all())
        True
        """
        check_is_fitted(self)
        check_n(n)
        self._check_scores_every_pair("recommend_next")
        if not isinstance(self.module_, EmbeddingMLP):
            raise TypeError(
                f"recommend_next folds sessions into a built-in network; "
                f"module={self.module!r} is a custom one, which it cannot read."
            )
        rows, starts = encode_histories(histories, self.items_)
        candidates = self._candidate_codes(items)
        scores = self._session_scores(rows, starts, candidates)
        with torch.inference_mode():
            columns, values = self._top_of_sessions(
                scores, rows, starts, candidates, n, exclude_seen
            )
        return self._ranked_items(candidates, columns, values, return_scores)

    def _session_scores(self, rows, starts, candidates):
        """Scores of the candidate codes for each session of item ``rows``
        (0-based) starting at ``starts``, from the folded-in embeddings."""
        alpha = self._alpha()
        alpha = alpha["user"] if isinstance(alpha, dict) else alpha
        little_work = is_small(self.module_, len(starts) - 1)
        with cpu_threads(
            self.n_jobs, follow_load=True, little_work=little_work
        ) as threads:
            return session_scores(
                self.module_,
                torch.from_numpy(rows + 1).to(self.device_),
                torch.from_numpy(starts).to(self.device_),
                candidates.to(self.device_),
                alpha,
                on_step=threads.follow_load_now,
            ).float()

    def _score_matrix(self, user_codes, item_codes):
        self._check_scores_every_pair("recommend")
        with cpu_threads(self.n_jobs, little_work=len(user_codes) <= FEW_USERS):
            return score_matrix(
                self.module_, user_codes.to(self.device_), item_codes.to(self.device_)
            )

    def _retrieval_unsupported(self):
        """Why ``recommend`` cannot rank through an item index, or None."""
        self._check_scores_every_pair("recommend")
        if not isinstance(self.module_, EmbeddingMLP):
            return (
                f"module={self.module!r} is a custom network, whose scores have "
                "no item vectors to index."
            )
        return None

    def _item_vectors(self):
        return expanded_vectors(self.module_)

    def _query_vectors(self, user_codes, expansion):
        return expanded_queries(self.module_, user_codes.to(self.device_), expansion)

    def _pair_scores(self, user_codes, item_codes):
        return pair_scores(
            self.module_, user_codes.to(self.device_), item_codes.to(self.device_)
        )

    def _check_scores_every_pair(self, method):
        """Raise unless every (user, item) pair has a score without per-row
        features, as ranking needs."""
        n_row_features = self._n_features() - sum(self._n_side_features)
        if self.module is not None:
            n_row_features = self._n_features()
        if n_row_features:
            raise ValueError(
                f"{method} needs a score for every (user, item) pair, but this model "
                f"was fitted with {n_row_features} per-row side features; declare "
                "user- and item-level features with user_features and item_features."
            )

    def _implicit(self):
        return self.loss != "mse"

    def _constant_loss(self):
        """The training loss of a constant score: the variance of the ratings
        for "mse", log 2 per pair for "bce" and "bpr", the log of the number
        of items for the softmax losses (the sampled one's is lower)."""
        if self.loss in SOFTMAX_LOSSES:
            return np.log(max(len(self.items_), 2))
        return np.log(2.0) if self._implicit() else self._y_scale**2

    def _engine_loss(self, module):
        """The loss the engine trains: ``"softmax"`` becomes the sampled one
        on a module whose scores do not factorize (an MLP on the pair)."""
        loss = self.loss
        if loss == "softmax" and not factorizes(module):
            loss = "sampled_softmax"
        if loss == "sampled_softmax" and self.negative_sampling == "hard":
            raise ValueError(
                f"negative_sampling='hard' picks negatives per row, for loss='bce' "
                f"or 'bpr'; the sampled softmax of loss={self.loss!r} shares its "
                "negatives across a batch: use negative_sampling='uniform' or "
                "'popularity'."
            )
        return loss

    def _n_negatives(self, module):
        if self.n_negatives != "auto":
            return self.n_negatives
        if self.loss not in SOFTMAX_LOSSES:
            return AUTO_NEGATIVES
        if factorizes(module):
            return AUTO_SOFTMAX_NEGATIVES
        return AUTO_MLP_SOFTMAX_NEGATIVES

    def _empty_module(self):
        """An untrained network of the fitted shape, to load weights into."""
        return self._new_module(
            {"user": len(self.users_) + 1, "item": len(self.items_) + 1}
        )

    # -- fitting ----------------------------------------------------------------

    def _fit(self, X, y):
        with cpu_threads(self.n_jobs, follow_load=True) as threads:
            self._fit_on_threads(X, y, threads)

    def _fit_on_threads(self, X, y, threads):
        group = training_group(self)
        first_pass = not hasattr(self, "module_") or not self.warm_start
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        seed = agreed_seed(group, seed)
        # Rows come encoded in a random order when some are held out, so that
        # the training and validation rows are two slices of one copy of X.
        shuffle_seed = seed if self.early_stopping else None
        data, device = self._encoded_data(X, y, first_pass, shuffle_seed, group)
        train, validation = self._split_validation(data, group)
        with seeded(seed, device):
            module = self._initial_module(data, device, first_pass, group)
            pairs = every_pair(group, train)
            set_history(module, pairs)
            trainer = self._trainer(
                module,
                train,
                seed,
                averaging=self._weight_averaging(module),
                group=group,
                pairs=pairs,
            )
            trainer.step_hooks.append(threads.follow_load_now)
            history = self._run_epochs(trainer, validation, group)
        module = trainer.averaged_module
        # Predictions draw on every interaction of fit, the validation rows'
        # included, as they would after a refit on all rows.
        set_history(module, self.user_items_)
        self._set_fitted_module(module, device, trainer)
        set_fit_history(self, history)

    def _partial_fit(self, X, y):
        with cpu_threads(self.n_jobs, follow_load=True) as threads:
            self._partial_fit_on_threads(X, y, threads)

    def _partial_fit_on_threads(self, X, y, threads):
        group = training_group(self)
        first_pass = not hasattr(self, "module_")
        seen_before = None if first_pass else self.user_items_
        data, device = self._encoded_data(X, y, first_pass, group=group)
        if seen_before is not None:
            added = new_pairs(seen_before, self.user_items_)
            self.user_items_ = union_of_pairs(seen_before, self.user_items_)
            # The seen pairs grow with every chunk: a failed call rebuilds the
            # previous ones from the union instead of holding both.
            self._state_before_fit["user_items_"] = RecomputedOnFailure(
                partial(pairs_without, self.user_items_, added, seen_before.shape)
            )
            del seen_before, added
        # Each call is a new epoch: it must not replay the previous batch order
        # and negatives, which an int random_state would.
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        seed = (seed + (0 if first_pass else self.n_iter_)) % np.iinfo(np.int32).max
        seed = agreed_seed(group, seed)
        with seeded(seed, device):
            module = self._initial_module(data, device, first_pass, group)
            set_history(module, self.user_items_)
            trainer = self._trainer(
                module,
                data,
                seed,
                continue_optimizer=True,
                group=group,
                pairs=every_pair(group, data),
            )
            trainer.step_hooks.append(threads.follow_load_now)
            progress = attach_progress(self, trainer)
            if progress is not None:
                progress.start(1 if first_pass else self.n_iter_ + 1)
            loss = trainer.train_epoch() * self._y_scale**2
        raise_if_diverged(self, loss, 1, self._constant_loss())
        self._set_fitted_module(module, device, trainer)
        if first_pass:
            self.n_iter_, self.loss_curve_, self.best_loss_ = 0, [], None
            self.validation_scores_ = self.best_validation_score_ = None
        self.n_iter_ += 1
        self.loss_curve_ = [*self.loss_curve_, loss]
        self.best_loss_ = min(self.loss_curve_)

    def _encoded_data(self, X, y, first_pass, shuffle_seed=None, group=None):
        """Validate ``X`` and ``y``, update the vocabularies and scalers on the
        first pass, and return the encoded rows on the training device, in
        the order of a permutation seeded by ``shuffle_seed`` if one is given.

        Under a process ``group``, the vocabularies, scalers and seen pairs
        are those of every process's rows, and so is the first error.
        """
        table, y = run_on_every_process(group, self._validated_input, X, y, first_pass)
        users, items, features = table.users, table.items, table.features
        n_side_features = (table.n_user_features, table.n_item_features)
        device = resolve_device(self.device)
        if group is not None:
            group.check_same("columns of X", table.feature_names)
            if shuffle_seed is not None:
                shuffle_seed = (shuffle_seed + group.rank) % np.iinfo(np.int32).max
        if first_pass:
            self._set_vocabularies(users, items, group)
            self._set_scalers(features, y, group)
            self._n_side_features = n_side_features
        else:
            self._check_side_features(n_side_features)
            self._extend_vocabularies(users, items, group)
            self._widen_rating_range(y, group)
        self._feature_names = table.feature_names
        user_codes = encode_ids(users, self.users_)
        item_codes = encode_ids(items, self.items_)
        self.user_items_ = user_item_matrix(
            pooled_codes(group, user_codes),
            pooled_codes(group, item_codes),
            len(self.users_),
            len(self.items_),
        )
        # float32 before shuffling: the training dtype, at half the memory.
        targets = ((y - self._y_mean) / self._y_scale).astype(np.float32)
        features = self._scale_features(features)
        columns = [user_codes, item_codes, features, targets]
        del user_codes, item_codes, features, targets
        if shuffle_seed is not None:
            order = np.random.RandomState(shuffle_seed).permutation(len(y))
            # One column at a time, each original freed once it is permuted.
            for j, column in enumerate(columns):
                columns[j] = None if column is None else column[order]
        return Interactions.from_arrays(*columns, device=device), device

    def _validated_input(self, X, y, first_pass):
        table = validate_table(self, X, reset=first_pass)
        return table, self._validate_target(y, table.users)

    def _trainer(
        self,
        module,
        data,
        seed,
        continue_optimizer=False,
        averaging=None,
        group=None,
        pairs=None,
    ):
        trainer = Trainer(
            module,
            data,
            batch_size=self._batch_size(len(data) if pairs is None else len(pairs)),
            learning_rate=self._learning_rate_init(),
            alpha=self._alpha(),
            seed=seed,
            loss=self._engine_loss(module),
            n_negatives=self._n_negatives(module),
            negative_sampling=self.negative_sampling,
            solver=self.solver,
            n_items=len(self.items_) + 1,
            averaging=averaging,
            sparse=self.sparse_embeddings,
            group=group,
            pairs=None if pairs is None else (pairs.users, pairs.items),
        )
        state = getattr(self, "_optimizer_state", None)
        # Another solver's moments mean nothing to this one: it starts afresh.
        same_solver = getattr(self, "_optimizer_solver", None) == self.solver
        if continue_optimizer and state is not None and same_solver:
            # Loading copies nothing, and the fused step updates in place: the
            # fitted model's state must survive a failed call.
            resume_optimizer(trainer.optimizer, copy.deepcopy(state))
        return trainer

    def _set_fitted_module(self, module, device, trainer):
        fill_unknown_rows(module)
        self.module_ = module
        self.device_ = device
        self._optimizer_state = trainer.optimizer.state_dict()
        self._optimizer_solver = self.solver

    def _set_vocabularies(self, users, items, group=None):
        if group is None:
            self.users_, self.items_ = self._vocabularies(users, items)
            return
        self.users_ = pooled_vocabulary(group, users, column_label(self, "user_col"))
        self.items_ = pooled_vocabulary(group, items, column_label(self, "item_col"))

    def _extend_vocabularies(self, users, items, group=None):
        self.users_ = pooled_vocabulary(
            group, users, column_label(self, "user_col"), self.users_
        )
        self.items_ = pooled_vocabulary(
            group, items, column_label(self, "item_col"), self.items_
        )

    def _validate_target(self, y, users):
        if self._implicit():
            y = validate_weights(y, users, type(self).__name__)
            limit, what = MAX_WEIGHT, "the float32 loss they weight overflows"
        else:
            y = validate_target(y, users, type(self).__name__)
            limit = MAX_RATING
            what = "their squared errors (the loss, in y's units) overflow"
        largest = float(np.abs(y).max()) if len(y) else 0.0
        if largest > limit:
            raise ValueError(
                f"y holds values of magnitude up to {largest:.3g}, beyond "
                f"{limit:.0e}, at which {what}; rescale y first, for "
                f"example y / {10.0 ** math.ceil(math.log10(largest)):.0e}."
            )
        return y

    def _set_scalers(self, features, y, group=None):
        # Standardised ratings and features let one learning rate suit any
        # rating scale and any feature units. Implicit weights stay as given.
        if group is not None:
            self._set_pooled_scalers(features, y, group)
            return
        if self._implicit():
            self._y_mean, self._y_scale = 0.0, 1.0
        else:
            self._y_mean = float(y.mean())
            self._y_scale = float(y.std()) or 1.0
        self.rating_range_ = (float(y.min()), float(y.max()))
        if features is None:
            self._feature_mean = self._feature_scale = None
        else:
            self._feature_mean = features.mean(axis=0)
            scale = features.std(axis=0)
            self._feature_scale = np.where(scale > 0, scale, 1.0)

    def _widen_rating_range(self, y, group=None):
        """Extend ``rating_range_``, which predictions are clipped to, by the
        ratings of a later ``partial_fit`` or warm-started fit: the scalers
        stay those of the first fit, as the weights were learned with them."""
        _, _, _, low, high = pooled_moments(group, y)
        self.rating_range_ = (
            min(self.rating_range_[0], float(low)),
            max(self.rating_range_[1], float(high)),
        )

    def _set_pooled_scalers(self, features, y, group):
        """``_set_scalers`` over every process's rows."""
        _, mean, std, low, high = pooled_moments(group, y)
        if self._implicit():
            self._y_mean, self._y_scale = 0.0, 1.0
        else:
            self._y_mean, self._y_scale = float(mean), float(std) or 1.0
        self.rating_range_ = (float(low), float(high))
        if features is None:
            self._feature_mean = self._feature_scale = None
        else:
            _, mean, std, _, _ = pooled_moments(group, features)
            self._feature_mean = mean
            self._feature_scale = np.where(std > 0, std, 1.0)

    def _scale_features(self, features):
        if features is None:
            return None
        return (features - self._feature_mean) / self._feature_scale

    def _initial_module(self, data, device, first_pass, group=None):
        n_rows = {"user": len(self.users_) + 1, "item": len(self.items_) + 1}
        if not first_pass:
            module = copy.deepcopy(self.module_).to(device)
            grow_embedding_tables(module, n_rows)
        else:
            self.architecture_ = (
                None if self.module is not None else self._architecture()
            )
            module = self._new_module(n_rows).to(device)
        if isinstance(module, EmbeddingMLP):
            run_on_every_process(
                group, keep_side_features, module, data, self._side_feature_error
            )
            if group is not None:
                pool_side_features(group, module, data, self._side_feature_error)
        return module

    def _new_module(self, n_rows):
        """A freshly initialised network with ``n_rows`` rows per table, of
        the fitted ``architecture_``."""
        if self.module is not None:
            return self._custom_module(n_rows)
        return EmbeddingMLP(
            n_users=n_rows["user"],
            n_items=n_rows["item"],
            n_features=self._n_features(),
            embedding_dim=self.embedding_dim,
            hidden_layer_sizes=tuple(self._hidden_layer_sizes()),
            activation=self.activation,
            dropout=self.dropout,
            architecture=self.architecture_,
            n_user_features=self._n_side_features[0],
            n_item_features=self._n_side_features[1],
            biases=self.biases,
        )

    def _custom_module(self, n_rows):
        module = self.module(
            n_users=n_rows["user"],
            n_items=n_rows["item"],
            n_features=self._n_features(),
        )
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"module={self.module!r} must return a torch.nn.Module, got "
                f"{type(module).__name__}."
            )
        _check_one_score_per_row(module, self._n_features(), self.module)
        return module

    def _weight_averaging(self, module):
        if self.weight_averaging != "auto":
            return self.weight_averaging
        n_weights = sum(p.numel() for p in module.parameters())
        return AUTO_AVERAGING if n_weights <= AUTO_AVERAGING_MAX_WEIGHTS else None

    def _n_features(self):
        return 0 if self._feature_mean is None else len(self._feature_mean)

    def _check_side_features(self, n_side_features):
        if n_side_features != self._n_side_features:
            raise ValueError(
                f"X declares {n_side_features[0]} user and {n_side_features[1]} item "
                f"features, but the model was fitted with {self._n_side_features[0]} "
                f"and {self._n_side_features[1]}."
            )

    def _side_feature_error(self, kind, code, column):
        """The error for a user or item whose declared feature varies."""
        ids = self.users_ if kind == "user" else self.items_
        return ValueError(
            f"{kind}_features must be constant per {kind}, but side feature "
            f"{self._feature_names[column]} takes several values for {kind} "
            f"{ids[code - 1 : code].tolist()[0]!r}."
        )

    def _hidden_layer_sizes(self):
        sizes = np.atleast_1d(self.hidden_layer_sizes)
        if sizes.ndim != 1 or not all(
            isinstance(s, Integral | np.integer) and s > 0 for s in sizes.tolist()
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in sizes]

    def _alpha(self):
        if isinstance(self.alpha, str):
            softmax = self.loss in SOFTMAX_LOSSES
            return AUTO_SOFTMAX_ALPHA if softmax else self._auto_alpha
        if not isinstance(self.alpha, dict):
            return self.alpha
        if set(self.alpha) != {"user", "item"} or not all(
            isinstance(a, Real) and not isinstance(a, bool) and a >= 0
            for a in self.alpha.values()
        ):
            raise ValueError(
                'alpha as a dict must map "user" and "item" to non-negative '
                f"numbers, got alpha={self.alpha!r}."
            )
        return {table: float(a) for table, a in self.alpha.items()}

    def _architecture(self):
        """The architecture to build: ``architecture``, or the one ``"auto"``
        chooses given the seen pairs of the first fit."""
        if self.architecture != "auto":
            return self.architecture
        if self.loss not in SOFTMAX_LOSSES:
            return "neumf"
        items_per_user = self.user_items_.nnz / max(len(self.users_), 1)
        if items_per_user >= AUTO_SVDPP_MIN_ITEMS_PER_USER:
            return "svdpp"
        return "svdpp_user"

    def _learning_rate_init(self):
        if self.learning_rate_init != "auto":
            return self.learning_rate_init
        if self.loss in SOFTMAX_LOSSES:
            return AUTO_SOFTMAX_LEARNING_RATE
        return self._auto_learning_rate

    def _batch_size(self, n_rows):
        if self.batch_size == "auto":
            return min(AUTO_BATCH_SIZE, n_rows)
        return self.batch_size

    def _split_validation(self, data, group=None):
        """The training and validation rows: the first ``validation_fraction``
        of the (shuffled) rows are held out, on each process of a ``group``."""
        if not self.early_stopping:
            return data, None
        n_rows = len(data)
        # Rounded up, as scikit-learn's train_test_split rounds a test_size.
        n_validation = math.ceil(self.validation_fraction * n_rows)
        if not every_process(group, n_validation < n_rows):
            # An estimator with default parameters fits any valid data, a
            # handful of rows included: it trains on them all instead.
            warnings.warn(
                f"early_stopping=True would hold out validation_fraction="
                f"{self.validation_fraction} of the rows, which leaves no training "
                f"rows with n_samples={n_rows}; {type(self).__name__} trains on "
                f"every row for max_iter={self.max_iter} epochs without early "
                "stopping. Use more rows or a smaller validation_fraction to stop "
                "early.",
                UserWarning,
                stacklevel=7,
            )
            return data, None
        return data.rows(slice(n_validation, None)), data.rows(slice(n_validation))

    def _run_epochs(self, trainer, validation, group=None):
        score = None
        if validation is not None:

            def score():
                return self._validation_score(trainer, validation, group)

        return run_epochs(
            self,
            trainer,
            validation_score=score,
            loss_scale=self._y_scale**2,
            constant_loss=self._constant_loss(),
        )

    def _validation_score(self, trainer, validation, group=None):
        """The validation score of every process's held-out rows."""
        module = trainer.averaged_module
        if self._implicit():
            n_items = len(self.items_) + 1
            score = ndcg_of_held_out(module, validation, trainer.positives, n_items)
            if group is None:
                return score
            return pooled_mean(group, score, len(torch.unique(validation.users)))
        if group is None:
            return _r2(module, validation)
        return _pooled_r2(module, validation, group)


def _check_one_score_per_row(module, n_features, factory):
    """Run a custom module on two rows: it must return a tensor of shape (2,)."""
    users = items = torch.ones(2, dtype=torch.int64)
    features = torch.zeros(2, n_features) if n_features else None
    # Evaluation mode and a forked random state: the probe must neither
    # update batch statistics nor move the random stream of the fit.
    module.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        scores = module(users, items, features)
    module.train()
    shape = tuple(getattr(scores, "shape", ()))
    if not isinstance(scores, torch.Tensor) or shape != (2,):
        raise ValueError(
            f"The module of module={factory!r} must return one score per row, a "
            f"tensor of shape (n_rows,); on 2 rows it returned "
            f"{type(scores).__name__} of shape {shape}."
        )


def _pooled_r2(module, validation, group):
    """R^2 of every process's validation rows."""
    predicted = predict_scores(module, validation)
    target = validation.targets.double().cpu().numpy()
    n, total, squares, residual = group.sum(
        [
            len(target),
            target.sum(),
            np.square(target).sum(),
            np.square(target - predicted).sum(),
        ]
    ).tolist()
    variance = squares - total**2 / n
    return 1.0 - residual / variance if variance > 0 else 0.0


def _r2(module, validation):
    predicted = predict_scores(module, validation)
    target = validation.targets.double().cpu().numpy()
    residual = np.sum((target - predicted) ** 2)
    total = np.sum((target - target.mean()) ** 2)
    return 1.0 - residual / total if total > 0 else 0.0


class MatrixFactorization(NeuralRecommender):
    """Biased matrix factorization on the engine of :class:`NeuralRecommender`.

    The rating of user ``u`` for item ``i`` is predicted as
    ``b + b_u + b_i + p_u . q_i``: a global bias, a user and an item bias and
    the dot product of their embeddings (plus ``v . x`` for side features
    ``x``), trained with Adam on the squared
    error, an L2 penalty on the embedding and bias rows (see ``alpha``) and
    early stopping. It is ``NeuralRecommender(architecture="mf")`` with
    defaults tuned for it, without the MLP's parameters; like it, it ranks
    implicit feedback with ``loss="bce"``, ``"bpr"``, ``"softmax"`` or
    ``"sampled_softmax"`` and ``recommend``, and folds new sessions in with
    ``recommend_next``.

    Parameters
    ----------
    embedding_dim : int, default=64
        Length of the user and item embedding vectors.

    biases : bool, default=True
        Add the global, user and item biases; False leaves the dot product.

    alpha : float, dict or "auto", default="auto"
        Strength of the L2 penalty on the embedding and bias tables, as in
        :class:`NeuralRecommender`. ``"auto"`` is 10, and 3 for the softmax
        losses.

    batch_size : int or "auto", default="auto"
        Rows per optimizer step. ``"auto"`` is ``min(1024, n_samples)``.

    solver : {"adam", "adamw", "sgd", "adagrad"}, default="adam"
        The optimizer.

    learning_rate : {"constant", "adaptive"}, default="constant"
        The learning-rate schedule, as in :class:`NeuralRecommender`.

    learning_rate_init : float or "auto", default="auto"
        The solver's initial learning rate. ``"auto"`` is 5e-3, and 1e-2 for
        the softmax losses.

    weight_averaging : float in [0, 1), "auto" or None, default=None
        Decay of a moving average of the weights to predict with, as in
        :class:`NeuralRecommender`; it does not help biased matrix
        factorization, hence None.

    sparse_embeddings : bool or "auto", default="auto"
        Update only the table rows of each batch, as in
        :class:`NeuralRecommender`.

    max_iter : int, default=100
        Maximum number of epochs.

    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop when their score
        has not improved for ``n_iter_no_change`` epochs, keeping the best
        epoch's weights.

    validation_fraction : float, default=0.05
        Share of the rows held out for early stopping (on the training folds
        of MovieLens-100K, 5% gave a lower validation RMSE than 10%: 0.916
        against 0.919).

    n_iter_no_change : int, default=5
        Training stops after more than ``n_iter_no_change`` consecutive epochs
        that do not improve the best score by ``tol``, as in
        :class:`~sklearn.neural_network.MLPRegressor`.

    loss : {"mse", "bce", "bpr", "softmax", "sampled_softmax"}, default="mse"
        Training loss, as in :class:`NeuralRecommender`. ``"mse"`` fits
        ratings; the others rank implicit feedback. ``"softmax"`` is the
        cross-entropy of each row's item among every item, on one matrix
        product of the batch's user vectors with the item table;
        ``"sampled_softmax"`` among the row's item and ``n_negatives`` items
        shared by the batch, log-Q corrected, which costs less on large
        catalogs.

    n_negatives : int or "auto", default="auto"
        Negative items sampled per positive row by ``"bce"`` and ``"bpr"``,
        or shared by a batch with the sampled softmax: ``"auto"`` is 4 for
        the former and 256 for the latter.

    negative_sampling : {"uniform", "popularity", "hard"}, default="uniform"
        How the implicit losses draw negative items, as in
        :class:`NeuralRecommender`.

    device : str, default="auto"
        Where to train and predict.

    n_jobs : int, default=None
        The CPU threads torch trains and predicts on, as in
        :class:`NeuralRecommender`: by default the usable cores, fewer while
        other processes keep them busy.

    distributed : "auto" or bool, default="auto"
        Data-parallel training over ``torch.distributed``, as in
        :class:`NeuralRecommender`: in a process group of several processes,
        each passes its shard of the rows and they fit one model together.

    handle_unknown : {"fallback", "error"}, default="fallback"
        What ``predict`` does with users or items not seen in fit.

    user_col, item_col : int or str, default=0 and 1
        Position or name of the user and item ID columns of ``X``. Other
        columns are numeric side features, which add a linear term to the
        score.

    user_features, item_features : list of str or int, or callable, default=None
        Side-feature columns that describe the user or the item, kept per user
        and per item as in :class:`NeuralRecommender`.

    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and the batch order.

    warm_start : bool, default=False
        Continue from the previous fit's weights.

    verbose : bool, default=False
        Print one line per epoch, and progress lines within long epochs.

    Attributes
    ----------
    users_ : ndarray of shape (n_users,)
        User IDs seen in fit.

    items_ : ndarray of shape (n_items,)
        Item IDs seen in fit.

    module_ : torch.nn.Module
        The trained model.

    architecture_ : str
        Always ``"mf"``.

    n_iter_ : int
        Epochs run.

    loss_curve_ : list of float
        Training loss per epoch.

    validation_scores_ : list of float or None
        Validation score per epoch; None without early stopping.

    n_features_in_ : int
        Number of columns of ``X``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` when it is a DataFrame with string names.

    See Also
    --------
    NeuralRecommender : The same engine with an MLP and side features.
    BaselineRecommender : The bias terms alone, fitted by ALS.

    Examples
    --------
    >>> from skrec import MatrixFactorization
    >>> from skrec.datasets import make_ratings
    >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
    >>> est = MatrixFactorization(
    ...     embedding_dim=8, learning_rate_init=0.05, random_state=0
    ... )
    >>> est.fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _auto_alpha = 10.0
    _auto_learning_rate = 5e-3

    # Fixed for this estimator, hence class attributes and not parameters.
    architecture = "mf"
    hidden_layer_sizes = ()
    activation = "relu"
    dropout = 0.0
    module = None

    _parameter_constraints = {
        name: constraint
        for name, constraint in NeuralRecommender._parameter_constraints.items()
        if name
        not in {"architecture", "hidden_layer_sizes", "activation", "dropout", "module"}
    }

    def __init__(
        self,
        embedding_dim=64,
        *,
        biases=True,
        alpha="auto",
        batch_size="auto",
        solver="adam",
        learning_rate="constant",
        learning_rate_init="auto",
        weight_averaging=None,
        sparse_embeddings="auto",
        max_iter=100,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.05,
        n_iter_no_change=5,
        loss="mse",
        n_negatives="auto",
        negative_sampling="uniform",
        device="auto",
        n_jobs=None,
        distributed="auto",
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
        user_features=None,
        item_features=None,
        random_state=None,
        warm_start=False,
        verbose=False,
    ):
        self.embedding_dim = embedding_dim
        self.biases = biases
        self.alpha = alpha
        self.batch_size = batch_size
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.weight_averaging = weight_averaging
        self.sparse_embeddings = sparse_embeddings
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.device = device
        self.n_jobs = n_jobs
        self.distributed = distributed
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.user_features = user_features
        self.item_features = item_features
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
