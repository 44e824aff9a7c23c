"""
Saving and loading models
=========================

A fitted skrec model is a plain Python object: :mod:`pickle` and
:mod:`joblib` save and load it like any scikit-learn estimator, and its network
travels as numpy arrays, so a model fitted on a GPU loads on a machine without
one. Loading a pickle runs code from the file, though, so load pickles only
from sources you trust. For models from elsewhere, `skops
<https://skops.readthedocs.io>`_ loads only the types it is told to trust:
:data:`skrec.SKOPS_TRUSTED_TYPES` lists skrec's estimators and the one scipy
type they hold, nothing else. This example saves a model in all three ways
and checks that every copy predicts exactly as the original.
"""

import pickle
import shutil
import tempfile
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
import skops.io
from sklearn.model_selection import train_test_split

import skrec
from skrec import NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

# %%
# Fit a model
# -----------
#
# A small network trained in large steps (16-dimensional embeddings, one
# hidden layer, 4096 ratings per step) is enough here: what matters is that it
# is fitted.
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

model = NeuralRecommender(
    embedding_dim=16,
    hidden_layer_sizes=(32,),
    batch_size=4096,
    learning_rate_init=1e-2,
    tol=1e-3,
    n_iter_no_change=2,
    random_state=0,
).fit(X_train, y_train)
y_pred = model.predict(X_test)
print(f"fitted in {model.n_iter_} epochs, test R² {model.score(X_test, y_test):.4f}")

# %%
# pickle and joblib
# -----------------
folder = Path(tempfile.mkdtemp())
with open(folder / "model.pkl", "wb") as f:
    pickle.dump(model, f)
with open(folder / "model.pkl", "rb") as f:
    from_pickle = pickle.load(f)

joblib.dump(model, folder / "model.joblib")
from_joblib = joblib.load(folder / "model.joblib")

for name, loaded in [("pickle", from_pickle), ("joblib", from_joblib)]:
    same = np.array_equal(loaded.predict(X_test), y_pred)
    print(f"{name}: identical predictions: {same}, device {loaded.device_}")

# %%
# skops: load without running code from the file
# ----------------------------------------------
#
# ``skops.io.load`` refuses any type that is neither trusted by default
# (builtins, numpy, scikit-learn) nor listed in ``trusted``.
# ``get_untrusted_types`` shows what a file would need.
skops.io.dump(model, folder / "model.skops")
print("untrusted types in the file:")
print(skops.io.get_untrusted_types(file=folder / "model.skops"))
print("skrec.SKOPS_TRUSTED_TYPES:")
print(skrec.SKOPS_TRUSTED_TYPES)

# %%
# Without ``trusted``, loading fails; with :data:`skrec.SKOPS_TRUSTED_TYPES`,
# it succeeds.
try:
    skops.io.load(folder / "model.skops")
except skops.io.exceptions.UntrustedTypesFoundException as exc:
    print(f"refused: {exc}")
from_skops = skops.io.load(folder / "model.skops", trusted=skrec.SKOPS_TRUSTED_TYPES)
y_skops = from_skops.predict(X_test)
print(f"skops: identical predictions: {np.array_equal(y_skops, y_pred)}")
shutil.rmtree(folder)

# %%
# A loaded model is a fitted estimator like the original: it recommends,
# scores and can go on training with ``partial_fit``.
print(from_skops.recommend([1, 2], n=5))

# %%
# Plot the predictions of each loaded copy against the original's: every
# point lies on the diagonal.
fig, ax = plt.subplots(figsize=(4.5, 4.5))
for name, loaded in [("pickle", from_pickle), ("skops", from_skops)]:
    ax.scatter(y_pred, loaded.predict(X_test), s=4, alpha=0.3, label=name)
ax.plot([1, 5], [1, 5], color="black", linewidth=0.8)
ax.set_xlabel("prediction of the fitted model")
ax.set_ylabel("prediction after loading")
ax.set_title("Save, load, predict the same")
ax.legend()
fig.tight_layout()
plt.show()
