"""Top-N ranking metrics for recommenders: precision, recall, NDCG, MAP, MRR."""

from ._ranking import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)
from ._scorer import RankingScorer, make_ranking_scorer, ndcg_scorer

__all__ = [
    "RankingScorer",
    "average_precision_at_k",
    "catalog_coverage",
    "hit_rate_at_k",
    "make_ranking_scorer",
    "ndcg_at_k",
    "ndcg_scorer",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank",
]
