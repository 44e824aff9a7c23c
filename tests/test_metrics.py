import re
from math import log2

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from skrec.metrics import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

PER_USER = [
    precision_at_k,
    recall_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    average_precision_at_k,
    reciprocal_rank,
]

# Three users, k=3. Alice has 3 relevant items and hits at positions 1 and 3;
# bob has 1 relevant item, hit at position 2; carol has 2 and no hit.
Y_TRUE = [[1, 2, 3], [5], [4, 6]]
Y_PRED = [[1, 9, 2], [7, 5, 8], [7, 8, 9]]
EXPECTED = {
    precision_at_k: (2 / 3 + 1 / 3 + 0) / 3,
    recall_at_k: (2 / 3 + 1 / 1 + 0) / 3,
    hit_rate_at_k: (1 + 1 + 0) / 3,
    ndcg_at_k: (
        (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4)) + (1 / log2(3)) / 1 + 0
    )
    / 3,
    # AP@3 divides by min(3, |relevant|): alice (1/1 + 2/3) / 3, bob (1/2) / 1.
    average_precision_at_k: ((1 / 1 + 2 / 3) / 3 + (1 / 2) / 1 + 0) / 3,
    reciprocal_rank: (1 / 1 + 1 / 2 + 0) / 3,
}


def as_strings(lists):
    return [[f"item-{item}" for item in row] for row in lists]


INPUTS = {
    "lists": (Y_TRUE, Y_PRED),
    "strings": (as_strings(Y_TRUE), as_strings(Y_PRED)),
    "sets and 2-D array": ([set(row) for row in Y_TRUE], np.array(Y_PRED)),
    "array rows": ([np.array(row) for row in Y_TRUE], list(np.array(Y_PRED))),
    "str array": (
        [np.array(row) for row in as_strings(Y_TRUE)],
        np.array(as_strings(Y_PRED)),
    ),
    "object array": (
        pd.Series(as_strings(Y_TRUE)),
        np.array(as_strings(Y_PRED), dtype=object),
    ),
    "DataFrame": (pd.Series(Y_TRUE, index=[10, 20, 30]), pd.DataFrame(Y_PRED)),
}


@pytest.mark.parametrize("metric", PER_USER, ids=lambda metric: metric.__name__)
@pytest.mark.parametrize("inputs", INPUTS.values(), ids=INPUTS.keys())
def test_hand_computed(metric, inputs):
    y_true, y_pred = inputs
    assert metric(y_true, y_pred, k=3) == pytest.approx(EXPECTED[metric])


@pytest.mark.parametrize("metric", PER_USER, ids=lambda metric: metric.__name__)
def test_returns_python_float(metric):
    assert type(metric(Y_TRUE, np.array(Y_PRED), k=3)) is float


def test_k_truncates_the_lists():
    # With k=1 only alice's first item is a hit.
    assert precision_at_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 + 0 + 0) / 3)
    assert recall_at_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert reciprocal_rank(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 + 0 + 0) / 3)
    # IDCG@1 = 1 for every user with a relevant item.
    assert ndcg_at_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 + 0 + 0) / 3)
    # AP@1 divides by min(1, |relevant|) = 1.
    assert average_precision_at_k(Y_TRUE, Y_PRED, k=1) == pytest.approx(1 / 3)


def test_reciprocal_rank_reads_whole_lists_by_default():
    y_true = [[4], [1]]
    y_pred = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2]]
    assert reciprocal_rank(y_true, y_pred) == pytest.approx((1 / 4 + 1) / 2)
    assert reciprocal_rank(y_true, y_pred, k=3) == pytest.approx((0 + 1) / 2)


def test_lists_of_unequal_length():
    y_pred = [[1, 9, 2, 3], [5], []]
    # k=3: alice keeps [1, 9, 2]; bob hits at 1; carol's empty list is all misses.
    assert precision_at_k(Y_TRUE, y_pred, k=3) == pytest.approx((2 / 3 + 1 / 3) / 3)
    assert recall_at_k(Y_TRUE, y_pred, k=3) == pytest.approx((2 / 3 + 1) / 3)
    assert hit_rate_at_k(Y_TRUE, y_pred, k=3) == pytest.approx(2 / 3)
    alice = (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4))
    assert ndcg_at_k(Y_TRUE, y_pred, k=3) == pytest.approx((alice + 1) / 3)
    # Whole lists: alice's 3 at position 4 does not change her first hit.
    assert reciprocal_rank(Y_TRUE, y_pred) == pytest.approx((1 + 1 + 0) / 3)
    # k=4 reaches alice's 3: 3 hits in 4, so P@4 = 3/4 and AP@4 = (1 + 2/3 + 3/4)/3.
    assert precision_at_k(Y_TRUE, y_pred, k=4) == pytest.approx((3 / 4 + 1 / 4) / 3)
    assert average_precision_at_k(Y_TRUE, y_pred, k=4) == pytest.approx(
        ((1 + 2 / 3 + 3 / 4) / 3 + 1 / 1) / 3
    )


@pytest.mark.parametrize(
    "y_pred", [[[7, 1]], np.array([[7, 1]])], ids=["list", "array"]
)
def test_k_larger_than_the_list_counts_misses(y_pred):
    y_true = [[1, 2]]
    # Positions 3..5 are misses: P@5 = 1/5, and IDCG@5 has min(5, 2) = 2 terms.
    assert precision_at_k(y_true, y_pred, k=5) == pytest.approx(1 / 5)
    assert recall_at_k(y_true, y_pred, k=5) == pytest.approx(1 / 2)
    assert ndcg_at_k(y_true, y_pred, k=5) == pytest.approx(
        (1 / log2(3)) / (1 + 1 / log2(3))
    )
    assert average_precision_at_k(y_true, y_pred, k=5) == pytest.approx((1 / 2) / 2)
    assert reciprocal_rank(y_true, y_pred, k=5) == pytest.approx(1 / 2)


def test_repeated_recommendation_counts_at_its_first_position():
    y_true = [[1, 2]]
    y_pred = [[1, 1, 2]]
    # The second 1 is a miss at position 2; the hits are at 1 and 3.
    assert precision_at_k(y_true, y_pred, k=3) == pytest.approx(2 / 3)
    assert recall_at_k(y_true, y_pred, k=3) == pytest.approx(1.0)
    assert ndcg_at_k(y_true, y_pred, k=3) == pytest.approx(
        (1 + 1 / log2(4)) / (1 + 1 / log2(3))
    )
    assert average_precision_at_k(y_true, y_pred, k=3) == pytest.approx(
        (1 / 1 + 2 / 3) / 2
    )
    # Only a repeat of a hit is dropped: two repeats of a miss change nothing.
    assert precision_at_k([[2]], [[1, 1, 2]], k=3) == pytest.approx(1 / 3)


def test_repeated_relevant_item_counts_once():
    # |relevant| = 2 for [1, 1, 2].
    assert recall_at_k([[1, 1, 2]], [[1, 3]], k=2) == pytest.approx(1 / 2)
    assert ndcg_at_k([[1, 1, 2]], [[3, 1]], k=2) == pytest.approx(
        (1 / log2(3)) / (1 + 1 / log2(3))
    )


def test_users_without_relevant_items_are_skipped():
    y_true = [[1], [], [2]]
    y_pred = [[1], [1], [3]]
    # The mean is over the two users with relevant items: (1 + 0) / 2, not / 3.
    for metric in PER_USER:
        assert metric(y_true, y_pred, k=1) == pytest.approx(1 / 2)
    # None and NaN are never relevant, so this user is skipped too.
    assert precision_at_k([[1], [None, np.nan]], [[1], [None]], k=1) == 1.0


def test_ids_of_different_types_stay_distinct():
    # The string "1" is not the int 1; None pads a short list.
    assert reciprocal_rank([["1"]], [[1, "1"]]) == pytest.approx(1 / 2)
    assert reciprocal_rank([[1]], [["1", None, 1]]) == pytest.approx(1 / 3)
    assert reciprocal_rank([np.array([1]), np.array(["1"])], [[1], [1]]) == 0.5


def test_tuple_ids():
    assert precision_at_k([[(1, 2)]], [[(1, 2), (2, 1)]], k=2) == pytest.approx(1 / 2)


def test_sample_weight():
    # Weights 2, 1, 1 on the precisions 2/3, 1/3 and 0.
    weighted = precision_at_k(Y_TRUE, Y_PRED, k=3, sample_weight=[2, 1, 1])
    assert weighted == pytest.approx((2 * 2 / 3 + 1 * 1 / 3 + 1 * 0) / 4)
    assert reciprocal_rank(Y_TRUE, Y_PRED, sample_weight=np.array([0, 1, 3])) == (
        pytest.approx((0 * 1 + 1 * 1 / 2 + 3 * 0) / 4)
    )
    # The weight of a skipped user drops out with the user.
    assert precision_at_k(
        [[1], [], [2]], [[1], [1], [3]], k=1, sample_weight=[1, 100, 3]
    ) == pytest.approx((1 * 1 + 3 * 0) / 4)
    for metric in PER_USER:
        assert metric(Y_TRUE, Y_PRED, k=3, sample_weight=[5, 5, 5]) == pytest.approx(
            EXPECTED[metric]
        )


def naive_metrics(y_true, y_pred, k):
    """Per-user metrics by Python loops over sets, for the users with items."""
    scores = {
        metric: [] for metric in (precision_at_k, recall_at_k, average_precision_at_k)
    }
    for relevant, ranked in zip(y_true, y_pred, strict=True):
        relevant = set(relevant)
        if not relevant:
            continue
        top = list(ranked)[:k]
        scores[precision_at_k].append(len(set(top) & relevant) / k)
        scores[recall_at_k].append(len(set(top) & relevant) / len(relevant))
        precisions = [
            len(set(top[:r]) & relevant) / r
            for r in range(1, len(top) + 1)
            if top[r - 1] in relevant and top[r - 1] not in top[: r - 1]
        ]
        scores[average_precision_at_k].append(sum(precisions) / min(k, len(relevant)))
    return {metric: np.mean(values) for metric, values in scores.items()}


@pytest.mark.parametrize("k", [1, 5, 12])
def test_against_python_loops(k):
    rng = np.random.default_rng(k)
    n_users, n_items = 200, 40
    y_true = [
        rng.choice(n_items, rng.integers(0, 8), replace=False) for _ in range(n_users)
    ]
    # Lists of 0 to 14 items drawn with replacement, so some repeat items.
    y_pred = [rng.integers(0, n_items, rng.integers(0, 15)) for _ in range(n_users)]
    for metric, expected in naive_metrics(y_true, y_pred, k).items():
        assert metric(y_true, y_pred, k=k) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_ndcg_matches_scikit_learn(k):
    rng = np.random.default_rng(k)
    n_users, n_items = 100, 30
    relevance = rng.random((n_users, n_items)) < 0.2
    relevance[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    ranking = np.argsort(rng.random((n_users, n_items)), axis=1)
    # The item at position r of a user's ranking scores n_items - r.
    scores = np.empty((n_users, n_items))
    np.put_along_axis(scores, ranking, np.arange(n_items, 0, -1.0), axis=1)
    y_true = [np.flatnonzero(row) for row in relevance]
    expected = ndcg_score(relevance.astype(int), scores, k=k)
    assert ndcg_at_k(y_true, ranking, k=k) == pytest.approx(expected)
    assert ndcg_at_k(y_true, ranking[:, :k], k=k) == pytest.approx(expected)


def test_many_users():
    # 100,000 users x k=10; user u's one relevant item sits at position u % 10 + 1.
    n_users, k = 100_000, 10
    users = np.arange(n_users)
    y_pred = users[:, None] * k + np.arange(k)
    y_true = y_pred[users, users % k][:, None]
    assert precision_at_k(y_true, y_pred, k=k) == pytest.approx(1 / k)
    assert hit_rate_at_k(y_true, y_pred, k=k) == 1.0
    mean_reciprocal = np.mean(1 / np.arange(1, k + 1))
    assert reciprocal_rank(list(y_true), list(y_pred)) == pytest.approx(mean_reciprocal)
    assert catalog_coverage(y_pred, np.arange(2 * n_users * k), k=k) == 0.5


def test_catalog_coverage():
    y_pred = [[1, 2, 3], [2, 4, 9]]
    catalog = [1, 2, 3, 4, 5]
    # Top 2: {1, 2, 4} of 5 items; top 3 adds 3 and 9, which is not in the catalogue.
    assert catalog_coverage(y_pred, catalog, k=2) == pytest.approx(3 / 5)
    assert catalog_coverage(y_pred, catalog, k=3) == pytest.approx(4 / 5)
    assert catalog_coverage(np.array(y_pred), catalog, k=3) == pytest.approx(4 / 5)
    # Repeated catalogue IDs count once; lists may be short or empty.
    assert catalog_coverage([[1], [], [1, 5]], [1, 1, 2, 5], k=2) == pytest.approx(
        2 / 3
    )
    assert catalog_coverage(as_strings(y_pred), set(as_strings([catalog])[0]), k=2) == (
        pytest.approx(3 / 5)
    )


def test_length_mismatch():
    msg = "len(y_true)=3 and len(y_pred)=2"
    with pytest.raises(ValueError, match=re.escape(msg)):
        precision_at_k(Y_TRUE, Y_PRED[:2])
    with pytest.raises(ValueError, match=re.escape(msg)):
        ndcg_at_k(Y_TRUE, np.array(Y_PRED[:2]))


@pytest.mark.parametrize("metric", PER_USER, ids=lambda metric: metric.__name__)
@pytest.mark.parametrize("k", [0, -1, 2.5, "3"])
def test_invalid_k(metric, k):
    with pytest.raises(ValueError, match="The 'k' parameter of .* must be an int"):
        metric(Y_TRUE, Y_PRED, k=k)


def test_invalid_k_for_catalog_coverage():
    with pytest.raises(ValueError, match="The 'k' parameter"):
        catalog_coverage(Y_PRED, [1, 2], k=0)
    with pytest.raises(ValueError, match="The 'k' parameter"):
        precision_at_k(Y_TRUE, Y_PRED, k=None)


@pytest.mark.parametrize("metric", PER_USER, ids=lambda metric: metric.__name__)
def test_all_users_empty(metric):
    with pytest.raises(ValueError, match="no relevant item for any user"):
        metric([[], []], [[1], [2]])


@pytest.mark.parametrize(
    "y_true, msg",
    [
        (["ab", [1]], "y_true[0] is 'ab'"),
        ([[1], 5], "y_true[1] is 5"),
        (np.array([1, 2]), "y_true[0] is np.int64(1)"),
    ],
)
def test_entries_that_are_no_lists(y_true, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        recall_at_k(y_true, [[1], [2]])


def test_three_dimensional_y_pred():
    with pytest.raises(ValueError, match=re.escape("shape (2, 1, 1)")):
        precision_at_k([[1], [2]], np.zeros((2, 1, 1)))


def test_invalid_sample_weight():
    with pytest.raises(ValueError, match=re.escape("shape (3,); got shape (2,)")):
        precision_at_k(Y_TRUE, Y_PRED, sample_weight=[1, 2])
    with pytest.raises(ValueError, match="sums to zero"):
        precision_at_k(Y_TRUE, Y_PRED, sample_weight=[0, 0, 0])


def test_invalid_catalog():
    with pytest.raises(ValueError, match="catalog must hold at least one item"):
        catalog_coverage(Y_PRED, [])
    with pytest.raises(ValueError, match=re.escape("shape (2, 2)")):
        catalog_coverage(Y_PRED, np.ones((2, 2)))
