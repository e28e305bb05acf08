"""Every command and Python block of the README runs, here or in CI, and prints what it shows.

- The shell commands are the lines of the README's ```bash blocks (a line of
  ``a && b`` is two commands; ``# ...`` is a comment). Each must be either run by
  this module (``RUN_HERE``) or listed in ``ELSEWHERE`` with the reason and a check
  that the place named does run it; a command added to the README with neither fails
  ``test_every_readme_command_is_run_here_or_listed``.
- ``bptt train`` runs here at a tiny size (``TINY``: one update, small batches; the
  same corpus and model), and what it prints must have the shape of the README's
  output: the same lines in the same order, identical where they do not depend on the
  sizes, with numbers of the same form where they do. The README's ``bptt export``
  runs on that checkpoint and must print exactly its ```text block.
- The ```python blocks run in order in one namespace, in the folder of that run, and
  each must print exactly the ```text block right after it.
- Inline ``bptt ...`` spans and the command-line synopsis name real verbs and flags
  (``bptt VERB --help`` lists each flag); other programs' commands may only appear in
  ```bash blocks, where the first rule covers them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from bptt.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL = ("bash", "sh", "shell", "console")
PROGRAMS = ("bptt", "python", "python3", "pip", "pip3", "mkdocs", "tensorboard", "mpirun", "pytest")

# `bptt train` in one update at small batches: the README's corpus, model and output lines.
TINY = "--quiet --steps 1 --eval-every 1 --batch-size 32 --window 8 --sample-length 20".split()
# Lines of `bptt train`'s output whose numbers depend on the sizes TINY changes.
SIZED = ("training:", "step ", "best validation")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def fences(text: str | None = None) -> list[tuple[str, str, int, int]]:
    """(language, body, start, end) of each fenced block."""
    text = readme() if text is None else text
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]


def followed_by_text(i: int, blocks, text: str) -> str | None:
    """The ```text block right after block i (only blank lines between), else None."""
    if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
        if not text[blocks[i][3] : blocks[i + 1][2]].strip():
            return blocks[i + 1][1]
    return None


def python_blocks(page: Path = README) -> list[tuple[str, str | None]]:
    """Each python block's code and the text block right after it (None if there is none)."""
    text = page.read_text(encoding="utf-8")
    blocks = fences(text)
    return [
        (b[1], followed_by_text(i, blocks, text)) for i, b in enumerate(blocks) if b[0] == "python"
    ]


def shell_commands(text: str | None = None) -> list[str]:
    """The commands of the ```bash blocks, in order: comments dropped, ``&&`` split."""
    commands = []
    for language, body, _, _ in fences(text):
        if language not in SHELL:
            continue
        for line in body.splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                commands.append(shlex.join(tokens[:cut]))
                tokens = tokens[cut + 1 :]
    return commands


def shown_after(command: str) -> str | None:
    """The ```text block right after the ```bash block whose last command is ``command``."""
    text = readme()
    blocks = fences(text)
    for i, (language, body, _, _) in enumerate(blocks):
        if language in SHELL and shell_commands(f"```bash\n{body}```\n")[-1:] == [command]:
            return followed_by_text(i, blocks, text)
    return None


def train_output() -> str:
    """The README's ```text block of what `bptt train` printed (it starts with 'data:')."""
    found = [body for language, body, _, _ in fences() if body.startswith("data: ")]
    assert len(found) == 1, "the README should show one `bptt train` output, starting 'data:'"
    return found[0]


# ---------------------------------------------------------------- commands run elsewhere


def extra_packages(extra: str) -> set[str]:
    """The requirement names an extra installs, its bptt[...] self-references followed."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    names: set[str] = set()
    for requirement in extras[extra]:
        m = re.fullmatch(r"bptt\[([\w,]+)\]", requirement)
        if m:
            for sub in m.group(1).split(","):
                names |= extra_packages(sub)
        else:
            names.add(re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower())
    return names


def ci_installs(extra: str) -> None:
    """CI's `pip install -e ".[test]"` installs the extra's packages, and the package."""
    assert extra_packages(extra) <= extra_packages("test"), f"the test extra lacks {extra}'s"


def ci_runs_verbatim(line: str) -> None:
    assert line in (ROOT / ".ci" / "run").read_text().splitlines(), f".ci/run lacks {line!r}"


def in_test_file(name: str, marker: str) -> None:
    source = (ROOT / "tests" / name).read_text(encoding="utf-8")
    assert marker in source, f"tests/{name} no longer has {marker!r}"


def norm(command: str) -> str:
    """A command as shell_commands() writes it (shlex's quoting)."""
    return shlex.join(shlex.split(command))


TEST_LINE = 'python3 -m pip install -e ".[test]" && python3 -m pytest'
# command -> (why it does not run here, a check that the place named does run it)
_ELSEWHERE = {
    'python3 -m pip install -e ".[plot,fast]"': (
        "installs; CI's install of the test extra holds plot's and fast's packages",
        lambda: (ci_installs("plot"), ci_installs("fast")),
    ),
    'python3 -m pip install -e ".[test]"': (
        "installs; .ci/run runs the README's test line verbatim",
        lambda: ci_runs_verbatim(TEST_LINE),
    ),
    "python3 -m pytest": (
        "the suite itself; .ci/run runs the README's test line verbatim",
        lambda: ci_runs_verbatim(TEST_LINE),
    ),
    'python3 -m pip install -e ".[onnx]"': (
        "installs; the test extra that CI installs holds onnx's packages",
        lambda: ci_installs("onnx"),
    ),
    'python3 -m pip install -e ".[docs]"': (
        "installs; the test extra that CI installs holds the docs extra",
        lambda: ci_installs("docs"),
    ),
    "mkdocs serve": (
        "a server; tests/test_docs.py builds the same site with mkdocs build --strict",
        lambda: in_test_file("test_docs.py", '"mkdocs", "build", "--strict"'),
    ),
}
ELSEWHERE = {norm(command): why for command, why in _ELSEWHERE.items()}
# The bptt commands this module runs, in this order (TINY sizes for `bptt train`).
RUN_HERE = ("bptt train", "bptt export runs/lm/best.safetensors runs/lm.onnx")


def test_the_readme_is_a_front_page():
    lines = readme().splitlines()
    assert len(lines) <= 250, f"the README has {len(lines)} lines; move detail to docs/"


def test_the_readme_starts_with_the_two_setup_commands():
    language, body, _, _ = fences()[0]
    assert language == "bash" and readme().startswith("# bptt\n\n```bash\n")
    lines = [line.split("#")[0].strip() for line in body.splitlines()]
    assert lines == ['python3 -m pip install -e ".[plot,fast]" && bptt train', TEST_LINE]


def test_every_readme_command_is_run_here_or_listed():
    commands = shell_commands()
    uncovered = [c for c in commands if c not in RUN_HERE and c not in ELSEWHERE]
    assert not uncovered, (
        f"README commands that no test runs (add to RUN_HERE or ELSEWHERE): {uncovered}"
    )
    stale = (set(RUN_HERE) | ELSEWHERE.keys()) - set(commands)
    assert not stale, f"listed here but no longer in the README: {sorted(stale)}"


@pytest.mark.parametrize("command", sorted(ELSEWHERE))
def test_a_command_listed_elsewhere_is_run_there(command):
    _, check = ELSEWHERE[command]
    check()


def test_shell_commands_parse_blocks_and_and_comments():
    text = '```bash\nfoo -x "a b" && bar  # c\n\n# only a comment\nbaz\n```\n```text\nqux\n```\n'
    assert shell_commands(text) == ["foo -x 'a b'", "bar", "baz"]


# ---------------------------------------------------------------- synopsis and inline spans


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {}


def help_of(verb: str, cache: dict[str, str]) -> str:
    if verb not in cache:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
            main([verb, "--help"])
        assert stop.value.code == 0, f"`bptt {verb} --help` failed: is {verb!r} a verb?"
        cache[verb] = out.getvalue()
    return cache[verb]


def mentioned_bptt_commands() -> list[str]:
    """`bptt ...` in the synopsis block and in inline code spans (usage, not run)."""
    text = readme()
    found = []
    for language, body, _, _ in fences(text):
        if language == "text":
            found += [
                re.split(r"\s{2,}", ln)[0] for ln in body.splitlines() if ln.startswith("bptt ")
            ]
    prose = FENCE.sub("", text)
    found += [s for s in re.findall(r"`([^`\n]+)`", prose) if s.startswith("bptt ")]
    return found


def test_the_synopsis_and_inline_commands_name_real_verbs_and_flags(helps):
    mentioned = mentioned_bptt_commands()
    assert len(mentioned) >= 12, mentioned  # the synopsis is found
    for usage in mentioned:
        words = shlex.split(usage)
        help_text = help_of(words[1], helps)
        for flag in (w for w in words[2:] if w.startswith("--") and w != "--flags"):
            assert re.search(rf"{re.escape(flag)}\b", help_text), f"{usage!r}: no {flag}"


def test_other_programs_commands_stand_in_bash_blocks():
    prose = FENCE.sub("", readme())
    spans = re.findall(r"`([^`\n]+)`", prose)
    stray = [s for s in spans if s.split()[0] in PROGRAMS and s.split()[0] != "bptt"]
    assert not stray, f"commands in prose, where no test sees them (use a ```bash block): {stray}"


# ---------------------------------------------------------------- run here


def shape(line: str) -> str:
    """A line with each number (1,234 / 0.8 / 42) replaced by N and spaces collapsed."""
    return " ".join(re.sub(r"\d[\d,]*(?:\.\d+)?", "N", line).split())


def head_and_samples(output: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The report's lines before the samples, and each sample's header and text."""
    head, *samples = re.split(r"^(--- sample .*---)$", output, flags=re.M)
    pairs = list(zip(samples[::2], samples[1::2], strict=True))
    return [ln for ln in head.splitlines() if ln.strip()], pairs


def same_shape(shown: str, printed: str) -> None:
    """The printed output has the README's lines: the same ones, in order, identical where
    they do not depend on the sizes (SIZED lines: numbers of the same form)."""
    (want, want_samples), (got, got_samples) = head_and_samples(shown), head_and_samples(printed)

    def runs(lines):  # repeated lines of one shape (the evaluations) count once
        return [s for i, s in enumerate(lines) if i == 0 or shape(s) != shape(lines[i - 1])]

    want, got = runs(want), runs(got)
    assert [shape(s) for s in got] == [shape(s) for s in want], "\n".join(got)
    for w, g in zip(want, got, strict=True):
        assert w.startswith(SIZED) or w == g, f"README: {w!r}\nprinted: {g!r}"
    assert [h for h, _ in got_samples] == [h for h, _ in want_samples]
    for header, body in want_samples + got_samples:
        prompt = re.search(r"prompt '(.*?)'", header).group(1)
        assert body.lstrip("\n").startswith(prompt), f"{header}: {body[:40]!r}"


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory) -> dict:
    """RUN_HERE's commands, as the README shows them (`bptt train` at TINY sizes), in a folder.

    ``printed`` maps each command to what it printed (None: its extra is not installed).
    """
    folder = tmp_path_factory.mktemp("readme")
    printed: dict[str, str | None] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for command in RUN_HERE:
            argv = shlex.split(command)[1:]
            if argv[0] == "export" and importlib.util.find_spec("onnx") is None:
                printed[command] = None
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(argv + (TINY if command == "bptt train" else []))
            assert code == 0, f"`{command}` exited {code}"
            printed[command] = out.getvalue()
    return {"folder": folder, "printed": printed}


def test_bptt_train_prints_the_lines_the_readme_shows(readme_run):
    same_shape(train_output(), readme_run["printed"]["bptt train"])


def test_the_shape_check_can_fail():
    shown = train_output()
    with pytest.raises(AssertionError):
        same_shape(shown, shown.replace("validation 46,505", "validation 46.5"))
    with pytest.raises(AssertionError):
        same_shape(shown, shown.replace("data: the built-in", "data: another"))
    same_shape(shown, shown.replace("step    100  val_loss 1.9142", "step 7  val_loss 4.1"))


def test_bptt_export_prints_what_the_readme_shows(readme_run):
    command = "bptt export runs/lm/best.safetensors runs/lm.onnx"
    if readme_run["printed"][command] is None:
        pytest.skip("the onnx extra is not installed")
    assert readme_run["printed"][command] == shown_after(command)


def test_the_readme_has_python_blocks_with_their_output():
    assert len(python_blocks()) >= 3 and all(shown is not None for _, shown in python_blocks())


def test_the_readme_python_blocks_print_what_it_shows(readme_run, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(readme_run["folder"])
    namespace: dict = {"__name__": "__readme__"}
    for i, (code, shown) in enumerate(python_blocks()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README python block {i + 1}", "exec"), namespace)
        assert out.getvalue() == shown, f"README python block {i + 1} printed:\n{out.getvalue()}"


def test_the_getting_started_page_python_blocks_print_what_it_shows(tmp_path, monkeypatch):
    """docs/getting-started.md repeats the tour in its own blocks: they run and print too."""
    blocks = python_blocks(ROOT / "docs" / "getting-started.md")
    assert len(blocks) >= 3 and all(shown is not None for _, shown in blocks)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__getting_started__"}
    for i, (code, shown) in enumerate(blocks):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"getting-started python block {i + 1}", "exec"), namespace)
        assert out.getvalue() == shown, f"getting-started block {i + 1} printed:\n{out.getvalue()}"
