"""Model bundles: a folder holding every weight, size and scalp-mesh datum one model needs.

A bundle is a folder with `manifest.json` (format `tressel-bundle/1`), one safetensors file per
network (official DiffLocks key names), the scalp mesh as a PLY plus its precomputed UV maps and
TBN frames, and the SHA-256 of every file. Sizes come only from the manifest, never from
constants, so the released DiffLocks model and Tressel's small demo models share one loader.

Installed bundles live in the *bundle store*, `bundle_store_dir()`: `$TRESSEL_MODELS_DIR`, else
the user's data directory. Installs are atomic: a bundle is built in a hidden temporary folder
inside the store and renamed into place only when complete, so a failed import leaves the store
as it was.

Manifest layout (every key is read by the pipeline; see `docs` in README "Model bundles"):

    format, name, kind, description, license, created_utc, tressel_version, source
    components.{diffusion,strand_codec,rgb2material,image_encoder}.{config, weights}
    scalp.{mesh, maps, uv_map_size}
    texture.{size, channels, sigma_data}
    roots.{density_floor, upsample_multiplier}
    sampler.{steps, sigma_min, sigma_max, rho, guidance, guidance_interval, solver}
    crop.{size}
    files.{NAME: {sha256, bytes}}
    content_hash   (SHA-256 of the canonical manifest without this key)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tressel import __version__
from tressel.errors import BundleError
from tressel.paths import user_dir

if TYPE_CHECKING:  # heavy imports stay out of `import tressel.bundles`
    import numpy as np
    import torch
    from tressel.result import ScalpMesh

log = logging.getLogger(__name__)

FORMAT = "tressel-bundle/1"
MANIFEST = "manifest.json"
COMPONENTS = ("diffusion", "strand_codec", "rgb2material", "image_encoder")
# Names a user may give a bundle: they become folder names in the store.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ENV_STORE = "TRESSEL_MODELS_DIR"
_TMP_PREFIX = ".tmp-"


# --------------------------------------------------------------------------------------------
# The store


def bundle_store_dir() -> Path:
    """Where installed bundles live: `$TRESSEL_MODELS_DIR`, else the per-user data directory.

    Linux uses `$XDG_DATA_HOME/tressel/models` (default `~/.local/share/tressel/models`), macOS
    `~/Library/Application Support/tressel/models`, Windows `%LOCALAPPDATA%\\tressel\\models`.
    The folder is not created here; installing a bundle creates it.
    """
    return user_dir("data", "models", env=ENV_STORE)


def check_bundle_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BundleError(
            f"invalid bundle name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def list_bundles(store: Path | None = None) -> list[Bundle]:
    """Every complete bundle in the store, sorted by name (temporary or broken folders skipped)."""
    store = store or bundle_store_dir()
    if not store.is_dir():
        return []
    bundles = []
    for child in sorted(store.iterdir()):
        if child.name.startswith(".") or not (child / MANIFEST).is_file():
            continue
        try:
            bundles.append(Bundle.open(child))
        except BundleError as exc:
            log.warning("skipping %s: %s", child, exc)
    return bundles


def load_bundle(name_or_path: str | os.PathLike | Bundle, store: Path | None = None) -> Bundle:
    """A bundle given as a `Bundle`, a folder path, or the name of an installed bundle."""
    if isinstance(name_or_path, Bundle):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if (path / MANIFEST).is_file():
        return Bundle.open(path)
    store = store or bundle_store_dir()
    if NAME_RE.match(text) and (store / text / MANIFEST).is_file():
        return Bundle.open(store / text)
    # The shipped demo model answers to its name too (an installed bundle of that name wins).
    shipped = packaged_bundles_dir() / text
    if NAME_RE.match(text) and (shipped / MANIFEST).is_file():
        return Bundle.open(shipped)
    installed = ", ".join(b.name for b in list_bundles(store)) or "none"
    shipped_names = ", ".join(b.name for b in list_bundles(packaged_bundles_dir()))
    if shipped_names:
        installed += f"; shipped: {shipped_names}"
    raise BundleError(
        f"no model bundle {text!r}: not a folder with {MANIFEST} and not installed in {store} "
        f"(installed: {installed}). Run `tressel models list`, or import the DiffLocks release "
        "with `tressel models import-difflocks DIR`."
    )


ENV_DEFAULT_MODEL = "TRESSEL_MODEL"
DEFAULT_NAME = "difflocks"


def packaged_bundles_dir() -> Path:
    """Bundles shipped inside the package (the demo model), read-only."""
    return Path(__file__).resolve().parent / "data" / "bundles"


def default_bundle(name_or_path: str | os.PathLike | Bundle | None = None,
                   store: Path | None = None) -> Bundle:
    """The bundle a job uses when none is named.

    Order: the argument; `$TRESSEL_MODEL`; `difflocks` in the store; the only bundle in the
    store; the bundle shipped with the package.
    """
    if name_or_path is not None:
        return load_bundle(name_or_path, store)
    if os.environ.get(ENV_DEFAULT_MODEL):
        return load_bundle(os.environ[ENV_DEFAULT_MODEL], store)
    store = store or bundle_store_dir()
    if (store / DEFAULT_NAME / MANIFEST).is_file():
        return Bundle.open(store / DEFAULT_NAME)
    installed = list_bundles(store)
    if len(installed) == 1:
        return installed[0]
    packaged = list_bundles(packaged_bundles_dir())
    if not installed and packaged:
        return packaged[0]
    if installed:
        names = ", ".join(b.name for b in installed)
        raise BundleError(f"several bundles are installed ({names}): choose one with --model "
                          f"NAME or set {ENV_DEFAULT_MODEL}")
    raise BundleError(
        f"no model bundle installed in {store}: import the DiffLocks release with "
        "`tressel models import-difflocks DIR`, or pass --model FOLDER"
    )


def remove_bundle(name: str, store: Path | None = None) -> Path:
    """Delete an installed bundle; returns the folder that was removed."""
    store = store or bundle_store_dir()
    target = store / check_bundle_name(name)
    if not (target / MANIFEST).is_file():
        raise BundleError(f"no installed bundle {name!r} in {store}; see `tressel models list`")
    # Rename first so that a half-deleted folder is never mistaken for a bundle.
    doomed = store / f"{_TMP_PREFIX}rm-{name}-{os.getpid()}-{time.monotonic_ns()}"
    os.replace(target, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return target


@contextmanager
def staging_dir(store: Path | None = None, name: str = "bundle") -> Iterator[Path]:
    """A temporary folder inside the store, removed on exit unless it was installed (renamed)."""
    store = store or bundle_store_dir()
    store.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}-", dir=store))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def install_bundle(
    build: Callable[[Path], Any],
    name: str,
    store: Path | None = None,
    replace: bool = False,
) -> Bundle:
    """Build a bundle with `build(folder)` in a staging folder and rename it into the store.

    `build` must write a complete bundle (use `write_bundle`). Anything it raises propagates
    and the store is left exactly as it was.
    """
    store = store or bundle_store_dir()
    check_bundle_name(name)
    target = store / name
    if target.exists() and not replace:
        raise BundleError(
            f"a bundle named {name!r} is already installed in {store}: pass --force to replace "
            f"it, --name to choose another name, or `tressel models remove {name}` first"
        )
    with staging_dir(store, name) as tmp:
        build(tmp)
        bundle = Bundle.open(tmp)  # validates the manifest before anything is replaced
        if bundle.name != name:
            bundle.manifest["name"] = name
            _write_manifest(tmp, bundle.manifest)
        old = None
        if target.exists():
            old = store / f"{_TMP_PREFIX}old-{name}-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return Bundle.open(target)


# --------------------------------------------------------------------------------------------
# The bundle


@dataclass
class Bundle:
    """An opened bundle folder. Weights and scalp data are read on demand, not at open."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Bundle:
        path = Path(path)
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path} is not a model bundle: it has no {MANIFEST}") from None
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot read {manifest_path}: {exc}") from None
        _validate_manifest(manifest, path)
        return cls(path=path, manifest=manifest)

    # -- identity

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "")

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    # -- sizes and defaults

    def config(self, component: str) -> dict[str, Any]:
        """The architecture config of one network (a deep copy: callers may edit it)."""
        if component not in COMPONENTS:
            raise KeyError(component)
        return copy.deepcopy(self.manifest["components"][component]["config"])

    @property
    def texture_size(self) -> int:
        return int(self.manifest["texture"]["size"])

    @property
    def texture_channels(self) -> int:
        return int(self.manifest["texture"]["channels"])

    @property
    def sigma_data(self) -> float:
        return float(self.manifest["texture"]["sigma_data"])

    @property
    def uv_map_size(self) -> int:
        return int(self.manifest["scalp"]["uv_map_size"])

    @property
    def crop_size(self) -> int:
        return int(self.manifest["crop"]["size"])

    @property
    def sampler(self) -> dict[str, Any]:
        return copy.deepcopy(self.manifest["sampler"])

    @property
    def roots(self) -> dict[str, Any]:
        return copy.deepcopy(self.manifest["roots"])

    # -- files

    def file(self, relative: str) -> Path:
        return self.path / relative

    def weights_path(self, component: str) -> Path:
        return self.file(self.manifest["components"][component]["weights"])

    def state_dict(self, component: str, device: str = "cpu") -> dict[str, torch.Tensor]:
        """The network's weights with their official key names."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.weights_path(component)
        try:
            return load_file(str(path), device=device)
        except (OSError, SafetensorError) as exc:
            raise BundleError(
                f"bundle {self.name!r}: cannot read {path.name} ({exc}); the bundle is damaged, "
                "run `tressel models info --verify` or re-import it"
            ) from None

    def scalp_mesh(self) -> ScalpMesh:
        """The scalp mesh (vertices, faces, (s, t) UVs) as stored in the bundle's scalp data."""
        from tressel.result import ScalpMesh

        data = self.scalp_data()
        return ScalpMesh(vertices=data["vertices"], faces=data["faces"], uv=data["uv"])

    def scalp_data(self) -> dict[str, np.ndarray]:
        """Mesh arrays, per-vertex TBN and the precomputed UV-space maps (SPEC §9)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = self.file(self.manifest["scalp"]["maps"])
        try:
            return load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise BundleError(f"bundle {self.name!r}: cannot read {path.name} ({exc})") from None

    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest["files"].values())

    def verify(self) -> list[str]:
        """Re-hash every file; returns a list of problems (empty when the bundle is intact)."""
        problems = []
        for rel, meta in sorted(self.manifest["files"].items()):
            path = self.file(rel)
            if not path.is_file():
                problems.append(f"{rel}: missing")
                continue
            digest = sha256_file(path)
            if digest != meta["sha256"]:
                problems.append(f"{rel}: SHA-256 {digest[:12]} does not match the manifest "
                                f"({meta['sha256'][:12]})")
        if manifest_hash(self.manifest) != self.content_hash:
            problems.append(f"{MANIFEST}: content_hash does not match its contents")
        return problems


# --------------------------------------------------------------------------------------------
# Writing


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 of the canonical manifest (sorted keys, no whitespace) without `content_hash`.

    The manifest lists every file's SHA-256, so this one hash names the weights, the scalp mesh
    and every setting: two bundles with the same hash produce the same grooms.
    """
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    manifest["content_hash"] = manifest_hash(manifest)
    tmp = folder / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def default_manifest(name: str, kind: str) -> dict[str, Any]:
    """The DiffLocks inference settings (SPEC §0, §4, §8); callers replace the configs."""
    return {
        "format": FORMAT,
        "name": name,
        "kind": kind,
        "description": "",
        "license": "",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tressel_version": __version__,
        "source": {},
        "components": {},
        "scalp": {"mesh": "scalp.ply", "maps": "scalp_maps.safetensors", "uv_map_size": 512},
        "texture": {"size": 256, "channels": 65, "sigma_data": 0.3},
        "roots": {"density_floor": 0.02, "upsample_multiplier": 3},
        "sampler": {
            "steps": 100,
            "sigma_min": 0.01,
            "sigma_max": 160.0,
            "rho": 7.0,
            "guidance": 1.0,
            "guidance_interval": [0.0, 5.0],
            "solver": "dpmpp_2m_sde_heun",
        },
        "crop": {"size": 770},
    }


def write_bundle(
    folder: str | os.PathLike,
    manifest: dict[str, Any],
    state_dicts: dict[str, dict[str, torch.Tensor]],
    scalp_mesh: ScalpMesh,
    scalp_maps: dict[str, np.ndarray] | None = None,
) -> Bundle:
    """Write a complete bundle into `folder` (created if needed) and return it opened.

    `manifest` carries every config (see `default_manifest`); `state_dicts` maps each component
    in COMPONENTS to its weights with official key names. `scalp_maps` are the UV-space maps and
    TBN of `scalp_mesh` (computed here when not given, which takes a few seconds at 512).
    """
    import numpy as np
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file as save_torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = copy.deepcopy(manifest)
    missing = [c for c in COMPONENTS if c not in state_dicts]
    if missing:
        raise BundleError(f"cannot write bundle: no weights for {', '.join(missing)}")
    for component in COMPONENTS:
        entry = manifest["components"].setdefault(component, {})
        if "config" not in entry:
            raise BundleError(f"cannot write bundle: no config for {component}")
        entry["weights"] = f"{component}.safetensors"
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dicts[component].items()}
        _atomic(folder / entry["weights"], lambda p, t=tensors: save_torch(t, str(p)))

    if scalp_maps is None:
        scalp_maps = compute_scalp_maps(scalp_mesh, int(manifest["scalp"]["uv_map_size"]))
    arrays = {
        "vertices": np.ascontiguousarray(scalp_mesh.vertices, dtype=np.float32),
        "faces": np.ascontiguousarray(scalp_mesh.faces, dtype=np.int64),
        "uv": np.ascontiguousarray(scalp_mesh.uv, dtype=np.float32),
    }
    arrays.update({k: np.ascontiguousarray(v) for k, v in scalp_maps.items()})
    _atomic(folder / manifest["scalp"]["maps"], lambda p: save_numpy(arrays, str(p)))
    _atomic(folder / manifest["scalp"]["mesh"], lambda p: write_scalp_ply(scalp_mesh, p))

    rels = [manifest["components"][c]["weights"] for c in COMPONENTS]
    rels += [manifest["scalp"]["maps"], manifest["scalp"]["mesh"]]
    manifest["files"] = {
        rel: {"sha256": sha256_file(folder / rel), "bytes": (folder / rel).stat().st_size}
        for rel in rels
    }
    _write_manifest(folder, manifest)
    return Bundle.open(folder)


def compute_scalp_maps(mesh: ScalpMesh, uv_map_size: int) -> dict[str, np.ndarray]:
    """Per-vertex TBN and the UV-space closest-point maps the placement step reads (SPEC §9)."""
    from tressel.geometry.scalp import compute_scalp_maps as compute

    return compute(mesh, uv_map_size)


def write_scalp_ply(mesh: ScalpMesh, path: Path) -> None:
    """An ASCII PLY with `x y z s t` per vertex, the layout of the DiffLocks scalp."""
    import numpy as np

    verts = np.asarray(mesh.vertices, dtype=np.float32)
    uv = np.asarray(mesh.uv, dtype=np.float32)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    header = (
        "ply\nformat ascii 1.0\ncomment written by tressel\n"
        f"element vertex {len(verts)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float s\nproperty float t\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(header)
        # repr-exact float32 text so that reading the PLY back gives identical vertices
        np.savetxt(f, np.hstack([verts, uv]), fmt="%.9g")
        np.savetxt(f, np.hstack([np.full((len(faces), 1), 3), faces]), fmt="%d")


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _validate_manifest(manifest: Any, path: Path) -> None:
    where = path / MANIFEST

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise BundleError(f"{where}: {what}; the bundle is damaged or from another tool, "
                              "re-import or re-install it")

    need(isinstance(manifest, dict), "not a JSON object")
    need(manifest.get("format") == FORMAT,
         f"format is {manifest.get('format')!r}, this Tressel reads {FORMAT!r}")
    for key in ("name", "components", "scalp", "texture", "roots", "sampler", "crop",
                "files", "content_hash"):
        need(key in manifest, f"missing {key!r}")
    for component in COMPONENTS:
        entry = manifest["components"].get(component)
        need(isinstance(entry, dict) and "config" in entry and "weights" in entry,
             f"components.{component} needs 'config' and 'weights'")
    for rel in manifest["files"]:
        need(not Path(rel).is_absolute() and ".." not in Path(rel).parts,
             f"file name {rel!r} leaves the bundle folder")
