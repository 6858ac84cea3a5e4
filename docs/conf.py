"""Sphinx configuration of the udfwidgets documentation.

Build it (warnings are errors) from the repository root with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated from the package on every build
(``docs/api/apigen.py`` writes ``docs/api/generated/``): a module added to the
package appears without an edit here.  The notebooks are rendered from their
stored outputs by myst-nb; they are never executed here (nbval runs them in the
test suite).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the source tree, also when the package is not installed
sys.path.insert(0, os.path.join(HERE, "api"))

import apigen  # noqa: E402

import udfwidgets  # noqa: E402

# -- project -----------------------------------------------------------------------------------
project = "udfwidgets"
author = "the udfwidgets developers"
copyright = "2026, the udfwidgets developers (MIT License)"
release = udfwidgets.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",  # Markdown pages (myst-parser) and notebooks
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    "notebooks/conftest.py",
    "notebooks/sanitize.cfg",
]

# -- autodoc / autosummary / numpydoc ----------------------------------------------------------
autosummary_generate = False  # the module pages are written by apigen, not by autosummary
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters section already gives the types
numpydoc_show_class_members = False  # autodoc's :members: documents them once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- MyST and notebooks ------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the stored outputs; never run a notebook in the docs build
nb_merge_streams = True

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"udfwidgets {release}"
html_theme_options = {
    "github_url": "https://github.com/udfwidgets/udfwidgets",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []


def setup(app):
    """Write the API reference pages before Sphinx reads the sources."""
    apigen.write_api_pages(os.path.join(HERE, "api", "generated"))
