"""
Top-N recommendation from implicit feedback
===========================================

Clicks, plays and purchases say which items a user interacted with, not how
much they liked them. With an implicit-feedback loss, ``loss="bpr"`` (Bayesian
personalised ranking) or ``loss="bce"``, :class:`~skrec.NeuralRecommender`
treats every row of ``X`` as a positive interaction, samples items the user
did not interact with as negatives, and learns to rank the first above the
second. ``recommend`` then returns each user's top items. This example holds
out each user's latest interaction with
:class:`~skrec.model_selection.LeaveLastOut`, recommends ten items and more to
every user, and measures how often the held-out item is among them with the
ranking metrics of :mod:`skrec.metrics`, against the most-popular-items
baseline :class:`~skrec.PopularityRecommender`.
"""

import matplotlib.pyplot as plt
import numpy as np

from skrec import NeuralRecommender, PopularityRecommender
from skrec.datasets import load_movielens, make_ratings
from skrec.metrics import hit_rate_at_k, ndcg_at_k
from skrec.model_selection import LeaveLastOut

# %%
# Load the interactions
# ---------------------
#
# The leave-last-out split needs the time of each interaction, so this example
# loads all of MovieLens-100K with its timestamps (the ``frame`` of the
# returned Bunch) rather than a fold. Every rating counts as an interaction;
# the rating itself is ignored. Without the data, synthetic ratings stand in,
# with their (random) row order as the time order.
try:
    ratings = load_movielens("100k", download_if_missing=False).frame
    print("MovieLens-100K")
except OSError:
    X, y = make_ratings(
        n_users=943, n_items=1682, n_ratings=100_000, as_frame=True, random_state=0
    )
    ratings = X.assign(rating=y, timestamp=np.arange(len(X)))
    print("MovieLens-100K not found: synthetic ratings from make_ratings")
ratings.head()

# %%
# Hold out each user's latest interaction
# ---------------------------------------
#
# :class:`~skrec.model_selection.LeaveLastOut` is a scikit-learn
# cross-validator with a single split: the test set holds each user's latest
# interaction, the training set all the earlier ones. Only the two ID columns
# go to the models: any other numeric column would be taken for a side
# feature.
cv = LeaveLastOut(timestamp_col="timestamp")
train, test = next(cv.split(ratings))
X_train = ratings.iloc[train][["user_id", "item_id"]]
X_test = ratings.iloc[test][["user_id", "item_id"]]
print(f"{len(X_train):,} training interactions, {len(X_test):,} held out")

# %%
# Fit a ranker and the popularity baseline
# ----------------------------------------
#
# ``fit`` needs no ``y``: every row is an interaction, and ``n_negatives=4``
# items the user did not interact with are sampled against each. The settings
# suit ranking better than the defaults, which are tuned for ratings: a weak
# penalty (``alpha=0.5``), no hidden layer (the embeddings' dot product and a
# linear term do the ranking), and large steps of 8192 rows with a learning
# rate of 0.02, which also keep training short.
ranker = NeuralRecommender(
    loss="bpr",
    alpha=0.5,
    hidden_layer_sizes=(),
    learning_rate_init=2e-2,
    batch_size=8192,
    n_iter_no_change=3,
    random_state=0,
).fit(X_train)
popular = PopularityRecommender().fit(X_train)
print(f"{ranker.n_iter_} epochs")

# %%
# With an implicit loss, early stopping holds out a random tenth of the
# interactions and watches their NDCG@10. Each user has several of them, some
# among their earliest interactions, so this validation score runs far higher
# than the leave-last-out test below, where one future item is to be found.
print(f"best validation NDCG@10: {ranker.best_validation_score_:.3f}")

# %%
# Recommend
# ---------
#
# ``recommend(users, n)`` returns the IDs of each user's ``n`` best items,
# best first, leaving out the items the user interacted with in fit.
users = X_test["user_id"].to_numpy()
top = {
    "NeuralRecommender (BPR)": ranker.recommend(users, n=20),
    "PopularityRecommender": popular.recommend(users, n=20),
}
print(f"user {users[0]}: top 5 {top['NeuralRecommender (BPR)'][0, :5].tolist()}")

# %%
# Ranking metrics
# ---------------
#
# The relevant items of each user are the held-out ones: one per user here.
# The hit rate at ``k`` is the share of users whose held-out item is in their
# top ``k``; NDCG at ``k`` also rewards finding it near the top. Both rank
# every item the user has not interacted with, not a sample of them.
relevant = X_test["item_id"].to_numpy()[:, np.newaxis]
ks = np.arange(1, 21)
curves = {
    name: {
        "HR": [hit_rate_at_k(relevant, items, k=k) for k in ks],
        "NDCG": [ndcg_at_k(relevant, items, k=k) for k in ks],
    }
    for name, items in top.items()
}
for name, curve in curves.items():
    print(f"{name:<24} HR@10 {curve['HR'][9]:.4f}  NDCG@10 {curve['NDCG'][9]:.4f}")

# %%
# The estimator's own ``score`` is the NDCG@10 of the same full ranking:
print(f"ranker.score(X_test) = {ranker.score(X_test):.4f}")

# %%
# Plot both metrics against ``k``. With a single held-out item to find among
# more than a thousand candidates, hit rates at ``k=10`` below 0.1 are usual
# on this data; what matters is the gap to the popularity baseline.
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), sharex=True)
for name, curve in curves.items():
    for ax, metric in zip(axes, ["HR", "NDCG"], strict=True):
        ax.plot(ks, curve[metric], marker="o", markersize=3, label=name)
for ax, metric in zip(axes, ["hit rate", "NDCG"], strict=True):
    ax.set_xlabel("k (length of the list)")
    ax.set_title(f"{metric} at k, leave-last-out")
    ax.set_xticks([1, 5, 10, 15, 20])
axes[0].legend()
fig.tight_layout()
plt.show()
