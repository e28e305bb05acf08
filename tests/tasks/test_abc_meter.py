"""abc_meter: the rules a bar sequence must follow to keep its meter, and the check of whole
ABC tunes through music21 (pickups, endings, repeats, chord symbols, meter changes)."""

import pytest

from bptt.tasks.text import abc_meter


def _needs_music21():
    pytest.importorskip("music21", reason="the music extra (music21) is not installed")


def test_check_tune_parses_and_counts_bars():
    _needs_music21()
    reel = "M:C|\nL:1/8\nK:D\nA2|d2fd A2FA|d2fd e2A2|d2fd A2FA|d2e2 d2:|"
    assert abc_meter.check_tune(reel) == (True, True)
    # A section's ending and the next pickup make one bar; a lone short bar does not.
    assert abc_meter.check_tune("M:2/4\nL:1/8\nK:C\nC|DEFG|A3:|B|cdef|g4|") == (True, True)
    assert abc_meter.check_tune("M:2/4\nL:1/8\nK:C\nC|DEFG|A2|B4|c4|") == (True, False)
    assert abc_meter.check_tune("K:C\nC|DEFG|") == (False, False)  # no meter header


def test_bars_keep_meter_rules():
    full = [2.0] * 6
    assert abc_meter.bars_keep_meter([0.5, 2, 2, 2, 2, 1.5], full)  # pickup, last bar short
    assert abc_meter.bars_keep_meter([2, 2, 1.5, 0.5, 2, 2], full)  # an ending and a pickup
    assert abc_meter.bars_keep_meter([2, 2, 1, 0.5, 0.5, 2], full)  # a bar cut twice
    assert not abc_meter.bars_keep_meter([2, 2, 1, 2, 2, 2], full)  # a lone short bar
    assert not abc_meter.bars_keep_meter([2, 2, 2.5, 2, 2, 2], full)  # a long bar
    assert not abc_meter.bars_keep_meter([2.5, 2, 2, 2, 2, 2], full)  # a long first bar
    assert not abc_meter.bars_keep_meter([0.5, 1, 1, 1, 1, 1], full)  # no full bar at all
    # after a repeat sign (bar 3 starts a section) a pickup may follow a full last bar
    assert abc_meter.bars_keep_meter([0.5, 2, 2, 0.5, 2, 2], full, sections=[3])
    assert not abc_meter.bars_keep_meter([0.5, 2, 2, 0.5, 2, 2], full)


def test_check_tune_real_notation():
    _needs_music21()
    # no L: line (ABC's default unit), a pickup after a full bar and a repeat, a triplet, a
    # grace note, a chord and first/second endings
    tune = "M:2/4\nK:G\n(3ABc|dcdA GFED|GEFD EDB,A,:|\n|:G|{A}G2 [GB]2|1 d4:|2 d2 G2|]"
    assert abc_meter.check_tune(tune) == (True, True)
    assert abc_meter.check_tune("M:none\nL:1/8\nK:G\nD2B2G2|F2A2d3|GG") == (True, False)  # no meter
    # chord symbols and annotations in quotes take no time
    quoted = 'M:2/4\nL:1/8\nK:G\nGA|">"Bc "G"dB|">"cA "D7"F2|G4|]'
    assert abc_meter.check_tune(quoted) == (True, True)
    # an overfull bar (music21 cuts it in two and would let the pieces pass)
    assert abc_meter.check_tune("M:6/8\nL:1/8\nK:G\nGAB|dBG A2D|GAB d2e dBA|G3|]") == (True, False)
    assert abc_meter.check_tune("M:2/4\nL:1/8\nK:G\nGAB|dBGA2D|GAB d2|G3|]") == (True, False)
    # a meter change the text writes is kept
    assert abc_meter.check_tune("M:2/4\nL:1/8\nK:G\nGA|BcBA|[M:3/4]GABcde|f2g2a2|]") == (True, True)
