"""Sphinx configuration for the skrec documentation."""

import skrec

project = "skrec"
author = "The skrec developers"
copyright = "2026, The skrec developers"
version = release = skrec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
html_theme = "pydata_sphinx_theme"
exclude_patterns = ["_build"]
