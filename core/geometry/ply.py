"""Read a scalp mesh (vertices, faces and per-vertex s,t UVs) from an ascii or binary PLY file.

The DiffLocks scalp is a PLY whose vertices carry `x y z s t` (SPEC §9). This reader keeps the
file's vertex order and faces exactly as stored (no merging or reordering), so the raw s,t
arrays stay in step with the vertices. Polygons with more than three corners are split into
triangle fans.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tressel.errors import BundleError
from tressel.result import ScalpMesh

log = logging.getLogger(__name__)

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_UV_NAMES = (("s", "t"), ("u", "v"), ("texture_u", "texture_v"), ("texture_s", "texture_t"))
_FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass
class _Property:
    name: str
    dtype: str  # numpy type code without byte order
    count_dtype: str | None = None  # set for list properties


@dataclass
class _Element:
    name: str
    count: int
    properties: list[_Property]


def _fail(path: Path, what: str) -> BundleError:
    return BundleError(f"scalp mesh {path.name}: {what}. Export the scalp as a PLY with "
                       "per-vertex x y z s t and triangle faces")


def _parse_header(data: bytes, path: Path) -> tuple[str, list[_Element], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise _fail(path, "not a PLY file (no 'ply' magic or no end_header)")
    body_start = data.index(b"\n", end) + 1
    fmt = ""
    elements: list[_Element] = []
    for raw in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append(_Element(words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if words[1] == "list":
                if words[2] not in _TYPES or words[3] not in _TYPES:
                    raise _fail(path, f"unknown list property type in {raw.strip()!r}")
                elements[-1].properties.append(
                    _Property(words[4], _TYPES[words[3]], _TYPES[words[2]]))
            else:
                if words[1] not in _TYPES:
                    raise _fail(path, f"unknown property type in {raw.strip()!r}")
                elements[-1].properties.append(_Property(words[2], _TYPES[words[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise _fail(path, f"unsupported PLY format {fmt!r}")
    return fmt, elements, body_start


def _read_ascii(text: bytes, elements: list[_Element], path: Path) -> dict[str, dict]:
    try:
        tokens = np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise _fail(path, "non-numeric value in the ascii body") from None
    pos = 0
    out: dict[str, dict] = {}
    for element in elements:
        values, pos = _take_rows(tokens, pos, element, path)
        out[element.name] = values
    return out


def _take_rows(tokens: np.ndarray, pos: int, element: _Element, path: Path,
               ) -> tuple[dict, int]:
    """Split the flat ascii token stream into this element's per-property arrays."""
    props = element.properties
    n = element.count
    lists = [i for i, p in enumerate(props) if p.count_dtype]
    if not lists:
        width = len(props)
        block = tokens[pos:pos + n * width]
        if block.size != n * width:
            raise _fail(path, f"file ends inside element {element.name!r}")
        block = block.reshape(n, width)
        return {p.name: block[:, i] for i, p in enumerate(props)}, pos + n * width
    if len(lists) == 1 and n > 0:
        # Fast path: every row has the same list length (all triangles).
        k = lists[0]
        first = tokens[pos + k] if pos + k < tokens.size else -1
        width = len(props) + int(first)
        block = tokens[pos:pos + n * width]
        if first >= 0 and block.size == n * width and np.all(block.reshape(n, width)[:, k] == first):
            block = block.reshape(n, width)
            out = {}
            for i, p in enumerate(props):
                col = i if i < k else i + int(first)
                out[p.name] = block[:, k + 1:k + 1 + int(first)] if i == k else block[:, col]
            return out, pos + n * width
    rows: dict[str, list] = {p.name: [] for p in props}
    for _ in range(n):
        for p in props:
            if pos >= tokens.size:
                raise _fail(path, f"file ends inside element {element.name!r}")
            if p.count_dtype:
                m = int(tokens[pos])
                rows[p.name].append(tokens[pos + 1:pos + 1 + m])
                pos += 1 + m
            else:
                rows[p.name].append(tokens[pos])
                pos += 1
    return {name: (vals if props[i].count_dtype else np.array(vals))
            for i, (name, vals) in enumerate(rows.items())}, pos


def _read_binary(data: bytes, pos: int, elements: list[_Element], order: str, path: Path,
                 ) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for element in elements:
        props = element.properties
        n = element.count
        if not any(p.count_dtype for p in props):
            dtype = np.dtype([(p.name, order + p.dtype) for p in props])
            if pos + n * dtype.itemsize > len(data):
                raise _fail(path, f"file ends inside element {element.name!r}")
            rec = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
            out[element.name] = {p.name: rec[p.name] for p in props}
            pos += n * dtype.itemsize
            continue
        values, pos = _binary_list_rows(data, pos, element, order, path)
        out[element.name] = values
    return out


def _binary_list_rows(data: bytes, pos: int, element: _Element, order: str, path: Path,
                      ) -> tuple[dict, int]:
    props = element.properties
    n = element.count
    lists = [p for p in props if p.count_dtype]
    if len(lists) == 1 and n > 0:
        # Fast path: guess the list length from the first row and check every row.
        k = props.index(lists[0])
        head = np.dtype([(p.name, order + p.dtype) for p in props[:k]])
        count_dt = np.dtype(order + lists[0].count_dtype)
        if pos + head.itemsize + count_dt.itemsize <= len(data):
            m = int(np.frombuffer(data, count_dt, 1, pos + head.itemsize)[0])
            fields = [(p.name, order + p.dtype) for p in props[:k]]
            fields += [("__count", count_dt.str), (lists[0].name, order + lists[0].dtype, (m,))]
            fields += [(p.name, order + p.dtype) for p in props[k + 1:]]
            dtype = np.dtype(fields)
            if pos + n * dtype.itemsize <= len(data):
                rec = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
                if np.all(rec["__count"] == m):
                    return {p.name: rec[p.name] for p in props}, pos + n * dtype.itemsize
    rows: dict[str, list] = {p.name: [] for p in props}
    for _ in range(n):
        for p in props:
            if p.count_dtype:
                cdt = np.dtype(order + p.count_dtype)
                m = int(np.frombuffer(data, cdt, 1, pos)[0])
                pos += cdt.itemsize
                vdt = np.dtype(order + p.dtype)
                rows[p.name].append(np.frombuffer(data, vdt, m, pos))
                pos += m * vdt.itemsize
            else:
                vdt = np.dtype(order + p.dtype)
                if pos + vdt.itemsize > len(data):
                    raise _fail(path, f"file ends inside element {element.name!r}")
                rows[p.name].append(np.frombuffer(data, vdt, 1, pos)[0])
                pos += vdt.itemsize
    return {p.name: (rows[p.name] if p.count_dtype else np.array(rows[p.name]))
            for p in props}, pos


def _triangulate(polygons: list[np.ndarray] | np.ndarray, path: Path) -> np.ndarray:
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        if polygons.shape[1] == 3:
            return polygons.astype(np.int64)
        polygons = list(polygons)
    triangles = []
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.int64)
        if poly.size < 3:
            raise _fail(path, f"a face has {poly.size} corners")
        # Fan triangulation keeps the polygon's winding.
        for j in range(1, poly.size - 1):
            triangles.append((poly[0], poly[j], poly[j + 1]))
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def read_scalp_ply(path: str | Path) -> ScalpMesh:
    """The mesh of a PLY file with per-vertex s,t UVs, in file order (metres, Y up)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"scalp mesh {path}: cannot be read ({exc.strerror})") from None
    fmt, elements, body = _parse_header(data, path)
    if fmt == "ascii":
        values = _read_ascii(data[body:], elements, path)
    else:
        values = _read_binary(data, body, elements, "<" if fmt.endswith("little_endian") else ">",
                              path)
    vertex = values.get("vertex")
    face = values.get("face")
    if vertex is None or face is None:
        raise _fail(path, "needs a 'vertex' and a 'face' element")
    missing = [c for c in "xyz" if c not in vertex]
    if missing:
        raise _fail(path, f"vertices lack {', '.join(missing)}")
    uv_names = next((names for names in _UV_NAMES if all(n in vertex for n in names)), None)
    if uv_names is None:
        raise _fail(path, "vertices carry no s,t texture coordinates")
    list_name = next((n for n in _FACE_LISTS if n in face), None)
    if list_name is None:
        raise _fail(path, "faces have no vertex_indices list")
    vertices = np.stack([np.asarray(vertex[c], dtype=np.float32) for c in "xyz"], axis=1)
    uv = np.stack([np.asarray(vertex[c], dtype=np.float32) for c in uv_names], axis=1)
    faces = _triangulate(face[list_name], path)
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise _fail(path, f"a face refers to a vertex outside 0..{len(vertices) - 1}")
    if not np.all(np.isfinite(vertices)) or not np.all(np.isfinite(uv)):
        raise _fail(path, "non-finite vertex positions or UVs")
    log.debug("read %s: %d vertices, %d triangles", path.name, len(vertices), len(faces))
    return ScalpMesh(vertices=np.ascontiguousarray(vertices), faces=faces,
                     uv=np.ascontiguousarray(uv))
