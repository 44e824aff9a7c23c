"""
Next-item recommendation from ordered histories
===============================================

What a user does next depends on what they did last. The implicit-feedback
rankers of the previous examples see only *which* items a user interacted
with; :class:`~skrec.SequentialRecommender` reads each user's interactions in
time order and learns, at every position of every history, which item comes
next. This example holds out each user's latest interaction with
:class:`~skrec.model_selection.LeaveLastOut` and compares the sequential model
with :class:`~skrec.NeuralRecommender` trained with a BPR loss and with the
most-popular-items baseline :class:`~skrec.PopularityRecommender`, ranking
every item the user has not seen. It ends with
:meth:`~skrec.SequentialRecommender.recommend_next`, which recommends for a
new session from the items it holds, without refitting.

The split and the metrics are those of
:ref:`sphx_glr_auto_examples_plot_implicit_recommend.py`;
:doc:`/user_guide/sequential` explains the choices behind each step.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

from skrec import NeuralRecommender, PopularityRecommender, SequentialRecommender
from skrec.datasets import load_movielens, make_sequences
from skrec.metrics import hit_rate_at_k, ndcg_at_k
from skrec.model_selection import LeaveLastOut

# %%
# Load the interactions
# ---------------------
#
# All of MovieLens-100K with its timestamps (the ``frame`` of the returned
# Bunch); every rating counts as an interaction and the rating itself is
# ignored. Without the data, :func:`~skrec.datasets.make_sequences` generates
# timestamped histories of the same number of users and items, in which each
# item has a few likely successors: a signal that only a model of the order
# can use.
try:
    interactions = load_movielens("100k", download_if_missing=False).frame
    print("MovieLens-100K")
except OSError:
    interactions = make_sequences(
        n_users=943, n_items=1682, mean_length=106, random_state=0
    )
    print("MovieLens-100K not found: synthetic histories from make_sequences")
interactions = interactions[["user_id", "item_id", "timestamp"]]
interactions.head()

# %%
# Hold out each user's latest interaction
# ---------------------------------------
#
# The test set holds each user's latest interaction, the training set all the
# earlier ones. Interactions of a user with the same timestamp are frequent in
# MovieLens (ratings entered in the same second); ``LeaveLastOut`` counts the
# one with the greatest item ID as the latest. ``SequentialRecommender`` keeps
# tied rows in their order in ``X``, so shuffling the training rows puts the
# ties in a random order: the model cannot learn the split's tie-break
# instead of what users do.
cv = LeaveLastOut(timestamp_col="timestamp")
train, test = next(cv.split(interactions))
X_train = interactions.iloc[train].sample(frac=1.0, random_state=0)
X_test = interactions.iloc[test]
print(f"{len(X_train):,} training interactions, {len(X_test):,} held out")

# %%
# Fit the three models
# --------------------
#
# ``SequentialRecommender`` reads the user, item and time columns by name and
# ignores any other; it keeps its default parameters here, a self-attentive
# network (``architecture="sasrec"``) with early stopping on each user's
# latest training interaction. The two other models take only the ID columns:
# ``NeuralRecommender`` would read the timestamp as a side feature. Its
# settings are those of the implicit-feedback example.
ids = ["user_id", "item_id"]
models = {
    "SequentialRecommender": SequentialRecommender(
        user_col="user_id", item_col="item_id", time_col="timestamp", random_state=0
    ),
    "NeuralRecommender (BPR)": NeuralRecommender(
        loss="bpr",
        alpha=0.5,
        hidden_layer_sizes=(),
        learning_rate_init=2e-2,
        batch_size=8192,
        n_iter_no_change=3,
        random_state=0,
    ),
    "PopularityRecommender": PopularityRecommender(),
}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train if isinstance(model, SequentialRecommender) else X_train[ids])
    epochs = f", {model.n_iter_} epochs" if hasattr(model, "n_iter_") else ""
    print(f"{name:<24} fitted in {time.perf_counter() - start:5.1f} s{epochs}")

# %%
# Rank every item
# ---------------
#
# Each model recommends ten items to every test user, leaving out the items
# the user interacted with in fit; the held-out item is the one relevant
# item. HR@10 is the share of users who find it in their list, NDCG@10 also
# rewards finding it near the top. Both rank every unseen item, not a sample
# of them: sampled metrics hide most of the difference between these models.
users = X_test["user_id"].to_numpy()
relevant = X_test["item_id"].to_numpy()[:, np.newaxis]
scores = {}
for name, model in models.items():
    top = model.recommend(users, n=10)
    scores[name] = {
        "HR@10": hit_rate_at_k(relevant, top, k=10),
        "NDCG@10": ndcg_at_k(relevant, top, k=10),
    }
    print(
        f"{name:<24} HR@10 {scores[name]['HR@10']:.4f}  "
        f"NDCG@10 {scores[name]['NDCG@10']:.4f}"
    )

# %%
# With a few hundred test users, differences of a hundredth or two can be
# noise (see :doc:`/user_guide/evaluation`); the gap between the sequential
# model and the two others is not.
fig, ax = plt.subplots(figsize=(7, 3.5))
width = 0.27
positions = np.arange(2)
for offset, (name, metrics) in enumerate(scores.items()):
    bars = ax.bar(
        positions + (offset - 1) * width, list(metrics.values()), width, label=name
    )
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
ax.set_xticks(positions, ["HR@10", "NDCG@10"])
ax.set_ylabel("full ranking, leave-last-out")
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# Recommend for a new session
# ---------------------------
#
# A visitor who is not among the users of fit has only the items of their
# current session. ``recommend_next`` reads each session as ``fit`` reads a
# history, the most recent item last, and scores every item after it, without
# refitting; it leaves out the session's own items. Here the session is the
# first five interactions of a test user, in time order; the second holds its
# latest item alone, the third nothing, and the fourth an ID unseen in fit
# before the same five items.
sequential = models["SequentialRecommender"]
history = interactions[interactions["user_id"] == users[0]]
session = history.sort_values("timestamp", kind="stable")["item_id"][:5].tolist()
sessions = [session, session[-1:], [], ["an unknown item", *session]]
for items, top in zip(sessions, sequential.recommend_next(sessions, n=5), strict=True):
    print(f"{str(items):<46} -> {top.tolist()}")

# %%
# The unknown ID is skipped, so the fourth session gets the recommendations of
# the first, and the empty session gets the most popular items, as a user
# unseen in fit does in ``recommend``.
