"""Sphinx configuration for the skrec documentation."""

import skrec

project = "skrec"
author = "The skrec developers"
copyright = "2026, The skrec developers"
version = release = skrec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
}
html_theme = "pydata_sphinx_theme"
exclude_patterns = ["_build"]
