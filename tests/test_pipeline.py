"""The generate pipeline on a tiny random bundle: real photos, determinism, progress, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from helpers import write_image
from tressel.errors import Cancelled, FaceNotFoundError
from tressel.pipeline import (
    PHASES,
    GenerateParams,
    cached_models,
    clear_model_cache,
    generate,
    load_models,
    resolve_device,
    resolve_dtype,
    run_generate,
)


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    return write_image(tmp_path_factory.mktemp("images") / "astronaut.png",
                       skimage.data.astronaut())


def test_astronaut_photo_gives_a_groom_on_the_scalp(bundle, astronaut_png):
    out = run_generate(astronaut_png, bundle, GenerateParams(seed=1))
    hair = out.hair
    # the crop was found on the face, not the whole frame
    x0, y0, x1, _ = hair.provenance.crop_box
    assert 0 < x1 - x0 < 512 and (x0, y0) != (0, 0)
    assert out.crop_image.shape == (bundle.crop_size, bundle.crop_size, 3)
    assert out.crop_image.dtype == np.uint8
    n = hair.num_strands
    assert n > 50
    assert hair.positions.shape == (n, 32, 3) and hair.positions.dtype == np.float32
    assert np.isfinite(hair.positions).all()
    assert hair.root_uv.shape == (n, 2) and (hair.root_uv >= 0).all() and (hair.root_uv <= 1).all()
    # strands start at their roots, and the roots lie on the cap (radius 0.1 around y=0.27)
    np.testing.assert_allclose(hair.positions[:, 0], hair.root_positions, atol=1e-6)
    radius = np.linalg.norm(hair.root_positions - [0.0, 0.27, 0.0], axis=1)
    assert np.all(np.abs(radius - 0.1) < 0.01)
    normals = hair.root_normals / np.linalg.norm(hair.root_normals, axis=1, keepdims=True)
    outward = (hair.root_positions - [0.0, 0.27, 0.0]) / radius[:, None]
    assert np.median(np.sum(normals * outward, axis=1)) > 0.9
    # root_uv is the mesh's (s, t): on this cap s runs along +x and t along -z
    assert np.corrcoef(hair.root_uv[:, 0], hair.root_positions[:, 0])[0, 1] > 0.9
    assert np.corrcoef(hair.root_uv[:, 1], hair.root_positions[:, 2])[0, 1] < -0.9
    for value in (hair.material.melanin, hair.material.redness,
                  hair.material.root_darkness_strength):
        assert 0.0 < value < 1.0
    assert len(hair.material.raw) == 11
    prov = hair.provenance
    assert prov.bundle_hash == bundle.content_hash and prov.seed == 1
    assert prov.steps == bundle.sampler["steps"] and len(prov.image_sha256) == 64
    assert set(out.timings) == set(PHASES)


def test_same_seed_same_strands_other_seed_differs(bundle, astronaut_png):
    params = GenerateParams(seed=5, steps=3)
    first = generate(astronaut_png, bundle, params)
    clear_model_cache()  # reloading the models must not change anything either
    second = generate(astronaut_png, bundle, params)
    assert np.array_equal(first.positions, second.positions)
    assert np.array_equal(first.root_uv, second.root_uv)
    other = generate(astronaut_png, bundle, GenerateParams(seed=6, steps=3))
    assert other.positions.shape != first.positions.shape or \
        not np.array_equal(other.positions, first.positions)


def test_inputs_path_bytes_and_array_agree(bundle, astronaut_png):
    params = GenerateParams(seed=2, steps=1)
    from_path = generate(astronaut_png, bundle, params)
    from_bytes = generate(astronaut_png.read_bytes(), bundle, params)
    from_array = generate(skimage.data.astronaut(), bundle, params)
    assert from_path.provenance.image_sha256 == from_bytes.provenance.image_sha256
    assert np.array_equal(from_path.positions, from_bytes.positions)
    assert np.array_equal(from_path.positions, from_array.positions)


def test_progress_reports_every_phase_and_diffusion_step(bundle, astronaut_png):
    events = []
    generate(astronaut_png, bundle, GenerateParams(steps=3),
             progress=lambda phase, step, total: events.append((phase, step, total)))
    phases = list(dict.fromkeys(phase for phase, _, _ in events))
    assert phases == list(PHASES)
    diffusion = [(s, t) for p, s, t in events if p == "diffusion"]
    assert diffusion == [(0, 3), (1, 3), (2, 3), (3, 3)]


class CancelAfter:
    """A cancel flag that turns on after `n` diffusion steps were reported."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.steps = 0
        self.event = threading.Event()

    def progress(self, phase: str, step: int, total: int) -> None:
        if phase == "diffusion" and step >= self.n:
            self.event.set()
        if phase == "diffusion":
            self.steps = step

    def is_set(self) -> bool:
        return self.event.is_set()


def test_cancel_between_diffusion_steps(bundle, astronaut_png):
    flag = CancelAfter(2)
    with pytest.raises(Cancelled):
        generate(astronaut_png, bundle, GenerateParams(steps=4), progress=flag.progress,
                 cancel=flag)
    assert flag.steps == 2  # stopped right after the step that set the flag
    already = threading.Event()
    already.set()
    with pytest.raises(Cancelled):
        generate(astronaut_png, bundle, GenerateParams(), cancel=already)


def test_models_are_cached_across_calls(bundle, astronaut_png):
    clear_model_cache()
    device = resolve_device("auto")
    dtype = resolve_dtype("auto", device)
    generate(astronaut_png, bundle, GenerateParams(steps=1))
    assert cached_models() == [(bundle.content_hash, str(device), str(dtype))]
    models = load_models(bundle, device, dtype)
    generate(astronaut_png, bundle, GenerateParams(steps=1, seed=3))
    assert load_models(bundle, device, dtype) is models
    assert len(cached_models()) == 1


def test_strand_cap_density_scale_and_guidance(bundle, astronaut_png):
    base = generate(astronaut_png, bundle, GenerateParams(seed=4, steps=1))
    capped = generate(astronaut_png, bundle, GenerateParams(seed=4, steps=1, max_strands=40))
    assert capped.num_strands == 40 < base.num_strands
    # the capped roots are a subset of the full set, in the same order
    full = [tuple(uv) for uv in base.root_uv]
    positions = [full.index(tuple(uv)) for uv in capped.root_uv]
    assert positions == sorted(positions)
    sparse = generate(astronaut_png, bundle, GenerateParams(seed=4, steps=1, density_scale=0.3))
    assert 0 < sparse.num_strands < base.num_strands
    guided = generate(astronaut_png, bundle, GenerateParams(seed=4, steps=2, guidance=2.5,
                                                            guidance_interval=(0.0, 200.0)))
    assert guided.provenance.guidance == 2.5 and guided.num_strands > 0


def test_no_face_raises_and_no_crop_uses_whole_image(bundle, tmp_path):
    flat = write_image(tmp_path / "wall.png", np.full((300, 400, 3), 128, np.uint8))
    with pytest.raises(FaceNotFoundError, match="--no-crop"):
        generate(flat, bundle, GenerateParams(steps=1))
    hair = generate(flat, bundle, GenerateParams(steps=1, crop=False))
    assert hair.provenance.crop_box == (0, -50, 400, 350)
    assert hair.num_strands >= 0


def test_bfloat16_autocast_runs_and_bad_options_are_refused(bundle, astronaut_png):
    hair = generate(astronaut_png, bundle, GenerateParams(steps=2, dtype="bfloat16",
                                                          device="cpu"))
    assert hair.num_strands > 0 and np.isfinite(hair.positions).all()
    from tressel.errors import ConfigError

    for bad in (GenerateParams(steps=0), GenerateParams(dtype="int8"),
                GenerateParams(density_scale=0), GenerateParams(device="tpu")):
        with pytest.raises(ConfigError):
            generate(astronaut_png, bundle, bad)
