"""
Cross-validation and grid search
================================

:class:`~skrec.NeuralRecommender` is a scikit-learn estimator, so the model
selection tools of scikit-learn work on it unchanged:
:func:`~sklearn.model_selection.cross_val_score` estimates its error on
unseen ratings, and :class:`~sklearn.model_selection.GridSearchCV` tunes its
hyper-parameters, here the embedding size and the strength ``alpha`` of the L2
penalty on the embeddings, by the root mean squared error (RMSE) of
cross-validation.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_val_score,
    train_test_split,
)

from skrec import BaselineRecommender, NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

# %%
# Load the data
# -------------
#
# MovieLens-100K fold ``u1`` when the data directory (``SKREC_DATA``, else
# ``~/skrec_data``) holds it, synthetic ratings of the same size otherwise.
# The cross-validation below splits the training ratings only; the test
# ratings are kept for the final check of the selected model.
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
# A model that trains fast
# ------------------------
#
# A search fits the model once per setting and per fold, so this example
# trades a little accuracy for speed: a single hidden layer of 32 units, 8192
# ratings per step with a learning rate of 0.02, and early stopping once the
# validation R² has improved by less than ``tol=1e-3`` for more than two
# epochs. Each fit then takes about a second on two CPU cores; the defaults,
# ``NeuralRecommender(random_state=0)``, are more accurate and several times
# slower.
fast = NeuralRecommender(
    hidden_layer_sizes=(32,),
    batch_size=8192,
    learning_rate_init=2e-2,
    tol=1e-3,
    n_iter_no_change=2,
    random_state=0,
)
cv = KFold(n_splits=3, shuffle=True, random_state=0)

# %%
# Cross-validation
# ----------------
#
# ``cross_val_score`` fits a clone of the estimator on two thirds of the
# training ratings and scores it on the last third, three times. scikit-learn
# scorers are "higher is better", hence the negated RMSE. The bias baseline
# goes through the same folds.
scoring = "neg_root_mean_squared_error"
cv_rmse = {
    "user + item biases": -cross_val_score(
        BaselineRecommender(), X_train, y_train, cv=cv, scoring=scoring
    ),
    "NeuralRecommender": -cross_val_score(
        fast, X_train, y_train, cv=cv, scoring=scoring
    ),
}
for name, scores in cv_rmse.items():
    print(f"{name:<20} CV RMSE {scores.mean():.4f} ± {scores.std():.4f}")

# %%
# Grid search
# -----------
#
# Two embedding sizes and two penalty strengths make four settings, each fitted
# on the three folds. The penalty ``alpha`` pulls users and items with few
# ratings towards the average; unlike ``MLPRegressor``'s it is not scaled by
# the number of ratings, so useful values are in the tens. After the search,
# ``GridSearchCV`` refits the best setting on all the training ratings.
param_grid = {"embedding_dim": [16, 64], "alpha": [20.0, 80.0]}
search = GridSearchCV(fast, param_grid, cv=cv, scoring=scoring)
search.fit(X_train, y_train)

results = pd.DataFrame(search.cv_results_)
results["mean RMSE"] = -results["mean_test_score"]
results["std RMSE"] = results["std_test_score"]
print(results[["params", "mean RMSE", "std RMSE", "mean_fit_time"]])
print(f"best setting: {search.best_params_}")

# %%
# The selected model on the test fold
# -----------------------------------
#
# ``search`` itself predicts with the refitted best model.
test_rmse = root_mean_squared_error(y_test, search.predict(X_test))
print(f"test RMSE of the selected model: {test_rmse:.4f}")

# %%
# Plot the cross-validated RMSE of each setting, with one standard deviation
# over the folds, beside the bias baseline. On MovieLens-100K the four settings
# lie within a few thousandths of each other, about the spread over the folds:
# all beat the baseline, and none clearly beats the others.
labels = [f"dim={p['embedding_dim']}, alpha={p['alpha']:g}" for p in results["params"]]
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
positions = np.arange(len(labels))
ax.errorbar(
    results["mean RMSE"],
    positions,
    xerr=results["std RMSE"],
    fmt="o",
    capsize=4,
    label="NeuralRecommender",
)
baseline = cv_rmse["user + item biases"].mean()
ax.axvline(baseline, color="tab:gray", linestyle="--", label="user + item biases")
best = search.best_index_
ax.plot(results["mean RMSE"][best], best, "*", color="tab:red", markersize=14)
ax.set_yticks(positions, labels)
ax.invert_yaxis()
ax.set_xlabel("mean RMSE over 3 folds (lower is better)")
ax.set_title("GridSearchCV over NeuralRecommender")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
plt.show()
