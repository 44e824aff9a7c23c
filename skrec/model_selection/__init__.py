"""Splitters for evaluating recommenders: leave-last-out, per-user and temporal."""

from ._split import (
    LeaveLastOut,
    LeavePerUserOut,
    TemporalSplit,
    train_test_split_per_user,
)

__all__ = [
    "LeaveLastOut",
    "LeavePerUserOut",
    "TemporalSplit",
    "train_test_split_per_user",
]
