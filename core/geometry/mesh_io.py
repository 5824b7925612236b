"""Read a character's head mesh from USD, OBJ or PLY as one triangle mesh in metres."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tressel.errors import ConfigError
from tressel.geometry.mesh import TriMesh

log = logging.getLogger(__name__)

MESH_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz", ".obj", ".ply")
UNIT_SCALE = {"m": 1.0, "cm": 0.01, "mm": 0.001}


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"head mesh {path}: {what}")


def _fan(counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Triangles [T,3] from polygons given as face sizes and a flat corner list (fans)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tris_per = np.maximum(counts - 2, 0)
    face = np.repeat(np.arange(len(counts)), tris_per)
    j = np.arange(tris_per.sum()) - np.repeat(np.cumsum(tris_per) - tris_per, tris_per) + 1
    first = starts[face]
    return np.stack([indices[first], indices[first + j], indices[first + j + 1]], axis=1)


def read_obj(path: Path) -> TriMesh:
    """Vertices (`v`) and faces (`f`, any `v/vt/vn` form, negative indices, polygons)."""
    vertices: list[list[float]] = []
    counts: list[int] = []
    corners: list[int] = []
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                vertices.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                items = [int(word.split("/")[0]) for word in line.split()[1:]]
                counts.append(len(items))
                corners += [i - 1 if i > 0 else len(vertices) + i for i in items]
    if not vertices or not counts:
        raise _fail(path, "no vertices or no faces ('v' and 'f' lines)")
    return TriMesh(np.array(vertices), _fan(np.array(counts), np.array(corners, np.int64)))


def read_ply(path: Path) -> TriMesh:
    """Vertices and faces of an ascii or binary PLY (no UVs needed)."""
    from tressel.geometry import ply

    data = path.read_bytes()
    fmt, elements, body = ply._parse_header(data, path)
    if fmt == "ascii":
        values = ply._read_ascii(data[body:], elements, path)
    else:
        order = "<" if fmt.endswith("little_endian") else ">"
        values = ply._read_binary(data, body, elements, order, path)
    vertex, face = values.get("vertex"), values.get("face")
    if vertex is None or face is None or not all(c in vertex for c in "xyz"):
        raise _fail(path, "needs a 'vertex' element with x y z and a 'face' element")
    name = next((n for n in ply._FACE_LISTS if n in face), None)
    if name is None:
        raise _fail(path, "faces have no vertex_indices list")
    vertices = np.stack([np.asarray(vertex[c], np.float64) for c in "xyz"], axis=1)
    return TriMesh(vertices, ply._triangulate(face[name], path))


def read_usd(path: Path, prim_path: str | None = None) -> TriMesh:
    """Every Mesh under `prim_path` (default: the whole stage) in world space, in metres."""
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise _fail(path, "USD cannot open it")
    root = stage.GetPrimAtPath(prim_path) if prim_path else stage.GetPseudoRoot()
    if not root:
        raise _fail(path, f"has no prim {prim_path}")
    to_metres = UsdGeom.GetStageMetersPerUnit(stage)
    cache = UsdGeom.XformCache()
    vertices, faces, offset = [], [], 0
    for prim in Usd.PrimRange(root):
        if not prim.IsA(UsdGeom.Mesh) or UsdGeom.Imageable(prim).ComputePurpose() == "guide":
            continue
        mesh = UsdGeom.Mesh(prim)
        points = np.array(mesh.GetPointsAttr().Get() or [], np.float64).reshape(-1, 3)
        counts = np.array(mesh.GetFaceVertexCountsAttr().Get() or [], np.int64)
        indices = np.array(mesh.GetFaceVertexIndicesAttr().Get() or [], np.int64)
        if len(points) == 0 or len(counts) == 0:
            continue
        matrix = np.array(cache.GetLocalToWorldTransform(prim), np.float64)  # row vectors
        world = points @ matrix[:3, :3] + matrix[3, :3]
        tris = _fan(counts, indices)
        if np.linalg.det(matrix[:3, :3]) < 0:  # a mirroring transform flips the winding
            tris = tris[:, [0, 2, 1]]
        if mesh.GetOrientationAttr().Get() == UsdGeom.Tokens.leftHanded:
            tris = tris[:, [0, 2, 1]]
        vertices.append(world)
        faces.append(tris + offset)
        offset += len(world)
    if not vertices:
        raise _fail(path, f"has no Mesh prim under {prim_path or '/'}")
    return TriMesh(np.concatenate(vertices) * to_metres, np.concatenate(faces))


def metres_per_unit(path: str | Path, units: str | None = None) -> float:
    """Metres per unit of a head file's coordinates (USD: its metersPerUnit)."""
    path = Path(path)
    if path.suffix.lower().startswith(".usd"):
        from pxr import Usd, UsdGeom

        stage = Usd.Stage.Open(str(path))
        if stage is None:
            raise _fail(path, "USD cannot open it")
        return float(UsdGeom.GetStageMetersPerUnit(stage))
    return UNIT_SCALE[units or "m"]


def read_mesh(path: str | Path, units: str | None = None, prim_path: str | None = None
              ) -> TriMesh:
    """A head mesh in metres. USD files carry their units (metersPerUnit); OBJ and PLY do
    not, so `units` (m, cm or mm) says what theirs are, metres by default."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise _fail(path, f"unknown format: use one of {', '.join(MESH_SUFFIXES)}")
    if not path.is_file():
        raise _fail(path, "does not exist")
    if units is not None and units not in UNIT_SCALE:
        raise ConfigError(f"units {units!r}: use m, cm or mm")
    if suffix.startswith(".usd"):
        mesh = read_usd(path, prim_path)
        if units is not None:
            log.info("%s carries its own units (metersPerUnit); --units ignored", path.name)
    else:
        mesh = read_obj(path) if suffix == ".obj" else read_ply(path)
        mesh = TriMesh(mesh.vertices * UNIT_SCALE[units or "m"], mesh.faces)
    if len(mesh.faces) == 0 or not np.isfinite(mesh.vertices).all():
        raise _fail(path, "no triangles, or non-finite vertex positions")
    if mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices):
        raise _fail(path, "a face refers to a vertex that does not exist")
    if mesh.extent > 5.0:
        log.warning("%s is %.1f m across: if its units are centimetres, pass units='cm'",
                    path.name, mesh.extent)
    return mesh
