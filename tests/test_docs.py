"""The documentation site: every public function is in the API reference, and
``mkdocs build --strict`` passes (a broken link, a missing page or a docstring
mkdocstrings cannot read fails it).

The reference pages (docs/reference/*.md) hold ``::: module`` directives; each public
module of the documented packages must have one, and after the build every public
function and class must have its anchor in the rendered pages.
"""

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = ["bptt.nn", "bptt.functional", "bptt.models", "bptt.decode", "bptt.diagnostics"]
DIRECTIVE = re.compile(r"^::: ([\w.]+)\n((?:[ \t]+.*\n)*)", re.M)


def public_modules(package: str) -> list[str]:
    """The package and its submodules, none of whose dotted parts starts with '_'."""
    root = importlib.import_module(package)
    names = [package]
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def public_objects(package: str) -> set[str]:
    """Dotted paths (where each is defined) of the package's public functions and classes.

    A module's public names are its ``__all__``, or else the functions and classes it
    defines itself whose names do not start with '_'; only those defined inside the
    package, in a module without a private part, count.
    """
    found = set()
    for name in public_modules(package):
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == name]
        for n in names:
            obj = getattr(module, n)
            if n.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            home = obj.__module__
            private = any(p.startswith("_") for p in home.split("."))
            if (home == package or home.startswith(package + ".")) and not private:
                found.add(f"{home}.{obj.__qualname__}")
    return found


def directives() -> dict[str, str]:
    """``::: target`` -> its options block, over every reference page."""
    out = {}
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        for m in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            out[m.group(1)] = m.group(2)
    return out


def test_every_public_function_has_a_reference_directive():
    shown = {t for t, options in directives().items() if "members: false" not in options}
    missing = []
    for package in DOCUMENTED:
        for path in public_objects(package):
            module, _, _ = path.rpartition(".")
            if path not in shown and module not in shown:
                missing.append(path)
    assert not missing, f"not in docs/reference/*.md (add a '::: module' line): {missing}"
    assert len(public_objects("bptt.functional")) >= 20  # the walk finds the cells' functions


def test_every_reference_directive_names_a_module_that_imports():
    for target in directives():
        importlib.import_module(target)


def test_the_readmes_links_into_docs_still_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links, "the README links to no file under docs/"
    assert [p for p in links if not (ROOT / p).exists()] == []


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra (in test) installs the site's tools")
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra installs mkdocs-jupyter")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    anchors = set(re.findall(r'id="(bptt\.[\w.]+)"', html))
    missing = sorted(p for pkg in DOCUMENTED for p in public_objects(pkg) if p not in anchors)
    assert not missing, f"public names with no entry in the built reference: {missing}"
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / notebook.stem / "index.html"
        assert page.exists(), f"{notebook.name} was not rendered into the site"
