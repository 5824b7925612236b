"""`tressel generate` end to end through the command line, on a tiny random bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import skimage.data
from helpers import write_image
from tressel.commands.generate import output_paths, parse_strands


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    astronaut = skimage.data.astronaut()
    return {
        "png": write_image(folder / "astronaut.png", astronaut),
        "jpg": write_image(folder / "portrait.jpg", astronaut),
        "wall": write_image(folder / "wall.png", np.full((200, 300, 3), 90, np.uint8)),
    }


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def tressel(capsys, monkeypatch):
    """Run the CLI in this process (models stay cached between calls, as in the daemon)."""

    def run(*args: str, store: Path) -> Ran:
        from tressel.cli import main

        monkeypatch.setenv("TRESSEL_MODELS_DIR", str(store))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_generate_writes_groom_crop_material_and_npz(bundle, images, tmp_path, tressel):
    out = tmp_path / "out" / "groom"
    proc = tressel("generate", str(images["png"]), "-o", str(out), "--model", str(bundle.path),
                   "--seed", "3", "--steps", "2", "--npz", store=tmp_path / "store")
    assert proc.returncode == 0, proc.stderr
    groom = out.with_suffix(".usdc")
    crop = tmp_path / "out" / "groom_crop.png"
    material = tmp_path / "out" / "groom_material.json"
    npz = tmp_path / "out" / "groom.npz"
    for path in (groom, crop, material, npz):
        assert path.is_file(), path
    assert "strands" in proc.stdout and str(groom) in proc.stdout
    # progress bars per phase, and per step for the diffusion
    assert "diffusion" in proc.stderr and "2/2" in proc.stderr
    # the crop is the model's 224 px view of the face
    spec = oiio.ImageInput.open(str(crop)).spec()
    assert (spec.width, spec.height, spec.nchannels) == (224, 224, 3)
    data = np.load(npz)
    n = data["positions"].shape[0]
    assert n > 0 and data["positions"].shape[1:] == (32, 3)
    meta = json.loads(material.read_text())
    assert 0 < meta["melanin"] < 1 and meta["provenance"]["seed"] == 3
    assert meta["provenance"]["bundle_hash"] == bundle.content_hash
    # the USD layer holds the same curves
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(groom))
    curves = [UsdGeom.BasisCurves(p) for p in stage.Traverse() if p.IsA(UsdGeom.BasisCurves)]
    assert curves, "no BasisCurves in the groom layer"
    counts = [len(c.GetCurveVertexCountsAttr().Get()) for c in curves]
    assert n in counts
    # no temporary files left behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_same_seed_gives_identical_npz_across_processes(bundle, images, tmp_path, tressel):
    args = [str(images["png"]), "--model", str(bundle.path), "--steps", "2", "--npz",
            "--no-progress"]
    # the installed entry point in a fresh process ...
    env = {**os.environ, "TRESSEL_MODELS_DIR": str(tmp_path / "store")}
    proc = subprocess.run([sys.executable, "-m", "tressel.cli", "generate", *args, "-o",
                           str(tmp_path / "a.usda")], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # ... and this process give the same strands
    ran = tressel("generate", *args, "-o", str(tmp_path / "b.usda"), store=tmp_path / "store")
    assert ran.returncode == 0, ran.stderr
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert np.array_equal(a["positions"], b["positions"])
    assert (tmp_path / "a.usda").read_text().startswith("#usda")


def test_several_images_go_to_a_folder_and_failures_are_reported(bundle, images, tmp_path,
                                                                  tressel):
    out = tmp_path / "grooms"
    proc = tressel("generate", str(images["png"]), str(images["jpg"]), str(images["wall"]),
                   "-o", str(out), "--model", str(bundle.path), "--steps", "1",
                   "--strands", "25", "--no-progress", store=tmp_path / "store")
    # the photo without a face fails with a message; the other two are written
    assert proc.returncode == 1
    assert "wall.png" in proc.stderr and "no face found" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "astronaut.usdc").is_file() and (out / "portrait.usdc").is_file()
    assert not (out / "wall.usdc").exists()
    assert "25 strands" in proc.stdout


def test_errors_are_one_line_messages(bundle, images, tmp_path, tressel):
    store = tmp_path / "store"
    missing = tressel("generate", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "g.usdc"),
                      "--model", str(bundle.path), store=store)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    no_model = tressel("generate", str(images["png"]), "-o", str(tmp_path / "g.usdc"),
                       "--model", "not-installed", store=store)
    assert no_model.returncode == 1 and "import-difflocks" in no_model.stderr
    no_face = tressel("generate", str(images["wall"]), "-o", str(tmp_path / "g.usdc"),
                      "--model", str(bundle.path), store=store)
    assert no_face.returncode == 1 and "--no-crop" in no_face.stderr
    assert not (tmp_path / "g.usdc").exists()
    bad = tressel("generate", str(images["png"]), "-o", "x", "--strands", "lots", store=store)
    assert bad.returncode == 2 and "--strands" in bad.stderr
    for proc in (missing, no_model, no_face):
        assert "Traceback" not in proc.stderr


def test_strands_and_output_parsing(tmp_path):
    assert parse_strands("0.5x") == (0.5, None)
    assert parse_strands("20000") == (1.0, 20000)
    assert output_paths([Path("a.jpg")], tmp_path / "g") == [tmp_path / "g.usdc"]
    assert output_paths([Path("a.jpg")], tmp_path / "g.usda") == [tmp_path / "g.usda"]
    assert output_paths([Path("x/a.jpg"), Path("y/a.jpg")], tmp_path / "d") == [
        tmp_path / "d" / "a.usdc", tmp_path / "d" / "a_2.usdc"]
