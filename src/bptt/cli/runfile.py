"""Run files: a training run's settings as TOML, read by ``--config`` and written by
``--print-config``.

A run file is flat: ``task`` and the task's options, one ``name = value`` line each,
with the option's help as a comment above it. Settings that are not set (``text``,
``tensorboard``...) are left out; reading the file gives them their defaults again.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from bptt.config import Config
from bptt.errors import BpttError


def read(path) -> dict:
    """The settings of the TOML run file at ``path``: Config field -> value."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise BpttError("reading a run file needs Python 3.11+ or: pip install tomli") from None
    path = Path(path)
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BpttError(f"cannot read the run file '{path}': {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise BpttError(f"the run file '{path}' is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise BpttError(f"the run file '{path}' is not valid TOML: {e}") from None
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise BpttError(
            f"the run file '{path}' has settings bptt does not know: {', '.join(unknown)}"
        )
    nested = sorted(k for k, v in settings.items() if isinstance(v, (dict, list)))
    if nested:
        raise BpttError(f"the run file '{path}': {', '.join(nested)} must be single values")
    return settings


def _value(value) -> str:
    """A TOML scalar: true/false, an integer, a float, or a JSON-escaped (TOML basic) string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def write(config: Config, names: tuple[str, ...], about: str = "") -> str:
    """The TOML text of ``config``'s ``task`` and ``names`` (the task's options)."""
    helps = {f.name: f.metadata["help"] for f in fields(Config)}
    lines = [f"# bptt train --config FILE: {config.task}" + (f", {about}" if about else "")]
    lines.append(f'task = "{config.task}"')
    unset = []
    for name in names:
        value = getattr(config, name)
        if value is None:
            unset.append(name)
            continue
        lines += ["", f"# {helps[name]}", f"{name} = {_value(value)}"]
    if unset:
        lines += ["", f"# not set (their defaults): {', '.join(unset)}"]
    return "\n".join(lines) + "\n"
