"""The documentation cannot drift from the code: the API reference lists every
public name, and the figures the site quotes come from the benchmark results."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
MODULES = [
    "skrec",
    "skrec.dask",
    "skrec.datasets",
    "skrec.exceptions",
    "skrec.export",
    "skrec.metrics",
    "skrec.model_selection",
    "skrec.preprocessing",
]


def benchmark_tables():
    pytest.importorskip("sphinx")
    path = DOCS / "_ext" / "benchmark_tables.py"
    spec = importlib.util.spec_from_file_location("benchmark_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_names():
    """The names the API page documents, as ``module.name``."""
    names, module = set(), None
    for line in (DOCS / "api.rst").read_text().splitlines():
        if match := re.match(r"\.\. (?:current)?module:: (\S+)", line):
            module = match.group(1)
        elif match := re.match(r"\.\. auto\w+:: (\S+)", line):
            names.add(f"{module}.{match.group(1)}")
        elif match := re.match(r"\.\. data:: (\S+)", line):
            names.add(f"{module}.{match.group(1)}")
        elif match := re.match(r"   ([A-Za-z_]\w*)$", line):
            names.add(f"{module}.{match.group(1)}")
    return names


def test_api_reference_lists_every_public_name():
    public = {
        f"{name}.{attribute}"
        for name in MODULES
        for attribute in importlib.import_module(name).__all__
    }
    assert len(public) > 20
    assert documented_names() == public


MARKDOWN = """# A run

- Date: 2026-01-02T03:04:05

| model | RMSE, u1 | fit s |
|---|---:|---:|
| a | 0.91 | 1.0 |
| b, c | `0.95` | 2.0 |

| other | x |
|---|---|
| a | 1 |
"""


def test_benchmark_tables_reads_every_markdown_table(tmp_path):
    module = benchmark_tables()
    path = tmp_path / "run.md"
    path.write_text(MARKDOWN)
    tables = module.read_tables(path)
    assert tables == [
        (
            ["model", "RMSE, u1", "fit s"],
            [["a", "0.91", "1.0"], ["b, c", "`0.95`", "2.0"]],
        ),
        (["other", "x"], [["a", "1"]]),
    ]
    assert module.run_date(path) == "2026-01-02"
    chosen = module.select(tables, ["model", "fit s"], ["b, c", "a"], "run.md")
    assert chosen == [["b, c", "2.0"], ["a", "1.0"]]
    assert module.to_rst("`0.95`") == "``0.95``"
    assert module.names("b, c; a ;") == ["b, c", "a"]


@pytest.mark.parametrize(
    "columns, rows, message",
    [(["model", "nope"], [], "no table has the columns"), (["model"], ["z"], "no row")],
)
def test_benchmark_tables_fail_on_a_missing_row_or_column(
    tmp_path, columns, rows, message
):
    module = benchmark_tables()
    path = tmp_path / "run.md"
    path.write_text(MARKDOWN)
    with pytest.raises(module.ExtensionError, match=message):
        module.select(module.read_tables(path), columns, rows, "run.md")


def test_quoted_figures_exist_in_the_results():
    module = benchmark_tables()
    pages = list(DOCS.glob("*.rst")) + list(DOCS.glob("user_guide/*.rst"))
    directive = re.compile(
        r"\.\. benchmark-table:: (\S+)\n   :columns: (.*)\n(?:   :rows: (.*)\n)?"
    )
    quoted = [m for page in pages for m in directive.finditer(page.read_text())]
    assert quoted, "the home page quotes benchmark tables"
    for match in quoted:
        source = module.RESULTS / match.group(1)
        rows = module.names(match.group(3) or "")
        body = module.select(
            module.read_tables(source), module.names(match.group(2)), rows, source.name
        )
        assert len(body) == (len(rows) or len(body)) > 0
