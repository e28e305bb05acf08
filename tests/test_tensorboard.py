"""--tensorboard: a short run's event files, read back by TensorBoard's own reader."""

import json
import math

import pytest

from bptt.cli import main
from bptt.tensorboard import crc32c, event, masked_crc32c

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_crc32c_gives_the_published_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue's check value
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8


def test_an_event_is_the_protobuf_tensorboard_parses():
    from tensorboard.compat.proto.event_pb2 import Event

    parsed = Event.FromString(event(-3, 1.5, {"train/loss": 0.25}))
    assert (parsed.step, parsed.wall_time) == (-3, 1.5)
    assert [(v.tag, v.simple_value) for v in parsed.summary.value] == [("train/loss", 0.25)]


def test_a_short_run_logs_what_metrics_jsonl_holds(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    tb = tmp_path / "tb"
    flags = ["--text", str(corpus), "--out", str(tmp_path / "run"), "--hidden-size", "8"]
    flags += ["--embed-size", "4", "--batch-size", "2", "--window", "8", "--steps", "6"]
    flags += ["--eval-every", "3", "--sample-length", "5", "--tensorboard", str(tb)]
    assert main(["train", "--quiet", *flags]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(list(tb.glob("events.out.tfevents.*"))) == 1
    acc = event_accumulator.EventAccumulator(str(tb))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {
        "train/loss",
        "train/bits_per_symbol",
        "train/grad_norm",
        "train/lr",
        "val/loss",
        "val/bits_per_symbol",
    }

    def logged(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    def want(key, scale=1.0, rows=rows):
        return [(r["step"], pytest.approx(r[key] * scale, rel=1e-6)) for r in rows if key in r]

    assert logged("train/loss") == want("loss")
    assert logged("train/bits_per_symbol") == want("loss", 1 / math.log(2))
    assert logged("train/grad_norm") == want("grad_norm")
    assert logged("train/lr") == want("lr")
    assert logged("val/bits_per_symbol") == want("val_bits_per_symbol")
    assert [s for s, _ in logged("val/loss")] == [3, 6]
