"""cache_dir: $BPTT_CACHE first, then $XDG_CACHE_HOME/bptt, then ~/.cache/bptt."""

from pathlib import Path

from bptt.data.cache import cache_dir


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("music") == tmp_path / "mine" / "music"
    monkeypatch.delenv("BPTT_CACHE")
    assert cache_dir("music") == tmp_path / "xdg" / "bptt" / "music"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    assert cache_dir("speech") == tmp_path / "home" / ".cache" / "bptt" / "speech"
