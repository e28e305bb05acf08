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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the message says what was saved and how to go on.

    ``saved`` is the checkpoint that holds the run now (None: none was ever
    written) and ``step`` the update it holds.
    """

    def __init__(self, message: str, saved=None, step: int = 0):
        super().__init__(message)
        self.saved, self.step = saved, step
