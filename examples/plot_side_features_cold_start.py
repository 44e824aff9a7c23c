"""
Side features and cold-start items
==================================

An item nobody has rated yet has no learned embedding: a model of IDs alone
can only give it an average rating. When ``X`` also describes the items
(genres, release year) and the users (age, occupation), and the model is told
which columns describe whom with ``item_features=`` and ``user_features=``,
:class:`~skrec.NeuralRecommender` predicts a new item's ratings from its
features. This example encodes MovieLens-100K's user and item features with a
scikit-learn :class:`~sklearn.compose.ColumnTransformer` in a
:class:`~sklearn.pipeline.Pipeline`, withholds the ratings of a tenth of the
movies from training, and compares the error on those cold-start movies with
that of the global mean and of a model without features.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skrec import BaselineRecommender, NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

# %%
# Load ratings with features
# --------------------------
#
# ``load_movielens(fold=1, features=True)`` joins each rating with its user's
# age, gender, occupation and ZIP code prefix (``u.user``) and its movie's
# release year and 19 genre flags (``u.item``). The synthetic fallback makes up
# features with the same columns; they carry no signal, so on it the features
# cannot help.
try:
    data = load_movielens("100k", fold=1, features=True, download_if_missing=False)
    X_train, X_test = data.data, data.data_test
    y_train, y_test = data.target, data.target_test
    print("MovieLens-100K, fold u1")
except OSError:
    X, y = make_ratings(
        n_users=943, n_items=1682, n_ratings=100_000, as_frame=True, random_state=0
    )
    rng = np.random.RandomState(0)
    users = pd.DataFrame(
        {
            "age": rng.randint(18, 70, 943),
            "gender": rng.choice(["F", "M"], 943),
            "occupation": rng.choice(["engineer", "student", "other"], 943),
            "zip_prefix": rng.choice(list("0123456789"), 943),
        }
    )
    items = pd.DataFrame({"release_year": rng.randint(1930, 1999, 1682) * 1.0})
    for genre in ["action", "comedy", "drama"]:
        items[f"genre_{genre}"] = rng.randint(0, 2, 1682)
    X = pd.concat(
        [X, users.loc[X["user_id"]].reset_index(drop=True)]
        + [items.loc[X["item_id"]].reset_index(drop=True)],
        axis=1,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0
    )
    print("MovieLens-100K not found: synthetic ratings from make_ratings")
X_train.iloc[:3, :9]

# %%
# Make some movies new
# --------------------
#
# A few movies of the test fold already never occur in the training fold. To
# measure cold start on more than a handful of ratings, the training ratings
# of a random tenth of the movies are dropped too: for the models these movies
# are new, and the test ratings split into warm rows (movie seen in fit) and
# cold rows (movie new).
rng = np.random.RandomState(0)
all_items = np.unique(np.concatenate([X_train["item_id"], X_test["item_id"]]))
withheld = rng.choice(all_items, size=len(all_items) // 10, replace=False)
keep = ~X_train["item_id"].isin(withheld)
X_fit, y_fit = X_train[keep], y_train[keep]
cold = ~X_test["item_id"].isin(X_fit["item_id"]).to_numpy()
print(
    f"{len(X_fit):,} training ratings; test ratings of new movies: {cold.sum():,}, "
    f"of known movies: {(~cold).sum():,}"
)

# %%
# Encode the features with scikit-learn
# -------------------------------------
#
# skrec's models take numeric side features, so the string columns are one-hot
# encoded, the age is standardised and the one missing release year is
# imputed; the ID columns pass through untouched. ``set_output`` keeps a
# DataFrame, so that the model can find its columns by name.
encode = ColumnTransformer(
    [
        ("onehot", OneHotEncoder(sparse_output=False), ["occupation", "gender"]),
        ("age", StandardScaler(), ["age"]),
        ("year", SimpleImputer(strategy="median"), ["release_year"]),
        ("drop", "drop", ["zip_prefix"]),
    ],
    remainder="passthrough",
    verbose_feature_names_out=False,
).set_output(transform="pandas")

# %%
# Declare which features describe whom
# ------------------------------------
#
# ``user_features`` and ``item_features`` name the columns that describe the
# user and the item, here with
# :func:`~sklearn.compose.make_column_selector` patterns. The model keeps them
# per user and per item, and scores a user or an item unseen in fit from the
# features of its row. For speed, both neural models take steps of 4096
# ratings instead of the default 1024, with a learning rate four times the
# default.
speed = {"batch_size": 4096, "learning_rate_init": 4e-3, "random_state": 0}
with_features = make_pipeline(
    encode,
    NeuralRecommender(
        user_col="user_id",
        item_col="item_id",
        user_features=make_column_selector("^occupation|^gender|^age"),
        item_features=make_column_selector("^genre|^release"),
        **speed,
    ),
)
models = {
    "global mean": BaselineRecommender(strategy="global_mean"),
    "user + item biases": BaselineRecommender(strategy="biases"),
    "NeuralRecommender, IDs only": NeuralRecommender(**speed),
    "NeuralRecommender + features": with_features,
}
id_columns = ["user_id", "item_id"]
rmse, mean_prediction = {}, {}
for name, model in models.items():
    # The models without features get the ID columns only: any other numeric
    # column would be taken for a side feature.
    columns = X_fit.columns if model is with_features else id_columns
    model.fit(X_fit[columns], y_fit)
    y_pred = model.predict(X_test[columns])
    rmse[name] = {
        "known movies": root_mean_squared_error(y_test[~cold], y_pred[~cold]),
        "new movies": root_mean_squared_error(y_test[cold], y_pred[cold]),
    }
    mean_prediction[name] = y_pred[cold].mean()
rmse = pd.DataFrame(rmse).T
print(rmse.round(4))

# %%
# The declared features lower the error on known and on new movies: for a new
# movie, the model with features uses its genres and year, and the user's
# taste for them, where the model of IDs alone knows the user only. On new
# movies the bias baseline, the global mean plus the user's offset, remains
# the one to beat, though. A neural model scores a new movie as the average of
# the movies it learned, and most movies are rarely rated and rated below the
# global mean, so its predictions for new movies run low:
print(f"mean rating of the new movies' test ratings: {y_test[cold].mean():.2f}")
for name, value in mean_prediction.items():
    print(f"mean prediction, {name}: {value:.2f}")

# %%
# With declared features, ``recommend`` works as without them:
recommender = with_features[-1]
print(recommender.recommend([1, 2], n=5))

# %%
# Plot the RMSE on known and on new movies
# ----------------------------------------
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
rmse.plot.barh(ax=ax, width=0.8)
for container in ax.containers:
    ax.bar_label(container, fmt="%.3f", padding=2, fontsize=8)
ax.invert_yaxis()
ax.set_xlim(round(rmse.to_numpy().min() - 0.15, 1), rmse.to_numpy().max() + 0.1)
ax.set_xlabel("test RMSE (lower is better)")
ax.set_title("Cold start: movies without ratings in fit")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2)
plt.show()
