"""The library's own exceptions.

Everything a user can get wrong (shapes, files, flags, checkpoints) raises a
:class:`BpttError` whose message names what was expected and what was
received. The CLI prints that one line and exits non-zero; anything else is a
bug in bptt.
"""


class BpttError(ValueError):
    """Bad input from the user: the message says what was expected and what came."""


class DataError(BpttError):
    """A text or data file that cannot be used (missing, empty, binary, wrong encoding)."""


class CheckpointError(BpttError):
    """A checkpoint that cannot be trusted or does not fit (names the file and the field)."""
