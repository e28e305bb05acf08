"""The README's Python blocks run, in order, and print what the README shows.

A ```python block followed directly by a ```text block must print exactly that
text. The blocks share one namespace (as a reader pasting them into one session
would) and run in a fresh folder; the files they read are made first by the
README's own commands at a tiny size (a two-update language model, then
``bptt export``, whose printed line must also be the README's).
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

from bptt.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str | None]]:
    """Each python block's code and the text block right after it (None if there is none)."""
    text = README.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    out = []
    for i, f in enumerate(fences):
        if f.group(1) != "python":
            continue
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        between = text[f.end() : nxt.start()] if nxt else ""
        shown = nxt.group(2) if nxt and nxt.group(1) == "text" and not between.strip() else None
        out.append((f.group(2), shown))
    return out


def test_the_readme_has_python_blocks_with_their_output():
    assert len(blocks()) >= 4 and all(shown is not None for _, shown in blocks())


def test_the_readme_python_blocks_print_what_it_shows(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    flags = ["--steps", "2", "--batch-size", "2", "--window", "8", "--sample-length", "5"]
    assert main(["train", "--quiet", *flags, "--out", "runs/lm"]) == 0
    capsys.readouterr()
    assert main(["export", "runs/lm/best.safetensors", "runs/lm.onnx"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed in README.read_text(encoding="utf-8"), f"bptt export printed {printed!r}"
    namespace: dict = {"__name__": "__readme__"}
    for i, (code, shown) in enumerate(blocks()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README python block {i + 1}", "exec"), namespace)
        assert out.getvalue() == shown, f"README python block {i + 1} printed:\n{out.getvalue()}"
