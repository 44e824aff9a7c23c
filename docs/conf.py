"""Sphinx configuration for the skrec documentation.

``sphinx-build -W -b html docs docs/_build/html`` builds the site and runs the
examples gallery; add ``-D plot_gallery=0`` to skip running the examples.
"""

import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

import skrec

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "skrec"
author = "The skrec developers"
copyright = "2026, The skrec developers"
version = release = skrec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "benchmark_tables",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "**/README.md"]
source_suffix = {".rst": "restructuredtext"}

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# The examples read MovieLens-100K from SKREC_DATA when it is set, and fall
# back to synthetic ratings otherwise.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"demo\.py",
    "within_subsection_order": "gallery_order.ReadingOrder",
    "min_reported_time": 0,
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
    "doc_module": ("skrec",),
    "backreferences_dir": "gen_modules/backreferences",
}
os.environ.setdefault("MPLBACKEND", "Agg")

html_theme = "pydata_sphinx_theme"
html_title = "skrec"
html_theme_options = {
    "navbar_start": ["navbar-logo", "skrec-version"],
    "navbar_end": ["search-button", "theme-switcher"],
    "secondary_sidebar_items": ["page-toc"],
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False


def defined_by_skrec(obj):
    """Whether skrec defines ``obj`` (a function, method or property)."""
    obj = getattr(obj, "fget", obj)
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "skrec"


def skip_members_of_scikit_learn(app, what, name, obj, skip, options):
    # get_params, set_params, set_output and the set_*_request methods are
    # scikit-learn's, documented by scikit-learn; a method that skrec
    # overrides, such as score, is documented here.
    if what == "class" and not defined_by_skrec(obj):
        return True
    return skip


class UnlinkMetricNames(SphinxTransform):
    """Keep "HR@10" and "NDCG@10" as text: docutils reads them as e-mail
    addresses, and these pages link to none."""

    default_priority = 999

    def apply(self):
        for reference in list(self.document.findall(nodes.reference)):
            if reference.get("refuri", "").startswith("mailto:"):
                reference.replace_self(nodes.Text(reference.astext()))


def setup(app):
    app.connect("autodoc-skip-member", skip_members_of_scikit_learn)
    app.add_transform(UnlinkMetricNames)
