"""The benchmark results name no absolute path of the machine they ran on.

The benchmark scripts print every path through ``display_path`` of
benchmarks/_common.py, which gives it relative to the repository root or to
the data home; the committed results must read the same.
"""

import os
import re
from pathlib import Path

import pytest

from ._data import BENCHMARKS, benchmark_module

REPOSITORY = Path(__file__).resolve().parents[1]
# Top-level folders that absolute paths of machines start with.
ROOTS = ("work", "home", "root", "Users")
ABSOLUTE_PATH = re.compile("|".join(f"/{root}/" for root in ROOTS) + r"|\b[A-Za-z]:\\")


@pytest.fixture(scope="module")
def common():
    """benchmarks/_common.py: the benchmarks folder is not a package."""
    pytest.importorskip("torch")
    return benchmark_module("_common.py")


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A folder neither in the repository nor beside it, SKREC_DATA unset and
    the home directory moved into it."""
    if tmp_path.is_relative_to(REPOSITORY.parent):
        pytest.skip("the temporary folder lies beside the repository")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("SKREC_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return tmp_path


def assert_not_absolute(shown):
    assert not os.path.isabs(shown)
    assert not ABSOLUTE_PATH.search(shown)
    assert str(REPOSITORY) not in shown


@pytest.mark.parametrize(
    "path, shown",
    [
        (REPOSITORY, "."),
        (REPOSITORY / "skrec", "./skrec"),
        (REPOSITORY / "benchmarks" / "results", "./benchmarks/results"),
        (REPOSITORY.parent, ".."),
        (REPOSITORY.parent / "shared" / "data", "../shared/data"),
    ],
)
def test_display_path_is_relative_to_the_repository(common, path, shown):
    assert common.display_path(path) == shown
    assert common.display_path(str(path)) == shown


def test_display_path_of_the_defaults(common):
    assert common.display_path(common.RESULTS_DIR) == "./benchmarks/results"
    assert common.display_path(common.SHARED_DATA_HOME) == "../shared/data"
    import skrec

    assert_not_absolute(common.display_path(os.path.dirname(skrec.__file__)))
    assert_not_absolute(common.display_path(common.default_data_home()))


def test_display_path_elsewhere_is_relative_to_the_data_home(
    common, elsewhere, monkeypatch
):
    home = elsewhere / "home"
    assert common.display_path(None) == "~/skrec_data"
    assert common.display_path(home) == "~"
    assert common.display_path(home / "skrec_data") == "~/skrec_data"
    assert common.display_path("~/data/ml") == "~/data/ml"
    assert common.display_path(elsewhere / "other" / "data") == ".../data"

    monkeypatch.setenv("SKREC_DATA", str(elsewhere / "data"))
    assert common.display_path(None) == "$SKREC_DATA"
    assert common.display_path(elsewhere / "data") == "$SKREC_DATA"
    assert common.display_path(elsewhere / "data" / "ml-100k") == "$SKREC_DATA/ml-100k"


def test_display_path_never_returns_an_absolute_path(common, elsewhere):
    paths = [
        None,
        "/",
        os.getcwd(),
        Path.home(),
        elsewhere,
        elsewhere / "home" / "a" / "b",
        REPOSITORY,
        REPOSITORY / "no such folder",
        REPOSITORY.parent,
        REPOSITORY.parent / "shared" / "data",
        "relative/folder",
    ]
    for path in paths:
        shown = common.display_path(path)
        assert_not_absolute(shown)
        if path is not None and str(path) != "/":
            assert str(Path(path).resolve()) not in shown


def test_no_result_holds_an_absolute_path():
    checked = []
    for path in sorted((BENCHMARKS / "results").iterdir()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a figure
        checked.append(path.name)
        hits = [
            f"{path.name}:{number}: {line}"
            for number, line in enumerate(text.splitlines(), 1)
            if ABSOLUTE_PATH.search(line) or str(REPOSITORY) in line
        ]
        assert hits == []
    assert "rating.md" in checked


def test_no_benchmark_prints_a_path_as_it_is():
    """Data homes, the results folder and skrec's folder go through
    display_path before they reach a report or the terminal."""
    raw = re.compile(
        r"\{(?:args\.)?data_home\}|\{RESULTS_DIR\b|\{os\.path\.dirname\(skrec\.__file__"
    )
    hits = [
        f"{script.name}:{number}: {line.strip()}"
        for script in sorted(BENCHMARKS.glob("*.py"))
        for number, line in enumerate(script.read_text().splitlines(), 1)
        if raw.search(line)
    ]
    assert hits == []
