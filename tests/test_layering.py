"""The layering, read from the imports: functional → nn → models → train/decode → tasks → cli.

Every module of src imports only from its own layer, the layers below it, and the
support modules (errors, data, config, checkpoint, optim, distributed, interrupts,
tensorboard), which import only each other. Checked at module level and inside
functions, relative imports resolved. No module in src is over 450 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FUNCTIONAL = SRC / "bptt" / "functional"
ABOVE = ("bptt.nn", "bptt.models", "bptt.train", "bptt.decode", "bptt.tasks", "bptt.cli")
SUPPORT = {
    "errors",
    "data",
    "config",
    "checkpoint",
    "optim",
    "distributed",
    "interrupts",
    "tensorboard",
}
LAYERS = (  # bottom to top: the package (bptt.X) each layer holds
    {"functional"},
    {"nn", "losses"},
    {"models", "diagnostics"},
    {"train", "decode"},
    {"tasks", "onnx_export"},
    {"cli", "__main__"},
)
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str | None = None) -> set[str]:
    """Every module an import statement in ``path`` names, relative imports resolved.

    ``name`` is the module's dotted name (default: read from its place under src).
    """
    names: set[str] = set()
    package = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def upward(names: set[str]) -> list[str]:
    """The names in a layer above bptt.functional (bptt.cli matches cli_memory too)."""
    return sorted(
        n for n in names if any(n == a or n.startswith((f"{a}.", f"{a}_")) for a in ABOVE)
    )


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from ..nn import Linear\nfrom . import rnn\n\ndef f():\n    import bptt.tasks.names\n",
        encoding="utf-8",
    )
    names = imported(probe, "bptt.functional.probe")
    assert {"bptt.nn", "bptt.nn.Linear", "bptt.functional.rnn", "bptt.tasks.names"} <= names
    assert upward(names) == ["bptt.nn", "bptt.nn.Linear", "bptt.tasks.names"]
    assert upward({"bptt.cli_memory", "bptt.functional.fast", "bptt.errors", "bptt.trainer"}) == [
        "bptt.cli_memory"
    ]


def test_functional_imports_nothing_from_the_layers_above() -> None:
    offenders = {
        module_name(p): upward(imported(p))
        for p in sorted(FUNCTIONAL.rglob("*.py"))
        if upward(imported(p))
    }
    assert offenders == {}, f"bptt.functional imports upward: {offenders}"


def rank(package: str) -> int:
    """The layer of ``bptt.<package>``: -1 for the support modules."""
    if package in SUPPORT:
        return -1
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def above_own_layer(path: Path, name: str | None = None) -> list[str]:
    """What ``path`` (module ``name``) imports from a layer above its own."""
    own = rank((name or module_name(path)).split(".")[1])
    return sorted(
        n for n in imported(path, name) if n.startswith("bptt.") and rank(n.split(".")[1]) > own
    )


def test_every_package_has_a_layer() -> None:
    packages = {p.stem for p in (SRC / "bptt").iterdir() if p.suffix == ".py" or p.is_dir()}
    packages -= {"__init__", "__pycache__"}
    unplaced = {p for p in packages if p not in SUPPORT and not any(p in la for la in LAYERS)}
    assert unplaced == set(), f"give these a layer in tests/test_layering.py: {unplaced}"


def test_nothing_imports_upward() -> None:
    offenders = {
        module_name(p): above_own_layer(p)
        for p in sorted((SRC / "bptt").rglob("*.py"))
        if p.parent != SRC / "bptt" or p.name != "__init__.py"  # bptt/__init__ re-exports
        if above_own_layer(p)
    }
    assert offenders == {}, f"imports from a layer above: {offenders}"


def test_the_layer_check_catches_an_upward_import(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from ..errors import BpttError\nfrom .. import functional\n"
        "def f():\n    from ..tasks import get\n",
        encoding="utf-8",
    )
    assert above_own_layer(probe, "bptt.nn.probe") == ["bptt.tasks", "bptt.tasks.get"]
    assert above_own_layer(probe, "bptt.cli.probe") == []
    assert rank("functional") < rank("nn") < rank("models") < rank("train") < rank("tasks")
    assert rank("tasks") < rank("cli") and rank("errors") == -1


def test_no_module_is_over_450_lines() -> None:
    long = {}
    for path in sorted((SRC / "bptt").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[module_name(path)] = lines
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"
