"""Checkpoints: one safetensors file of named arrays plus JSON metadata, written atomically.

A checkpoint holds

    tensors   named arrays, e.g. "rnn.weight_ih_l0" (G*H, D) as PyTorch names
              parameters, optimizer state under a prefix ("optim.m.rnn.weight_ih_l0"),
              the carried hidden state; dtypes are kept (float32, float64, int64, ...)
    metadata  a JSON object: config, vocabulary (``Vocabulary.to_dict()``), step,
              optimizer scalars, RNG state (``Generator.bit_generator.state``),
              data position (``TBPTTBatches.state_dict()``)

The file is plain safetensors (any safetensors reader loads it). Its string
metadata holds exactly

    "format": "bptt"   "format_version": "2"   "bptt": <the metadata as JSON>
    "sha256": {"metadata": <hex of the "bptt" string>, "tensors": {name: <hex of its bytes>}}

Trust. Loading never runs code: no pickle anywhere, and nothing read from a
file is ever imported or called; callers look names (cell, task, optimizer)
up in fixed tables. The reader is our own (:mod:`bptt.checkpoint.read`): it
checks every field of the header before any array is made, allocates no more
than the file's size, verifies the SHA-256 of the metadata and of every tensor
(a flipped bit anywhere is detected and named), and refuses NaN or Inf in
floating-point tensors unless ``allow_non_finite=True`` (saving refuses them too).

Writes are atomic (:mod:`bptt.checkpoint.write`): the bytes go to a temporary file beside the target
(``.<name>.tmp-<random>``), which is flushed and fsynced, then renamed onto the
target with ``os.replace``, and the directory is fsynced. A crash or kill at
any moment leaves the target either the previous complete checkpoint or the
new one, never a torn file; a failed write (full disk, read-only folder)
removes its temporary file and leaves the previous checkpoint as it was. Only
a killed writer may leave its temporary file behind (it is never read, and the
name says what it is).
"""

from bptt.checkpoint.read import load_checkpoint, parse_checkpoint, require_fields
from bptt.checkpoint.write import save_checkpoint, write_atomically

__all__ = [
    "load_checkpoint",
    "parse_checkpoint",
    "require_fields",
    "save_checkpoint",
    "write_atomically",
]
