"""Vocabularies, text reading, batching (padding, masks, TBPTT windows)."""

from bptt.data.batching import (
    BucketedBatches,
    TBPTTBatches,
    bucket_batches,
    make_streams,
    num_windows,
    pad_sequences,
    tbptt_windows,
)
from bptt.data.text import builtin_corpus, read_text, split_text
from bptt.data.vocabulary import BOS, EOS, PAD, SPECIALS, UNK, Vocabulary

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIALS",
    "UNK",
    "BucketedBatches",
    "TBPTTBatches",
    "Vocabulary",
    "bucket_batches",
    "builtin_corpus",
    "make_streams",
    "num_windows",
    "pad_sequences",
    "read_text",
    "split_text",
    "tbptt_windows",
]
