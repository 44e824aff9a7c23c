"""
Learning curves and early stopping
==================================

:class:`~skrec.NeuralRecommender` records its training as
:class:`~sklearn.neural_network.MLPRegressor` does: ``loss_curve_`` holds the
training loss of each epoch and, with early stopping (on by default),
``validation_scores_`` the R² of the held-out ratings. Training stops once the
validation score has stopped improving, and the model keeps the weights of
its best epoch. This example plots both curves, and then uses ``partial_fit``,
one epoch per call, to follow the test error of a model trained without early
stopping: it shows the overfitting that early stopping avoids.
"""

import matplotlib.pyplot as plt
import numpy as np
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
# Fit with early stopping
# -----------------------
#
# ``validation_fraction=0.05`` of the training ratings are held out; after each
# epoch the model scores them, and it stops when the score has not improved by
# ``tol`` for more than ``n_iter_no_change`` epochs. For speed this example
# uses 32-dimensional embeddings and 2048 ratings per step with twice the
# default learning rate, instead of 64 and 1024. It also predicts with the
# weights of the last step (``weight_averaging=None``) rather than with their
# moving average, as ``partial_fit`` does below, so that the two models train
# alike.
params = {
    "embedding_dim": 32,
    "batch_size": 2048,
    "learning_rate_init": 2e-3,
    "weight_averaging": None,
    "random_state": 0,
}
model = NeuralRecommender(**params).fit(X_train, y_train)
best_epoch = int(np.argmax(model.validation_scores_)) + 1
test_rmse = root_mean_squared_error(y_test, model.predict(X_test))
print(f"epochs run (n_iter_): {model.n_iter_}")
print(f"best epoch: {best_epoch}, validation R²: {model.best_validation_score_:.4f}")
print(f"test RMSE with the weights of the best epoch: {test_rmse:.4f}")

# %%
# The training loss keeps falling while the validation score peaks and then
# declines: past the best epoch the model memorises the training ratings.
epochs = np.arange(1, model.n_iter_ + 1)
fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(8, 3.5), sharex=True)
ax_loss.plot(epochs, model.loss_curve_, marker="o", markersize=3)
ax_loss.set_title("loss_curve_")
ax_loss.set_ylabel("training loss (mean squared error)")
ax_val.plot(epochs, model.validation_scores_, marker="o", markersize=3)
ax_val.set_title("validation_scores_")
ax_val.set_ylabel("R² of the held-out ratings")
for ax in (ax_loss, ax_val):
    ax.axvline(best_epoch, color="tab:red", linestyle="--", label="best epoch")
    ax.set_xlabel("epoch")
ax_val.legend()
fig.tight_layout()
plt.show()

# %%
# Follow the test error epoch by epoch
# ------------------------------------
#
# ``partial_fit`` trains for one epoch per call, with no early stopping, so a
# loop can score the model after each epoch on data of its choice: here the
# training and the test ratings, for ten epochs past the point where early
# stopping stopped.
watched = NeuralRecommender(**params)
train_rmse, test_rmse_per_epoch = [], []
for _ in range(model.n_iter_ + 10):
    watched.partial_fit(X_train, y_train)
    train_rmse.append(root_mean_squared_error(y_train, watched.predict(X_train)))
    test_rmse_per_epoch.append(root_mean_squared_error(y_test, watched.predict(X_test)))
lowest = int(np.argmin(test_rmse_per_epoch)) + 1
print(f"lowest test RMSE {min(test_rmse_per_epoch):.4f} after {lowest} epochs")
print(f"after {len(test_rmse_per_epoch)} epochs: {test_rmse_per_epoch[-1]:.4f}")

# %%
# Early stopping chose its epoch on held-out training ratings, without seeing
# the test ratings, and lands close to the lowest test error.
epochs = np.arange(1, len(train_rmse) + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs, train_rmse, marker="o", markersize=3, label="training ratings")
ax.plot(epochs, test_rmse_per_epoch, marker="o", markersize=3, label="test ratings")
ax.axhline(test_rmse, color="tab:red", linestyle="--", label="fit, early stopping")
ax.set_xlabel("epochs of partial_fit")
ax.set_ylabel("RMSE")
ax.set_title("Training without early stopping")
ax.legend()
fig.tight_layout()
plt.show()
