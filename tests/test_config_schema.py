"""The config schema's version and its migrations: an old checkpoint loads, samples and
resumes; renamed, removed and added fields are carried over; a newer schema is named."""

import shutil
from pathlib import Path

import pytest

from bptt import config as config_module
from bptt.checkpoint import load_checkpoint
from bptt.cli import main
from bptt.config import MIGRATIONS, SCHEMA_VERSION, Config, Migration
from bptt.errors import BpttError
from bptt.tasks.text import lm

# Saved by `bptt train` of commit f0e4fe9 (config schema 1: no "schema_version" yet) with
#   bptt train --text corpus.txt --out run --hidden-size 16 --embed-size 8 --batch-size 4
#              --window 16 --steps 40 --eval-every 20 --sample-length 40 --quiet
# on CORPUS below (34 kB: run/latest.safetensors).
OLD = Path(__file__).parent / "data" / "lm_schema1.safetensors"
CORPUS = "the clouds are in the sky. i grew up in france, i speak fluent french. " * 20


def test_the_kept_checkpoint_is_of_schema_1():
    _, meta = load_checkpoint(OLD)
    assert "schema_version" not in meta["config"]
    assert "accumulate" not in meta["config"] and meta["progress"]["step"] == 40


def test_a_schema_1_checkpoint_loads_and_samples():
    _, vocab, config, _ = lm.load_model(OLD)
    assert config.accumulate == 1 and config.watchdog == 600.0  # added by the migration
    assert (config.hidden_size, config.batch_size, config.text) == (16, 4, "corpus.txt")
    text = lm.sample_checkpoint(OLD, "the ", length=60, seed=1)
    assert text.startswith("the ") and len(text) == 64
    assert set(text) <= set(vocab)
    again = lm.sample_checkpoint(OLD, "the ", length=60, seed=1)
    assert again == text  # seeded
    assert lm.sample_checkpoint(OLD, "the ", length=60, seed=2) != text


def test_a_schema_1_checkpoint_resumes_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the run's --text was the relative 'corpus.txt'
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "run").mkdir()
    shutil.copy(OLD, tmp_path / "run" / "latest.safetensors")
    argv = ["train", "--resume", "run/latest.safetensors", "--steps", "42", "--quiet"]
    assert main([*argv, "--sample-length", "5"]) == 0
    assert "resumed from run/latest.safetensors at update 40" in capsys.readouterr().out
    _, meta = load_checkpoint(tmp_path / "run" / "latest.safetensors")
    assert meta["progress"]["step"] == 42
    assert meta["config"]["schema_version"] == SCHEMA_VERSION  # saved again: migrated


def test_a_config_round_trips_with_its_version():
    c = Config(hidden_size=7, accumulate=3, watchdog=5.0)
    d = c.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION
    assert Config.from_dict(d) == c


def test_every_old_version_has_a_step():
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))


def test_steps_rename_remove_and_add_in_order(monkeypatch):
    """A made-up history: v1 -> v2 as in bptt, v2 -> v3 renames and removes, v3 -> v4 adds."""
    table = {
        1: MIGRATIONS[1],
        2: Migration(renamed={"size": "hidden_size"}, removed=("legacy_flag",)),
        3: Migration(added={"beam": 3}),
    }
    monkeypatch.setattr(config_module, "MIGRATIONS", table)
    monkeypatch.setattr(config_module, "SCHEMA_VERSION", 4)
    old = {k: v for k, v in Config().to_dict().items() if k not in ("hidden_size", "beam")}
    old |= {"schema_version": 2, "size": 33, "legacy_flag": True}
    old.pop("accumulate")  # a version-2 config always had it; its default must not matter here
    c = Config.from_dict(old)
    assert (c.hidden_size, c.beam, c.accumulate) == (33, 3, 1)
    # a version-3 config has no 'size' any more: its hidden_size stays as written
    v3 = {**Config(hidden_size=9, beam=7).to_dict(), "schema_version": 3}
    assert (Config.from_dict(v3).hidden_size, Config.from_dict(v3).beam) == (9, 7)


def test_a_newer_schema_with_unknown_fields_names_its_version():
    newer = {**Config().to_dict(), "schema_version": SCHEMA_VERSION + 1, "quantum": True}
    with pytest.raises(
        BpttError,
        match=rf"newer bptt \(config schema version {SCHEMA_VERSION + 1}"
        r"; this bptt reads versions 1 to \d+\) .*quantum",
    ):
        Config.from_dict(newer)
    same = {**Config().to_dict(), "quantum": True}  # this version, a field it never had
    with pytest.raises(BpttError, match=r"schema version \d+\) has unknown fields: quantum"):
        Config.from_dict(same)


@pytest.mark.parametrize("bad", ["2", 0, -1, 1.5, True, None])
def test_a_bad_schema_version_is_refused(bad):
    with pytest.raises(BpttError, match="schema_version must be an integer >= 1"):
        Config.from_dict({**Config().to_dict(), "schema_version": bad})


def test_a_removed_field_of_an_old_checkpoint_no_longer_breaks_loading(monkeypatch):
    """The bug the migrations fix: a schema-1 file with a field Config has dropped."""
    table = {1: Migration(removed=("old_knob",), added={"accumulate": 1, "watchdog": 600.0})}
    monkeypatch.setattr(config_module, "MIGRATIONS", table)
    old = {k: v for k, v in Config(lr=0.5).to_dict().items() if k != "schema_version"}
    with pytest.raises(BpttError, match="unknown fields: old_knob"):
        Config.from_dict({**old, "old_knob": 3, "schema_version": SCHEMA_VERSION})
    assert Config.from_dict({**old, "old_knob": 3}) == Config(lr=0.5)
