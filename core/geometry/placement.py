"""Place decoded strands on the scalp (SPEC §10): root snapping, TBN interpolation, TBN → world.

Roots come as (row, col) in [0, 1] of the UV maps (DiffLocks' `root_uv`, i.e. (1 - t, s)). Each
root snaps to the closest mesh point of its texel centre `floor(root_uv · S)`, exactly as the
released pipeline does, so extra roots are quantised to the S×S grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tressel.errors import BundleError


@dataclass
class PlacedStrands:
    """World-space strands and the per-root frame they were placed with (all numpy)."""

    strands_world: np.ndarray  # [N,P,3] float32, metres
    root_position: np.ndarray  # [N,3]
    root_tangent: np.ndarray  # [N,3] after re-orthogonalisation
    root_bitangent: np.ndarray  # [N,3]
    root_normal: np.ndarray  # [N,3]
    root_pixel: np.ndarray  # [N,2] int32 (row, col) in the UV maps
    root_face: np.ndarray  # [N] int32
    root_bary: np.ndarray  # [N,3] float32


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def root_frames(scalp: Mapping[str, np.ndarray], root_uv: np.ndarray,
                ) -> tuple[np.ndarray, ...]:
    """(pixel, face, bary, position, tangent, bitangent, normal) for roots [N,2] (row, col)."""
    for key in ("vertices", "faces", "vertex_tangents", "vertex_normals", "face_map",
                "bary_map"):
        if key not in scalp:
            raise BundleError(f"scalp data lacks {key!r}: rebuild the bundle's scalp maps "
                              "(tressel.geometry.scalp.compute_scalp_maps)")
    face_map = np.asarray(scalp["face_map"])
    size = face_map.shape[0]
    root_uv = np.asarray(root_uv, dtype=np.float32).reshape(-1, 2)
    # float32 × a power of two is exact, so this floor matches the reference's texel choice.
    pixel = np.clip(np.floor(root_uv * np.float32(size)), 0, size - 1).astype(np.int32)
    face = face_map[pixel[:, 0], pixel[:, 1]].astype(np.int32)
    bary = np.asarray(scalp["bary_map"])[pixel[:, 0], pixel[:, 1]].astype(np.float32)
    corner = np.asarray(scalp["faces"])[face]  # [N,3]
    w = bary.astype(np.float64)[:, :, None]

    def interpolate(values: np.ndarray) -> np.ndarray:
        return (w * np.asarray(values, dtype=np.float64)[corner]).sum(axis=1)

    position = interpolate(scalp["vertices"])
    tangent = _unit(interpolate(scalp["vertex_tangents"]))
    normal = _unit(interpolate(scalp["vertex_normals"]))
    bitangent = _unit(np.cross(normal, tangent))
    tangent = _unit(np.cross(bitangent, normal))
    return pixel, face, bary, position, tangent, bitangent, normal


def place_strands(scalp: Mapping[str, np.ndarray], root_uv: np.ndarray, strands_tbn: np.ndarray,
                  uv_map_size: int | None = None) -> PlacedStrands:
    """Map root-relative strands [N,P,3] (x → −tangent, y → normal, z → bitangent) to world.

    `scalp` holds the mesh arrays (`vertices`, `faces`) and `compute_scalp_maps` output.
    """
    if uv_map_size is not None and np.asarray(scalp["face_map"]).shape[0] != uv_map_size:
        raise BundleError(f"scalp maps are {np.asarray(scalp['face_map']).shape[0]} texels "
                          f"wide but the bundle says {uv_map_size}: rebuild the scalp maps")
    strands_tbn = np.asarray(strands_tbn, dtype=np.float32)
    if strands_tbn.ndim != 3 or strands_tbn.shape[-1] != 3 or len(strands_tbn) != len(root_uv):
        raise ValueError(f"strands_tbn must be [N,P,3] with N = {len(root_uv)} roots, got "
                         f"{list(strands_tbn.shape)}")
    pixel, face, bary, position, tangent, bitangent, normal = root_frames(scalp, root_uv)
    # Columns of the local→world matrix: x → −T, y → N, z → B (SPEC §10).
    frame = np.stack([-tangent, normal, bitangent], axis=1).astype(np.float32)  # [N,3(local),3]
    world = np.matmul(strands_tbn, frame)
    world += position.astype(np.float32)[:, None, :]
    return PlacedStrands(world, position.astype(np.float32), tangent.astype(np.float32),
                         bitangent.astype(np.float32), normal.astype(np.float32), pixel, face,
                         bary)
