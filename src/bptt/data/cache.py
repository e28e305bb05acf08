"""Where bptt keeps what it computed once and can compute again (parsed corpora, checks)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """$BPTT_CACHE/``name``, else $XDG_CACHE_HOME/bptt/``name``, else ~/.cache/bptt/``name``."""
    if os.environ.get("BPTT_CACHE"):
        return Path(os.environ["BPTT_CACHE"]).expanduser() / name
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bptt" / name
