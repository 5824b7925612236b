"""`tressel.paths.user_dir`: the per-user folders of the bundle store and the daemon by platform."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tressel.bundles import bundle_store_dir
from tressel.client import daemon_dir
from tressel.paths import user_dir


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    for name in ("LOCALAPPDATA", "XDG_DATA_HOME", "XDG_STATE_HOME", "TRESSEL_MODELS_DIR",
                 "TRESSEL_DAEMON_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("platform, models, daemon", [
    ("linux", ".local/share/tressel/models", ".local/state/tressel/daemon"),
    ("darwin", "Library/Application Support/tressel/models",
     "Library/Application Support/Tressel/daemon"),
    ("win32", "AppData/Local/tressel/models", "AppData/Local/Tressel/daemon"),
])
def test_default_folders_by_platform(home, monkeypatch, platform, models, daemon):
    monkeypatch.setattr(sys, "platform", platform)
    assert bundle_store_dir() == home / models
    assert daemon_dir() == home / daemon


def test_platform_variables_and_overrides(home, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    assert daemon_dir() == home / "state" / "tressel" / "daemon"
    assert user_dir("state", "a", "b") == home / "state" / "tressel" / "a" / "b"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(home / "local"))
    assert bundle_store_dir() == home / "local" / "tressel" / "models"
    monkeypatch.setenv("TRESSEL_MODELS_DIR", "~/models")
    assert bundle_store_dir() == Path("~/models").expanduser()
    monkeypatch.setenv("TRESSEL_DAEMON_DIR", str(home / "d"))
    assert daemon_dir() == home / "d"
    assert user_dir("state", "x", env="TRESSEL_UNSET_VARIABLE") == home / "local" / "tressel" / "x"
