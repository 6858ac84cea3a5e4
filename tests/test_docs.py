"""The API reference covers every public name, and every public name is documented.

``docs/api/apigen.py`` writes one reference page per public module (the Sphinx build in
``.ci/run`` turns them into HTML with warnings as errors); these tests check its output
against the package itself: every name of ``udfwidgets.__all__`` and of each public
module's ``__all__`` is listed on its module's page and documented (by an autodoc
directive) on exactly one page, and has a numpydoc docstring with an ``Examples`` section.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import sys

import pytest

import udfwidgets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "docs", "api"))
import apigen  # noqa: E402


def public_modules() -> list[str]:
    """Found independently of apigen: every module without a ``_``-part in its name."""
    names = ["udfwidgets"]
    for info in pkgutil.walk_packages(udfwidgets.__path__, prefix="udfwidgets."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def public_names() -> list[tuple[str, str]]:
    pairs = []
    for mod_name in public_modules():
        module = importlib.import_module(mod_name)
        for name in getattr(module, "__all__", []):
            pairs.append((mod_name, name))
    return pairs


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("api")
    apigen.write_api_pages(str(out))
    return {p.stem: p.read_text() for p in out.glob("*.rst")}


DIRECTIVE = re.compile(r"^\.\. auto(class|exception|function|data):: (\S+)", re.M)


def documented(pages: dict[str, str]) -> dict[int, list[str]]:
    """id(object) -> the pages whose autodoc directives document it."""
    where: dict[int, list[str]] = {}
    for page, text in pages.items():
        module = importlib.import_module(page)
        for _, name in DIRECTIVE.findall(text):
            where.setdefault(id(getattr(module, name)), []).append(page)
    return where


@pytest.fixture(scope="module")
def where(pages) -> dict[int, list[str]]:
    return documented(pages)


def test_every_public_module_has_a_page(pages):
    assert sorted(pages) == sorted(public_modules())
    for mod_name, text in pages.items():
        assert f".. automodule:: {mod_name}\n" in text


def test_every_public_module_declares_all():
    missing = [m for m in public_modules() if not hasattr(importlib.import_module(m), "__all__")]
    assert not missing, f"public modules without __all__: {missing}"


@pytest.mark.parametrize(
    "mod_name, name", public_names(), ids=[f"{m}.{n}" for m, n in public_names()]
)
def test_public_name_is_in_the_reference(pages, where, mod_name, name):
    obj = getattr(importlib.import_module(mod_name), name)
    table = pages[mod_name].split(".. autosummary::", 1)[1].split("\n\n.. ", 1)[0]
    entries = [line.strip().lstrip("~") for line in table.splitlines()[2:] if line.strip()]
    # listed in its module's table, under a path that leads to this very object
    hits = [e for e in entries if e.rsplit(".", 1)[-1] == name]
    assert len(hits) == 1, f"{name} is not listed on the page of {mod_name}"
    # an entry is relative to the page's module ("context.Context") or, for a re-exported
    # name, the full path of the module that defines it ("udfwidgets.context.Context")
    full = hits[0] if hits[0].startswith("udfwidgets.") else f"{mod_name}.{hits[0]}"
    owner = importlib.import_module(full.rsplit(".", 1)[0])
    assert getattr(owner, name) is obj
    # documented in full on exactly one page
    if not isinstance(obj, (int, str, tuple)):  # small values are shared by identity
        assert len(set(where.get(id(obj), []))) == 1, f"{mod_name}.{name}"


def _documented_with_examples(mod_name: str, name: str) -> None:
    obj = getattr(importlib.import_module(mod_name), name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        doc = inspect.getdoc(obj) or ""
        assert doc, f"{mod_name}.{name} has no docstring"
        assert re.search(r"^Examples\n-{8}\n", doc, re.M), (
            f"{mod_name}.{name}: the docstring has no numpydoc 'Examples' section"
        )
        example = doc.split("Examples\n--------", 1)[1].strip()
        # a doctest (run by test_docstrings.py) or a code block (``::``) for code that needs a run
        assert ">>> " in example or "::\n" in example, f"{mod_name}.{name}: no example"
    else:
        # A value (a tuple, an int, a str) has no docstring of its own: it is documented by a
        # `#:` comment above its assignment, which autodoc shows in the reference.
        from sphinx.pycode import ModuleAnalyzer

        home = next(m for m in apigen.entries() if m.module == mod_name and m.name == name).home
        docs = ModuleAnalyzer.for_module(home).find_attr_docs()
        assert ("", name) in docs and "".join(docs[("", name)]).strip(), (
            f"{home}.{name}: document the value with a `#:` comment above it"
        )


@pytest.mark.parametrize(
    "mod_name, name", public_names(), ids=[f"{m}.{n}" for m, n in public_names()]
)
def test_public_name_has_a_docstring_with_examples(mod_name, name):
    _documented_with_examples(mod_name, name)


def value_examples() -> list[tuple[str, str, str]]:
    """``(module, name, comment)`` of every public value whose ``#:`` comment has an example.

    Doctests find docstrings only, so tests/test_docstrings.py does not see these.
    """
    from sphinx.pycode import ModuleAnalyzer

    found = []
    for e in apigen.entries():
        if e.kind == "data" and e.module == e.home:
            lines = ModuleAnalyzer.for_module(e.home).find_attr_docs().get(("", e.name), [])
            text = "\n".join(lines)
            if ">>> " in text:
                found.append((e.home, e.name, text))
    return found


@pytest.mark.parametrize(
    "mod_name, name, comment", value_examples(), ids=[f"{m}.{n}" for m, n, _ in value_examples()]
)
def test_value_comment_example_runs(mod_name, name, comment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(mod_name)
    test = doctest.DocTestParser().get_doctest(
        comment, dict(vars(module)), f"{mod_name}.{name}", module.__file__, 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert test.examples and runner.failures == 0, "".join(out)


def test_module_docstrings_exist():
    empty = [m for m in public_modules() if not (importlib.import_module(m).__doc__ or "").strip()]
    assert not empty, f"public modules without a docstring: {empty}"


def test_user_guide_lists_every_page():
    """Every Markdown page of docs/ is reachable from a toctree (Sphinx warns otherwise too)."""
    docs = os.path.join(ROOT, "docs")
    toctrees = ""
    for name in os.listdir(docs):
        if name.endswith(".md"):
            with open(os.path.join(docs, name), encoding="utf-8") as fh:
                toctrees += "\n".join(re.findall(r"```\{toctree\}(.*?)```", fh.read(), re.S))
    listed = {line.strip() for line in toctrees.splitlines()}
    pages = {n[:-3] for n in os.listdir(docs) if n.endswith(".md")} - {"index"}
    assert not pages - listed, f"pages in no toctree: {sorted(pages - listed)}"


def test_conf_never_executes_notebooks():
    with open(os.path.join(ROOT, "docs", "conf.py"), encoding="utf-8") as fh:
        conf = fh.read()
    assert re.search(r'^nb_execution_mode = "off"', conf, re.M)
