"""Copy the README's sections into the documentation site's pages (docs/).

    python tools/readme_to_docs.py          # rewrite the generated pages from README.md

Each page in PAGES is an introduction written here, then README sections copied
verbatim with their headings raised one level (a section's ``##`` becomes the
page's ``#``), README links rewritten for the page's place under docs/
(``docs/x.png`` -> ``../x.png``, ``#anchor`` -> the page that now holds it).
Run it after the README's sections change, until the README is cut down to a
front page; from then on the pages are edited directly.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTE = "<!-- Generated from README.md by tools/readme_to_docs.py; edit the README (for now). -->"

# page (under docs/) -> (its title or None to take the first section's, an introduction,
# the README's ## sections in order; "" is the README's opening, before its first ##)
PAGES: dict[str, tuple[str | None, str, list[str]]] = {
    "index.md": (
        None,
        "",
        [""],
    ),
    "getting-started.md": (
        "Getting started",
        "Install, train the character language model on the built-in corpus, use the library "
        "from Python, and drive everything from the `bptt` command.\n\n"
        "```bash\n"
        'python3 -m pip install -e ".[plot,fast]"   # the library and the CLI\n'
        'python3 -m pip install -e ".[test]"        # the test tools (and this site\'s)\n'
        "bptt train                                 # the character LM, then samples\n"
        "```\n\n"
        "The notebooks (`notebooks/`) walk through the lecture with the library: "
        "[the RNN and BPTT by hand](notebooks/01_rnn_bptt_by_hand.ipynb), "
        "[the vanishing gradient](notebooks/02_vanishing_exploding.ipynb), "
        "[the LSTM's gates](notebooks/03_lstm_gates.ipynb) and "
        "[a character model](notebooks/04_char_model.ipynb).",
        ["Using the library", "The command line", "Documentation site and notebooks"],
    ),
    "export.md": (None, "", ["Export to ONNX, watch in TensorBoard"]),
    "lecture.md": (
        None,
        "The notebook [The RNN forward and BPTT, by hand](notebooks/01_rnn_bptt_by_hand.ipynb) "
        "writes the first rows of this table in NumPy and checks them against the library "
        "and finite differences.",
        ["The lecture, in code"],
    ),
    "tasks/text.md": (
        "Text: character and word language models",
        "The lecture's many-to-many architecture with Tx = Ty: read a character (or word), "
        "predict the next. `bptt train` trains it on the built-in corpus (see the "
        "[front page](../index.md) for what it prints); any UTF-8 text works.",
        ["Train on your own text"],
    ),
    "tasks/classify-tag.md": (
        None,
        "",
        ["Classify and tag: sentiment, named entities, DNA, activity"],
    ),
    "tasks/generate.md": (None, "", ["Generate: names and folk tunes (one to many)"]),
    "tasks/translate.md": (None, "", ["Translate: encoder-decoder with attention"]),
    "tasks/speech.md": (None, "", ["Speech: spoken digits from synthesised voices"]),
    "tasks/vanishing.md": (
        None,
        "The notebook [The vanishing and exploding gradient, drawn]"
        "(../notebooks/02_vanishing_exploding.ipynb) shows the same on small layers you can "
        "change, and [The LSTM's gates](../notebooks/03_lstm_gates.ipynb) looks inside a "
        "trained LSTM's memory.",
        ["Why LSTMs: the vanishing gradient, measured"],
    ),
    "tasks/mpi.md": (
        None,
        "The details (launchers, Slurm, safety checks, the measured scaling) are on "
        "[Distributed training, in detail](../distributed.md).",
        ["Beyond one machine: MPI"],
    ),
    "tests.md": (
        "Reliability and tests",
        "The promises and the test behind each are on the [Reliability](reliability.md) "
        "page; this page says what the suite holds and how to run it.",
        ["Reliability", "Tests"],
    ),
    "benchmarks.md": (None, "", ["Benchmarks"]),
    "design.md": (None, "", ["Design notes"]),
}
AFTER = {  # text after a page's sections
    "index.md": "## Where to read on\n\n"
    "- [Getting started](getting-started.md): install, the library in Python, the command line\n"
    "- [The lecture, in code](lecture.md): each equation and the code that implements it\n"
    "- the notebooks: [RNN and BPTT by hand](notebooks/01_rnn_bptt_by_hand.ipynb), "
    "[vanishing and exploding gradients](notebooks/02_vanishing_exploding.ipynb), "
    "[the LSTM's gates](notebooks/03_lstm_gates.ipynb), "
    "[a character model](notebooks/04_char_model.ipynb)\n"
    "- the tasks: [text](tasks/text.md), [classify and tag](tasks/classify-tag.md), "
    "[generate](tasks/generate.md), [translate](tasks/translate.md), "
    "[speech](tasks/speech.md), [vanishing gradients](tasks/vanishing.md), "
    "[MPI](tasks/mpi.md)\n"
    "- [Export to ONNX, TensorBoard](export.md), [reliability](reliability.md), "
    "[tests](tests.md), [benchmarks](benchmarks.md), [design](design.md)\n"
    "- the [API reference](reference/nn.md), generated from the docstrings\n",
}
SKIPPED = {"Contents"}  # README sections no page takes (the table of contents)
# Folders the README links to that have no page of their own: link a file in them instead.
FOLDERS = {"docs/chorales/": "docs/chorales/major-1.png", "docs/music/": "docs/music/README.md"}
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def sections(text: str) -> dict[str, str]:
    """The README's ## sections by title ("" is what comes before the first), fences respected."""
    out: dict[str, list[str]] = {"": []}
    current, fenced = "", False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            current = line[3:].strip()
            out[current] = []
        out[current].append(line)
    return {k: "\n".join(v).strip("\n") + "\n" for k, v in out.items()}


def slug(title: str) -> str:
    """GitHub's heading anchor (what the README's links use)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def raise_headings(text: str) -> str:
    """## -> #, ### -> ##, ... outside code fences."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and re.match(r"^#{2,6} ", line):
            line = line[1:]
        lines.append(line)
    return "\n".join(lines) + "\n"


def anchors(text: str) -> dict[str, str]:
    """Each README heading's GitHub anchor -> its page (and the anchor there, if not its top)."""
    where: dict[str, str] = {}
    by_title = sections(text)
    for page, (_, _, titles) in PAGES.items():
        for i, title in enumerate(titles):
            if title:
                where[slug(title)] = page if i == 0 else f"{page}#{slug(title)}"
            fenced = False
            for line in by_title.get(title, "").splitlines()[1:]:
                if FENCE.match(line):
                    fenced = not fenced
                m = None if fenced else re.match(r"^#{3,6} (.+)", line)
                if m:
                    where[slug(m.group(1))] = f"{page}#{slug(m.group(1))}"
    return where


def relink(text: str, page: str, where: dict[str, str]) -> str:
    here = (DOCS / page).parent

    def fix(m: re.Match) -> str:
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            return m.group(0)
        if target.startswith("#"):
            dest = where.get(target[1:])
            if dest is None:
                raise SystemExit(f"{page}: README link {target} names no section a page holds")
            path, _, frag = dest.partition("#")
            rel = "" if path == page else os.path.relpath(DOCS / path, here)
            return f"]({rel}{'#' + frag if frag else ''})" if rel or frag else "]()"
        target = FOLDERS.get(target, target)
        if target.startswith("docs/"):
            return f"]({os.path.relpath(DOCS / target[5:], here)})"
        raise SystemExit(f"{page}: README link {target} points outside docs/; give it a page")

    return LINK.sub(fix, text)


def main() -> int:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    by_title = sections(readme)
    taken = {t for _, _, titles in PAGES.values() for t in titles}
    left = [t for t in by_title if t not in taken and t not in SKIPPED]
    if left:
        print(f"README sections no page takes: {left}", file=sys.stderr)
        return 1
    where = anchors(readme)
    for page, (title, intro, titles) in PAGES.items():
        parts = [NOTE, ""]
        if title:
            parts += [f"# {title}", ""]
        if intro and title:
            parts += [intro, ""]
        for i, t in enumerate(titles):
            body = relink(by_title[t], page, where)
            if t and not title and i == 0:  # the section's title is the page's
                body = raise_headings(body)
                if intro:  # after the page's heading
                    head, _, rest = body.partition("\n")
                    body = f"{head}\n\n{intro}\n{rest}"
            parts.append(body)
        if page in AFTER:
            parts += ["", AFTER[page]]
        out = DOCS / page
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(parts).rstrip("\n") + "\n", encoding="utf-8")
        print(f"wrote docs/{page} from {', '.join(repr(t) for t in titles)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
