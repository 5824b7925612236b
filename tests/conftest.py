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
