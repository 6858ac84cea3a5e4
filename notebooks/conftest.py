"""nbval settings for the teaching notebooks.

``pyproject.toml`` names the sanitize file relative to the repository root; make it
absolute so that the notebooks also run when pytest starts from another folder.
"""

from __future__ import annotations

from pathlib import Path


def pytest_configure(config):
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not Path(path).is_absolute() and not Path(path).exists():
        config.option.nbval_sanitize_with = str(Path(config.rootpath) / path)
