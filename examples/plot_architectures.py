"""
Comparing network architectures
===============================

``architecture=`` chooses how :class:`~skrec.NeuralRecommender` turns a user's
and an item's embeddings into a rating. Every choice adds a global, a user and
an item bias:

- ``"neumf"`` (the default): an MLP on the concatenated embeddings plus their
  dot product, as in He et al.'s neural collaborative filtering;
- ``"mlp"``: the MLP alone;
- ``"gmf"``: generalized matrix factorization, the element-wise product of the
  embeddings weighted per dimension;
- ``"mf"``: their dot product, that is biased matrix factorization (also
  available as :class:`~skrec.MatrixFactorization`, with its own defaults);
- ``"svdpp"``: the dot product after adding to each user's embedding the
  average of learned vectors of the items the user rated, and the same for
  items (SVD++).

This example fits each on the same data with the same training settings and
plots test RMSE against fit time.
"""

import time

import matplotlib.pyplot as plt
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split

from skrec import NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

# %%
# Load the data
# -------------
try:
    X_train, X_test, y_train, y_test = load_movielens(
        "100k", fold=1, return_X_y=True, download_if_missing=False
    )
    print("MovieLens-100K, fold u1")
except OSError:
    X, y = make_ratings(
        n_users=943, n_items=1682, n_ratings=100_000, as_frame=True, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0
    )
    print("MovieLens-100K not found: synthetic ratings from make_ratings")

# %%
# Fit every architecture
# ----------------------
#
# The settings are shared, and reduced for speed: 32-dimensional embeddings,
# 2048 ratings per step with a learning rate of 0.005, and early stopping after
# two epochs without improvement. The penalty is ``alpha=10``, the default of
# :class:`~skrec.MatrixFactorization`: at ``NeuralRecommender``'s default of
# 80, which suits the MLP, the penalty shrinks the embeddings of the
# dot-product models to almost nothing and leaves them little more than the
# biases. None of the settings is tuned for a particular architecture;
# :ref:`sphx_glr_auto_examples_plot_grid_search.py` shows how to tune them.
settings = {
    "embedding_dim": 32,
    "alpha": 10.0,
    "batch_size": 2048,
    "learning_rate_init": 5e-3,
    "n_iter_no_change": 2,
    "random_state": 0,
}
results = {}
for architecture in ["neumf", "mlp", "gmf", "mf", "svdpp"]:
    model = NeuralRecommender(architecture=architecture, **settings)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    rmse = root_mean_squared_error(y_test, model.predict(X_test))
    n_weights = sum(p.numel() for p in model.module_.parameters())
    results[architecture] = (seconds, rmse)
    print(
        f"{architecture:<6} RMSE {rmse:.4f}  fit {seconds:5.1f} s  "
        f"{model.n_iter_:3d} epochs  {n_weights:,} weights"
    )

# %%
# Accuracy against cost
# ---------------------
#
# With these settings the four models without a history of rated items end up
# within a hundredth of each other on MovieLens-100K, and SVD++, which also
# learns from which movies each user rated, is clearly the most accurate. The
# fit times depend on the machine and on the number of epochs that early
# stopping lets each model run; the RMSEs are reproducible with
# ``random_state=0``.
fig, ax = plt.subplots(figsize=(6, 4))
for architecture, (seconds, rmse) in results.items():
    ax.scatter(seconds, rmse, s=60)
    ax.annotate(
        architecture, (seconds, rmse), textcoords="offset points", xytext=(6, 4)
    )
ax.set_xlabel("fit time (s)")
ax.set_ylabel("test RMSE (lower is better)")
ax.set_title("NeuralRecommender(architecture=...)")
ax.margins(0.2)
fig.tight_layout()
plt.show()
