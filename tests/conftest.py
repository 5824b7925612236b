"""Shared test fixtures: where the DiffLocks conformance vectors live."""

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


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """pytest-qt imports PySide6 while pytest configures, so Qt's system libraries (libGL,
    libEGL, fontconfig, xkbcommon) must be installed before that, on a fresh machine too."""
    from system_packages import QT_RUNTIME, ensure_apt_packages

    reason = ensure_apt_packages(QT_RUNTIME)
    if reason:
        print(f"conftest: Qt's system libraries are not all there ({reason}); the Qt tests "
              "may fail to import PySide6")
