"""The bundled demo model: shipped intact, chosen by default, and the README's first command works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tressel.bundles import Bundle, default_bundle, packaged_bundles_dir

REPO = Path(__file__).resolve().parents[1]
DEMO = packaged_bundles_dir() / "tressel-demo"


def test_demo_bundle_is_shipped_small_and_intact():
    bundle = Bundle.open(DEMO)
    assert bundle.kind == "demo" and bundle.verify() == []
    assert bundle.total_bytes() < 40e6  # "tens of MB at most"
    card = (DEMO / "MODEL_CARD.md").read_text()
    assert "not DiffLocks" in card and "ignore_image" in card  # eval numbers with baseline
    recipe = bundle.manifest["source"]["recipe"]
    assert recipe["name"] == "tressel-demo" and "seed" in recipe


def test_demo_is_the_default_on_a_fresh_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "empty-store"))
    monkeypatch.delenv("TRESSEL_MODEL", raising=False)
    assert default_bundle().path.resolve() == DEMO.resolve()


@pytest.mark.slow
def test_readme_first_command_writes_a_groom(tmp_path, monkeypatch):
    """`tressel generate examples/astronaut.png -o ...` with nothing installed (README)."""
    from tressel.cli import main
    from tressel.synth.head import CRANIUM

    readme = (REPO / "README.md").read_text()
    assert "tressel generate examples/astronaut.png" in readme
    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "empty-store"))
    monkeypatch.delenv("TRESSEL_MODEL", raising=False)
    out = tmp_path / "astronaut_groom.usdc"
    assert main(["generate", str(REPO / "examples" / "astronaut.png"), "-o", str(out)]) == 0
    assert out.is_file()
    from tressel.usd import read_groom

    hair = read_groom(out)
    positions = np.asarray(hair.positions)
    assert hair.num_strands > 500 and np.isfinite(positions).all()
    # Hair on a head: roots on the cranium, strands around the head, not flung away.
    roots = positions[:, 0]
    radius = np.linalg.norm((roots - np.array(CRANIUM.center)) / np.array(CRANIUM.axes), axis=1)
    assert np.median(np.abs(radius - 1.0)) < 0.05
    assert np.percentile(np.linalg.norm(positions - np.array(CRANIUM.center), axis=-1), 99) < 0.6
