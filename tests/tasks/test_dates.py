"""dates: the generated pairs (well-posed, years right, reproducible) and, marked slow, the
quality target: >= 99% exact match on held-out dates with attention."""

import datetime
import re
import subprocess
import sys

import pytest

pytest.importorskip("faker")
babel_dates = pytest.importorskip("babel.dates")

from bptt.tasks.seq2seq import dates  # noqa: E402

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def test_pairs_are_reproducible_distinct_and_iso():
    a, b = dates.generate(300, seed=3), dates.generate(300, seed=3)
    assert a == b and len({text for text, _ in a}) == 300
    assert a != dates.generate(300, seed=4)
    for text, iso in a:
        assert ISO.match(iso) and dates.FIRST <= datetime.date.fromisoformat(iso) <= dates.LAST
        assert text == dates.clean(text) and "," not in text and text == text.lower()


def test_every_input_has_exactly_one_answer():
    answers: dict[str, set] = {}
    for text, iso in dates.samples(4000, seed=0):
        answers.setdefault(text, set()).add(iso)
    ambiguous = {t: a for t, a in answers.items() if len(a) > 1}
    assert not ambiguous, f"inputs with several dates: {list(ambiguous.items())[:5]}"


@pytest.mark.parametrize("day", ["2019-12-30", "2020-12-31", "2021-01-01", "1976-01-03"])
def test_the_year_is_the_calendar_year_in_every_format(day):
    """Babel's YYYY is the week-year (2019-12-30 is in week 1 of 2020); the patterns use y."""
    date = datetime.date.fromisoformat(day)
    for locale in dates.LOCALES:
        for pattern in (*dates.PATTERNS, "short"):
            text = babel_dates.format_date(date, pattern, locale=locale)
            assert str(date.year) in text or text.endswith(str(date.year)[2:]), (locale, text)
            wrong = str(date.year + (1 if date.month == 12 else -1))
            assert wrong not in text, (locale, pattern, text)


def test_clean_and_metric():
    assert dates.clean("Tuesday, 25 September  1984") == "tuesday 25 september 1984"
    assert dates.source_tokens("Sept. 25, 1984") == list("sept. 25 1984")
    m = dates.metrics([list("1984-09-25"), list("1984-09-26")], [list("1984-09-25")] * 2)
    assert m == {"exact_match": 0.5}


@pytest.mark.slow
def test_dates_reach_99_percent_exact_match_with_attention(tmp_path):
    """The preset (~10 minutes on 2 busy cores): held-out exact match >= 99%."""
    out = tmp_path / "dates"
    run = subprocess.run(
        [sys.executable, "-m", "bptt", "train", "dates", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    greedy = re.search(r"greedy\s+exact_match ([\d.]+)", run.stdout)
    assert greedy and float(greedy.group(1)) >= 0.99, run.stdout
    checkpoint, date = str(out / "best.safetensors"), "tuesday 25 september 1984"
    shown = subprocess.run(
        [sys.executable, "-m", "bptt", "translate", checkpoint, date, "--beam", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.splitlines()[0] == "1984-09-25"
