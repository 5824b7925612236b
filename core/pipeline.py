"""One job, end to end: image → face crop → DINOv2 features → scalp diffusion → strands → HairResult.

`generate(image, bundle, params, progress, cancel)` is the API the CLI, the daemon, batch and
the hosts call. Every random draw comes from one `torch.Generator` seeded from `params.seed`
(on the CPU, so CPU and GPU runs start from the same noise); `cancel` is checked between steps;
models stay loaded across calls in a small cache keyed by bundle hash, device and dtype.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tressel import __version__
from tressel.bundles import Bundle, load_bundle
from tressel.errors import BundleError, ConfigError
from tressel.hair_reading import fit_strand_lengths
from tressel.progress import CancelFlag, ProgressFn, check_cancel, no_progress
from tressel.result import HairMaterial, HairResult, Provenance, ScalpMesh

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# Phases in the order a job reports them through `progress(phase, step, total)`.
PHASES = ("load", "image", "face", "encode", "diffusion", "roots", "decode", "place", "material",
          "hair", "collide")

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray


@dataclass
class GenerateParams:
    """What a job may change; None means the bundle's default (its manifest `sampler`)."""

    seed: int = 0
    steps: int | None = None
    guidance: float | None = None  # classifier-free guidance scale; 1 disables it
    guidance_interval: tuple[float, float] | None = None  # guidance only where lo < σ < hi
    density_scale: float = 1.0  # scales the predicted density: fewer (or more) strands
    max_strands: int | None = None  # keep at most this many strands (a seeded subset)
    device: str = "auto"  # "auto" = cuda if available, else cpu
    dtype: str = "auto"  # "auto" = bfloat16 autocast on cuda, float32 on cpu
    crop: bool = True  # False: the whole image is the face crop (no detection)
    keep_texture: bool = False  # keep the raw scalp texture and density in the result
    decode_chunk_size: int | None = None  # strands per decoder chunk (None: the codec's)
    collide: bool = True  # push strands out of the scalp (closed by a cap), lengths kept
    collision_margin: float = 5.0e-4  # metres kept between strand points and the scalp
    # Curl decoded strands as the image reads (bundles whose encoder has a style head only)
    curl: bool = True
    # Measure the hair in the photo (tressel.hair_reading) and set length and colour from it
    # (bundles whose encoder has a style head only; needs the face mesh, so crop=True)
    hair_reading: bool = True

    def validate(self) -> None:
        """Check every field's type and bounds (`tressel.params`, shared with the CLI and the
        daemon); intervals given as lists become tuples."""
        from tressel.params import check_generate_params

        checked = check_generate_params(dataclasses.asdict(self))
        self.guidance_interval = checked["guidance_interval"]


@dataclass
class GenerateOutput:
    """A job's groom plus what the CLI saves beside it and what the benchmark reads."""

    hair: HairResult
    crop_image: np.ndarray | None  # uint8 [S,S,3], the model's view of the face
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    device: str = "cpu"
    dtype: str = "float32"
    hair_reading: Any = None  # tressel.hair_reading.HairReading, when the photo was measured


# --------------------------------------------------------------------------------------------
# device, dtype and the model cache


def resolve_device(device: str) -> torch.device:
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available: use --device "
                          "cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for but not available: use --device cpu")
    return resolved


# CPU feature flags (Linux /proc/cpuinfo) of bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16 on x86,
    FEAT_BF16 on Apple silicon). Without it, PyTorch emulates bf16 and a bf16 forward of the
    released denoiser took 320 s against 55 s in float32 (an AVX2 CPU)."""
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.partition(":")[2].split())
            if any(flag in flags for flag in (*NATIVE_BF16_FLAGS, "bf16")):
                return True
    return False


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        pass
    import platform
    import subprocess

    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=5, check=False)
            return "Features: bf16" if out.stdout.strip() == "1" else ""
        except OSError:
            return ""
    return ""


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The diffusion autocast dtype: DiffLocks runs bf16 on GPUs; CPUs stay in float32 (so a
    CPU result does not depend on the CPU model). Asking for bfloat16 on a CPU that has no
    bf16 hardware warns: it is emulated there, several times slower than float32."""
    if dtype in ("", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype == "bfloat16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("--dtype bfloat16 on a CPU without bf16 hardware (no AVX512-BF16 or "
                    "AMX): PyTorch emulates it, several times slower than float32; use "
                    "--dtype float32 (or auto)")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[dtype]


@dataclass
class LoadedModels:
    """Every network and the scalp data of one bundle, on one device."""

    bundle: Bundle
    device: torch.device
    dtype: torch.dtype
    denoiser: nn.Module
    strand_codec: nn.Module
    rgb2material: nn.Module
    image_encoder: nn.Module
    scalp: dict[str, np.ndarray]


_CACHE: OrderedDict[tuple[str, str, str], LoadedModels] = OrderedDict()
_CACHE_LOCK = threading.Lock()
# One bundle resident by default: a second full DiffLocks bundle would need another 4 GB.
CACHE_SIZE = int(os.environ.get("TRESSEL_MODEL_CACHE", "1"))


def clear_model_cache() -> None:
    """Drop every cached model (the daemon's "unload")."""
    with _CACHE_LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cached_models() -> list[tuple[str, str, str]]:
    """(bundle hash, device, dtype) of each cached model set, oldest first."""
    with _CACHE_LOCK:
        return list(_CACHE)


def load_models(bundle: Bundle, device: torch.device, dtype: torch.dtype) -> LoadedModels:
    """The bundle's networks on `device`, from the cache when already loaded."""
    key = (bundle.content_hash, str(device), str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        # Free the old models before loading new ones so that peak memory stays one bundle.
        while len(_CACHE) >= max(CACHE_SIZE, 1):
            _CACHE.popitem(last=False)
        models = _load_uncached(bundle, device, dtype)
        _CACHE[key] = models
        return models


def _load_uncached(bundle: Bundle, device: torch.device, dtype: torch.dtype) -> LoadedModels:
    from tressel.components import load_component
    from tressel.nn.denoiser import Denoiser

    def component(name: str) -> nn.Module:
        return load_component(name, bundle.config(name), bundle.state_dict(name), device,
                              what=f"bundle {bundle.name!r} {name}")

    inner = component("diffusion")
    denoiser = Denoiser(inner, sigma_data=bundle.sigma_data).eval()
    models = LoadedModels(
        bundle=bundle, device=device, dtype=dtype, denoiser=denoiser,
        strand_codec=component("strand_codec"), rgb2material=component("rgb2material"),
        image_encoder=component("image_encoder"), scalp=bundle.scalp_data(),
    )
    _check_consistent(bundle, models)
    return models


def _check_consistent(bundle: Bundle, models: LoadedModels) -> None:
    """Catch a bundle whose configs disagree before the first job fails deep inside a layer."""
    inner = models.denoiser.inner_model
    feat_dim, fh, fw = inner.config.local_cond_shape
    encoder = models.image_encoder.config
    grid = bundle.crop_size // encoder.patch_size
    problems = []
    if encoder.embed_dim != feat_dim or (grid, grid) != (fh, fw):
        problems.append(f"the image encoder gives {encoder.embed_dim}x{grid}x{grid} features at "
                        f"crop {bundle.crop_size} but the diffusion model expects "
                        f"{feat_dim}x{fh}x{fw}")
    if tuple(inner.config.input_size) != (bundle.texture_size, bundle.texture_size):
        problems.append(f"texture.size {bundle.texture_size} differs from the diffusion input "
                        f"{list(inner.config.input_size)}")
    latent = models.strand_codec.config.latent_dim
    if bundle.texture_channels != latent + 1:
        problems.append(f"the texture has {bundle.texture_channels} channels but the strand "
                        f"codec needs {latent} latents + 1 density")
    if problems:
        raise BundleError(f"bundle {bundle.name!r} is inconsistent: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------
# the job


def generate(
    image: ImageInput,
    bundle: Bundle | str | os.PathLike,
    params: GenerateParams | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
) -> HairResult:
    """Turn one photo into a groom (see `run_generate` for the crop and timings too)."""
    return run_generate(image, bundle, params, progress, cancel).hair


def run_generate(
    image: ImageInput,
    bundle: Bundle | str | os.PathLike,
    params: GenerateParams | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
) -> GenerateOutput:
    """`generate`, also returning the face crop and the seconds spent in each phase."""
    params = params or GenerateParams()
    params.validate()
    report = progress or no_progress
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def phase_done(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now
        check_cancel(cancel)

    check_cancel(cancel)
    report("load", 0, 1)
    bundle = load_bundle(bundle)
    device = resolve_device(params.device)
    dtype = resolve_dtype(params.dtype, device)
    models = load_models(bundle, device, dtype)
    sampler = bundle.sampler
    steps = int(params.steps or sampler["steps"])
    guidance = float(params.guidance if params.guidance is not None else sampler["guidance"])
    interval = tuple(float(v) for v in (params.guidance_interval or
                                         sampler["guidance_interval"]))
    report("load", 1, 1)
    phase_done("load")

    report("image", 0, 1)
    loaded = _load_image(image)
    report("image", 1, 1)
    phase_done("image")

    from tressel.face import crop_face, to_uint8_frame

    report("face", 0, 1)
    frame = to_uint8_frame(loaded.rgb)  # once: the crop and the hair reading both read it
    face = crop_face(frame, crop=params.crop, name=loaded.name, out_size=bundle.crop_size)
    report("face", 1, 1)
    phase_done("face")

    report("encode", 0, 1)
    with torch.inference_mode():
        cls_token, patch_map = models.image_encoder.encode(face.image)
    report("encode", 1, 1)
    phase_done("encode")

    # One generator for the whole job, consumed in a fixed order: noise, roots, strand subset.
    generator = torch.Generator(device="cpu").manual_seed(int(params.seed))
    scalp_texture = _sample_texture(models, cls_token, patch_map, generator, steps, guidance,
                                    interval, params, sampler, report, cancel)
    phase_done("diffusion")

    grown = _grow(models, bundle, scalp_texture, generator, params, report, cancel, timings)
    clock = time.perf_counter()

    report("material", 0, 1)
    material = _material(models, patch_map)
    report("material", 1, 1)
    phase_done("material")

    from tressel.roots import rowcol_to_st

    positions = grown.strands_world
    style_head = getattr(models.image_encoder, "style_head", None)
    reading = None
    report("hair", 0, 1)
    # An unconfident mesh (a face half hidden) places a crop well enough, not a measurement.
    if (params.hair_reading and style_head is not None and face.mesh is not None
            and not face.approximate):
        reading = read_hair_or_none(frame, face.mesh, loaded.name)
    if reading is not None:
        positions = fit_strand_lengths(positions, reading.length_cm / 100.0)
        if reading.melanin is not None:
            material = material.with_melanin(reading.melanin)
    if params.curl and style_head is not None:
        style = style_head.read(cls_token, patch_map)
        if reading is not None and reading.curl_type is not None:
            style = {**style, "curl_type": reading.curl_type}
        positions = curl_from_image(style, positions, grown.root_normals, generator)
    report("hair", 1, 1)
    phase_done("hair")

    scalp = models.scalp
    hair = HairResult(
        positions=positions.astype(np.float32),
        # DiffLocks samples roots as (row, col) = (1 - t, s); HairResult carries the mesh's (s, t).
        root_uv=rowcol_to_st(grown.root_uv),
        root_positions=grown.root_positions.astype(np.float32),
        root_normals=grown.root_normals.astype(np.float32),
        material=material,
        provenance=Provenance(
            image_sha256=loaded.sha256,
            bundle_name=bundle.name,
            bundle_hash=bundle.content_hash,
            seed=int(params.seed),
            steps=steps,
            guidance=guidance,
            guidance_interval=(interval[0], interval[1]),
            crop_box=tuple(face.box.as_list()),
            tressel_version=__version__,
        ),
        scalp_mesh=ScalpMesh(vertices=scalp["vertices"], faces=scalp["faces"], uv=scalp["uv"]),
        scalp_texture=scalp_texture[0].float().cpu().numpy() if params.keep_texture else None,
        density=grown.density if params.keep_texture else None,
    )
    if reading is not None:
        hair.provenance.operations["hair_reading"] = reading.describe()
    report("collide", 0, 1)
    if params.collide:
        collide_with_scalp(hair, bundle, params.collision_margin)
    report("collide", 1, 1)
    phase_done("collide")
    log.info("groom: %d strands x %d points from %s (%s)", hair.num_strands,
             hair.points_per_strand, loaded.name, ", ".join(f"{k} {v:.2f}s"
                                                            for k, v in timings.items()))
    return GenerateOutput(hair=hair, crop_image=face.image, timings=timings, device=str(device),
                          dtype=str(dtype).replace("torch.", ""), hair_reading=reading)


def read_hair_or_none(frame: np.ndarray, mesh: np.ndarray, name: str) -> Any:
    """The hair reading (tressel.hair_reading) of a uint8 RGB photo, or None, with a warning,
    where the segmentation model cannot run: the job goes on with the model's own length and
    colour."""
    from tressel.hair_reading import SegmentationUnavailable, read_hair

    try:
        return read_hair(frame, mesh)
    except SegmentationUnavailable as exc:
        log.warning("%s: the hair in %s is not measured; length and colour are the model's",
                    exc, name)
        return None


def curl_from_image(style: dict[str, Any], strands: np.ndarray, root_normals: np.ndarray,
                    generator: torch.Generator) -> np.ndarray:
    """Curl decoded strands [N,V,3] the way the image reads (`style`: a style head's
    curl_type, curl_radius_cm, log_curl_period). A small strand codec decodes a curly strand
    as its centreline (benchmarks/bench_codec_curl.py); this adds the wave or helix back
    around it (tressel.synth.groom.recurl). Seeded from the job's generator."""
    from tressel.synth.groom import CURL_RANGES, recurl

    curl_type = str(style.get("curl_type", "straight"))
    if curl_type not in CURL_RANGES:
        return strands
    # The heads were taught on these ranges; on a photo far from the renders a regression
    # can land anywhere, and a 5 cm curl radius would be a helix, not hair.
    (r_lo, r_hi), (p_lo, p_hi) = CURL_RANGES[curl_type]
    radius = min(max(float(style["curl_radius_cm"]) / 100.0, r_lo), r_hi)
    period = min(max(math.exp(min(float(style["log_curl_period"]), 0.0)), p_lo), p_hi)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return recurl(strands, root_normals, curl_type, radius, period, np.random.default_rng(seed))


def _load_image(image: ImageInput) -> Any:
    """A LoadedImage from a path, encoded bytes, or an RGB array (uint8 or float in [0,1])."""
    from tressel.images import LoadedImage, load_image

    if isinstance(image, np.ndarray):
        import hashlib

        array = image
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ConfigError(f"image array must be [H,W,3] RGB, got shape {list(image.shape)}")
        array = array[..., :3]
        if array.dtype == np.uint8:
            rgb = array.astype(np.float32) / 255.0
        else:
            rgb = np.clip(array.astype(np.float32), 0.0, 1.0)
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        return LoadedImage(rgb=np.ascontiguousarray(rgb), sha256=digest, name="image array",
                           file_format="array", source_type=str(array.dtype),
                           converted_from_linear=False)
    return load_image(image)


def _sample_texture(models: LoadedModels, cls_token: torch.Tensor, patch_map: torch.Tensor,
                    generator: torch.Generator, steps: int, guidance: float,
                    interval: tuple[float, ...], params: GenerateParams,
                    sampler: dict[str, Any], report: ProgressFn,
                    cancel: CancelFlag | None) -> torch.Tensor:
    """The raw scalp texture `[1, C, S, S]` (float32) from the DPM++(2M) sampler (SPEC §4)."""
    from tressel.sampling import initial_noise, karras_sigmas, sample_dpmpp_2m_sde

    device, dtype = models.device, models.dtype
    inner = models.denoiser.inner_model
    size = inner.config.input_size
    sigmas = karras_sigmas(steps, float(sampler["sigma_min"]), float(sampler["sigma_max"]),
                           float(sampler.get("rho", 7.0)), device=device)
    x = initial_noise((1, inner.config.input_channels, *size), float(sampler["sigma_max"]),
                      generator, device)
    cls_token = cls_token.to(device)
    patch_map = patch_map.to(device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def model_fn(x: torch.Tensor, sigma: torch.Tensor, conditional: bool) -> torch.Tensor:
        with autocast:
            # eval mode: the image conditioning is never dropped (unlike SPEC §2.9)
            if conditional:
                return models.denoiser(x, sigma, cls_token, patch_map)
            return models.denoiser(x, sigma)

    def callback(info: dict[str, Any]) -> None:
        report("diffusion", info["i"] + 1, steps)
        check_cancel(cancel)

    report("diffusion", 0, steps)
    with torch.inference_mode():
        texture = sample_dpmpp_2m_sde(model_fn, x, sigmas, cfg_val=guidance,
                                      cfg_interval=interval, callback=callback)
    return texture.float()


def _grow(models: LoadedModels, bundle: Bundle, scalp_texture: torch.Tensor,
          generator: torch.Generator, params: GenerateParams, report: ProgressFn,
          cancel: CancelFlag | None, timings: dict[str, float]) -> Any:
    """Density → seeded roots → decoded strands → placed on the scalp (SPEC §8–10).

    The three phases run inside `grow_strands`; their times come from when each phase first
    reports progress.
    """
    from tressel.roots import grow_strands

    started: dict[str, float] = {}

    def timed(phase: str, step: int, total: int) -> None:
        started.setdefault(phase, time.perf_counter())
        report(phase, step, total)

    roots = bundle.roots
    start = time.perf_counter()
    options: dict[str, Any] = {}
    if params.decode_chunk_size is not None:
        options["chunk_size"] = params.decode_chunk_size
    grown = grow_strands(
        scalp_texture, models.strand_codec, models.scalp, generator,
        sigma_data=bundle.sigma_data, density_floor=float(roots["density_floor"]),
        upsample_multiplier=int(roots["upsample_multiplier"]),
        density_scale=params.density_scale, max_strands=params.max_strands,
        progress=timed, cancel=cancel, **options,
    )
    end = time.perf_counter()
    marks = [("roots", started.get("roots", start)), ("decode", started.get("decode", end)),
             ("place", started.get("place", end))]
    for (phase, begin), (_, finish) in zip(marks, [*marks[1:], ("end", end)]):
        timings[phase] = max(finish - begin, 0.0)
    timings["roots"] += marks[0][1] - start
    check_cancel(cancel)
    return grown


_SDF_CACHE: OrderedDict[str, Any] = OrderedDict()


ENV_CACHE_DIR = "TRESSEL_CACHE_DIR"


def sdf_cache_dir() -> Path:
    """Where head distance fields are kept between runs (`$TRESSEL_CACHE_DIR/head-sdf`, else
    the per-user data folder's `cache/head-sdf`)."""
    from tressel.paths import user_dir

    return user_dir("data", "cache", env=ENV_CACHE_DIR) / "head-sdf"


def head_sdf(bundle: Bundle, vertices: np.ndarray, faces: np.ndarray) -> Any:
    """The signed distance field of the bundle's scalp (capped into a closed head).

    Building it takes a few seconds, so it is kept in memory for the process's next jobs and
    on disk, per bundle content hash, for the next processes (every `tressel generate` run).
    A cache file that cannot be read is rebuilt; one that cannot be written only costs the
    next run the build.
    """
    from tressel.geometry.collision import (
        SDF_FORMAT,
        build_head_sdf,
        load_head_sdf,
        save_head_sdf,
    )
    from tressel.geometry.mesh import TriMesh

    with _CACHE_LOCK:
        sdf = _SDF_CACHE.get(bundle.content_hash)
    if sdf is not None:
        return sdf
    path = sdf_cache_dir() / f"{bundle.content_hash}-v{SDF_FORMAT}.npz"
    try:
        sdf = load_head_sdf(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("rebuilding the head distance field: %s", exc)
    if sdf is None:
        sdf = build_head_sdf(TriMesh(vertices, faces))
        try:
            save_head_sdf(sdf, path)
        except OSError as exc:
            log.warning("could not keep the head distance field for later runs (%s): %s",
                        path, exc)
    with _CACHE_LOCK:
        _SDF_CACHE[bundle.content_hash] = sdf
        while len(_SDF_CACHE) > 4:
            _SDF_CACHE.popitem(last=False)
    return sdf


def warm_collision(bundle: Bundle) -> None:
    """Build the bundle's head distance field now (the daemon's --preload), not in the first
    job that collides."""
    scalp = bundle.scalp_data()
    head_sdf(bundle, scalp["vertices"], scalp["faces"])


def collide_with_scalp(hair: HairResult, bundle: Bundle, margin: float) -> None:
    """Push `hair`'s strands out of the bundle's scalp (capped into a closed head), in place,
    and record penetration before and after in its provenance."""
    from tressel.geometry.collision import resolve_collisions

    sdf = head_sdf(bundle, hair.scalp_mesh.vertices, hair.scalp_mesh.faces)
    hair.positions, report = resolve_collisions(hair.positions, sdf, margin)
    hair.provenance.operations.update(report.as_provenance())
    hair.provenance.operations["collision:mesh"] = "scalp (bundle), capped"


def _material(models: LoadedModels, patch_map: torch.Tensor) -> HairMaterial:
    with torch.inference_mode():
        raw = models.rgb2material(patch_map.to(models.device).float())
    return HairMaterial.from_raw(raw[0].float().cpu().tolist())


# --------------------------------------------------------------------------------------------
# writing results


def save_npz(hair: HairResult, path: str | os.PathLike) -> Path:
    """positions, root_uv, root positions/normals and the material, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(
        tmp, positions=hair.positions, root_uv=hair.root_uv,
        root_positions=hair.root_positions, root_normals=hair.root_normals,
        material_raw=np.asarray(hair.material.raw, dtype=np.float32),
        seed=np.int64(hair.provenance.seed),
    )
    os.replace(tmp, path)
    return path


def write_groom_file(hair: HairResult, path: str | os.PathLike, **options: Any) -> Path:
    """The groom as a USD layer through `tressel.usd.write_groom` (`options`: WriteOptions)."""
    from tressel.usd import write_groom

    path = Path(path)
    write_groom(hair, path, **options)
    return path
