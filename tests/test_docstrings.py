"""The examples in the package's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import udfwidgets


def _modules() -> list[str]:
    names = [udfwidgets.__name__]
    for info in pkgutil.walk_packages(udfwidgets.__path__, prefix="udfwidgets."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            # objects imported from elsewhere are tested where they are defined
            if test.examples and test.name.startswith(name):
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(_examples()))
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)


def test_every_public_udf_module_has_examples():
    names = {
        t.values[0].name.split(".")[2]
        for t in _examples()
        if t.values[0].name.startswith("udfwidgets.udf.")
    }
    assert {"sum", "stddev", "com", "masks", "radial", "pick", "logsum"} <= names
