"""The ``benchmark-table`` directive: figures quoted from benchmarks/results.

The benchmark scripts write their tables as markdown; pages quote rows and
columns of them with this directive instead of retyping numbers, so the site
shows what the last run measured. A row, a column or a file that is gone
fails the build.

.. benchmark-table:: rating.md
   :columns: model; RMSE mean; fit s mean
   :rows: NeuralRecommender; SVD

Names are separated by semicolons, since the tables' own names hold commas.
"""

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def read_tables(path):
    """Each markdown table of ``path`` as (header, rows), cells stripped."""
    tables, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines):
            if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
                header = split_row(lines[i])
                rows, i = [], i + 2
                while i < len(lines) and lines[i].startswith("|"):
                    rows.append(split_row(lines[i]))
                    i += 1
                tables.append((header, rows))
                continue
        i += 1
    return tables


def split_row(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def names(option):
    return [name.strip() for name in option.split(";") if name.strip()]


def run_date(path):
    match = re.search(r"^- Date: (\S+)", path.read_text(encoding="utf-8"), re.M)
    return match.group(1)[:10] if match else "unknown date"


def to_rst(cell):
    """A markdown cell as reStructuredText: inline code gets double
    backquotes; bold is written the same in both."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", cell) or " "


def select(tables, columns, rows, source):
    for header, body in tables:
        if all(column in header for column in columns):
            positions = [header.index(column) for column in columns]
            by_name = {}
            for row in body:
                by_name.setdefault(row[0], row)
            missing = [name for name in rows if name not in by_name]
            if missing:
                raise ExtensionError(f"{source}: no row named {missing} in its table")
            chosen = [by_name[name] for name in rows] if rows else body
            return [[row[p] for p in positions] for row in chosen]
    raise ExtensionError(f"{source}: no table has the columns {columns}")


class BenchmarkTable(SphinxDirective):
    required_arguments = 1
    option_spec = {
        "columns": directives.unchanged_required,
        "rows": directives.unchanged,
        "caption": directives.unchanged,
    }

    def run(self):
        source = RESULTS / self.arguments[0]
        if not source.is_file():
            raise ExtensionError(f"benchmark-table: {source} does not exist")
        self.env.note_dependency(str(source))
        columns = names(self.options["columns"])
        rows = names(self.options.get("rows", ""))
        body = select(read_tables(source), columns, rows, source.name)
        caption = self.options.get("caption", "")
        credit = f"``benchmarks/results/{source.name}``, run of {run_date(source)}"
        lines = [f".. list-table:: {caption}".rstrip(), "   :header-rows: 1", ""]
        for row in [columns, *body]:
            lines.append(f"   * - {to_rst(row[0])}")
            lines.extend(f"     - {to_rst(cell)}" for cell in row[1:])
        lines += ["", f"*Source:* {credit}."]
        node = nodes.container(classes=["benchmark-table"])
        nested_parse_with_titles(
            self.state, StringList(lines, source=str(source)), node
        )
        return [node]


def setup(app):
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"parallel_read_safe": True, "version": "1"}
