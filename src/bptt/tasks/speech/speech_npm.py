"""The npm packages of the training-only speech engines (GnuSpeech, SAM): pinned,
installed on first use into bptt's cache, where node runs them.

.ci/run installs the same pinned versions (its NPM_PACKAGES: keep the two in step).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bptt.data.cache import cache_dir
from bptt.errors import BpttError

# The npm package (pinned) of each extra engine, installed into npm_prefix() on first use.
NPM_PACKAGES = {"gnuspeech": "@echogarden/gnuspeech-wasm@0.3.0", "sam": "sam-js@0.3.1"}
NODE_HINT = "apt-get install nodejs npm (node 18 or later; bptt then installs the npm package "


def npm_prefix() -> Path:
    """Where the extra engines' npm packages are installed: $BPTT_CACHE/npm, else
    ~/.cache/bptt/npm (``npm install --prefix`` it)."""
    return cache_dir("npm")


def npm_package_dir(engine: str) -> Path:
    """The folder of ``engine``'s npm package under :func:`npm_prefix`."""
    name = NPM_PACKAGES[engine].rsplit("@", 1)[0]
    return npm_prefix() / "node_modules" / name


def npm_installed(engine: str) -> bool:
    """Whether node is on PATH and ``engine``'s npm package, at its pinned version, is in
    :func:`npm_prefix` (nothing is installed)."""
    package = npm_package_dir(engine) / "package.json"
    if shutil.which("node") is None or not package.is_file():
        return False
    version = json.loads(package.read_text(encoding="utf-8")).get("version")
    return version == NPM_PACKAGES[engine].rsplit("@", 1)[1]


def require_npm_package(engine: str, hint: str) -> None:
    """Install ``engine``'s pinned npm package into :func:`npm_prefix` unless it is there;
    ``hint`` says how to install npm when it is missing."""
    if npm_installed(engine):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BpttError(
            f"the speech engine {engine} needs the npm package {NPM_PACKAGES[engine]}, which "
            f"is not in {npm_prefix()}, and 'npm' is not on PATH to install it; install "
            f"(Debian/Ubuntu): {hint}"
        )
    npm_prefix().mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(npm_prefix()), "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            [*cmd, NPM_PACKAGES[engine]], capture_output=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BpttError(f"npm install {NPM_PACKAGES[engine]} failed: {e}") from None
    if done.returncode != 0 or not npm_installed(engine):
        err = done.stderr.decode(errors="replace").strip()[-2000:]
        raise BpttError(
            f"npm install --prefix {npm_prefix()} {NPM_PACKAGES[engine]} failed "
            f"(exit {done.returncode}); the speech engine {engine} needs it: {err}"
        )
