"""`HairResult`: the contract between the pipeline, the USD writer, the daemon and the hosts.

Positions are float32 metres, Y up, in the scalp mesh's frame. `root_uv` is in the mesh's
(s, t) convention (what `primvars:st` carries); note that DiffLocks samples roots in
(row, col) = (1 - t, s) texture order internally (SPEC §10), and the pipeline converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# The rgb2material channels the pipeline reports by name (SPEC §11); the rest are untrained.
MATERIAL_CHANNELS = {
    "melanin": 3,
    "redness": 4,
    "root_darkness_start": 8,
    "root_darkness_end": 9,
    "root_darkness_strength": 10,
}


@dataclass
class HairMaterial:
    """Predicted hair material; every value lies in (0, 1)."""

    melanin: float
    redness: float
    root_darkness_start: float
    root_darkness_end: float
    root_darkness_strength: float
    raw: list[float] = field(default_factory=list)  # all 11 rgb2material outputs

    def with_melanin(self, melanin: float) -> HairMaterial:
        """This material with another melanin (the raw outputs follow)."""
        raw = list(self.raw)
        if len(raw) > MATERIAL_CHANNELS["melanin"]:
            raw[MATERIAL_CHANNELS["melanin"]] = float(melanin)
        return replace(self, melanin=float(melanin), raw=raw)

    @classmethod
    def from_raw(cls, raw: list[float]) -> HairMaterial:
        named = {name: float(raw[index]) for name, index in MATERIAL_CHANNELS.items()}
        return cls(**named, raw=[float(v) for v in raw])


@dataclass
class Provenance:
    """Where a groom came from: enough to reproduce it."""

    image_sha256: str = ""
    bundle_name: str = ""
    bundle_hash: str = ""
    seed: int = 0
    steps: int = 0
    guidance: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 5.0)
    crop_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in source pixels
    tressel_version: str = ""
    # What was done to the groom after the model, as "step:name" -> value (collision, fit,
    # guides); written as the groom prim's customData dictionary `tresselOperations`.
    operations: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class ScalpMesh:
    """A triangle mesh with per-vertex (s, t) UVs, metres, Y up."""

    vertices: np.ndarray  # [V,3] float32
    faces: np.ndarray  # [F,3] int64
    uv: np.ndarray  # [V,2] float32, (s, t) as stored; t not flipped


@dataclass
class HairResult:
    """One groom: strands plus everything needed to write and trace it."""

    positions: np.ndarray  # [N,V,3] float32, metres
    root_uv: np.ndarray  # [N,2] float32, (s, t)
    root_positions: np.ndarray  # [N,3] float32
    root_normals: np.ndarray  # [N,3] float32
    material: HairMaterial
    provenance: Provenance = field(default_factory=Provenance)
    scalp_mesh: ScalpMesh | None = None
    scalp_texture: np.ndarray | None = None  # [65,S,S] raw sampler output, for inspection
    density: np.ndarray | None = None  # [S,S] in [0,1]

    @property
    def num_strands(self) -> int:
        return int(self.positions.shape[0])

    @property
    def points_per_strand(self) -> int:
        return int(self.positions.shape[1])
