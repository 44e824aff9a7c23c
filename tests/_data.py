"""Where the tests find MovieLens-100K, and how they skip without it."""

from pathlib import Path

import pytest

# CI clones the repository with shared/ beside it; the data's licence forbids
# shipping them inside the repository.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
requires_movielens = pytest.mark.skipif(
    not (SHARED_DATA / "ml-100k").is_dir(),
    reason=f"MovieLens-100K is not at {SHARED_DATA / 'ml-100k'}; its licence "
    "forbids shipping it with the repository.",
)
