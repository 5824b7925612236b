"""Shared test fixtures: the conformance vectors, daemons for host tests, Qt's system libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "difflocks" / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    if not (VECTORS / "manifest.json").is_file():
        pytest.skip(f"DiffLocks conformance vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="module")
def tiny_daemon(tmp_path_factory):
    """A real daemon process (the pipeline engine, a tiny random bundle) for one test module:
    `(process, client)`."""
    from daemon_support import real_daemon, tiny_bundle

    root = tmp_path_factory.mktemp("tiny-daemon")
    process = real_daemon(root / "state", tiny_bundle(root))
    client = process.start()
    yield process, client
    process.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny bundle with random weights ("tiny-random"), one per test module."""
    from daemon_support import tiny_bundle

    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def daemon_env(monkeypatch):
    """Daemons that a client starts (autostart) run the fast test engine."""
    import os

    from daemon_support import SLEEP_ENGINE, TESTS

    monkeypatch.setenv("TRESSEL_DAEMON_ENGINE", SLEEP_ENGINE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")])))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """pytest-qt imports PySide6 while pytest configures, so Qt's system libraries (libGL,
    libEGL, fontconfig, xkbcommon) must be installed before that, on a fresh machine too."""
    import os
    import tempfile

    from system_packages import QT_RUNTIME, ensure_apt_packages

    # Cached head distance fields go to a folder of this run, not the user's data folder.
    os.environ.setdefault("TRESSEL_CACHE_DIR", tempfile.mkdtemp(prefix="tressel_test_cache_"))

    reason = ensure_apt_packages(QT_RUNTIME)
    if reason:
        print(f"conftest: Qt's system libraries are not all there ({reason}); the Qt tests "
              "may fail to import PySide6")
