"""The resampler as it was before issue 19 (commit 710b063), kept as the baseline.

bench_usd_write.py times it against the current `tressel.usd.curves.resample_strands` in the
same run, and tests/test_usd_write_path.py checks that the current one gives the same bits.
Not used by Tressel itself. The B-spline helpers, which issue 19 did not change, come from
`tressel.usd.curves`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Unchanged by issue 19: shared with the current resampler rather than copied.
from tressel.usd.curves import _gather_points, bspline_basis, interpolating_bspline

CHUNK_STRANDS = 512
BASES = ("linear", "bspline")


@dataclass
class Resampled:
    """Curve points to write, and how far the written curve strays from the input strands."""

    points: np.ndarray  # [N,K,3] float32: polyline vertices (linear) or control points (bspline)
    max_deviation: float  # largest distance from an input point to the written curve, input units
    mean_deviation: float  # mean of the same distance over all input points


def _coordinates(strands: np.ndarray) -> list[np.ndarray]:
    """x, y and z of strands [n,V,3] as three contiguous [n,V] float32 arrays.

    Every later pass then runs over unit-stride data with no length-3 inner axis, which numpy
    does about twice as fast as the same arithmetic on [n,V,3].
    """
    return [np.ascontiguousarray(strands[..., axis], dtype=np.float32) for axis in range(3)]


def _arc_length_params(coords: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative arc length per point normalised to [0, 1] (float64), and length per strand.

    A strand of zero length gets evenly spaced parameters so that it resamples to its root.
    """
    n, count = coords[0].shape
    segment_length = np.zeros((n, count - 1), dtype=np.float32)
    scratch = np.empty_like(segment_length)
    for coord in coords:
        np.subtract(coord[:, 1:], coord[:, :-1], out=scratch)
        np.multiply(scratch, scratch, out=scratch)
        segment_length += scratch
    np.sqrt(segment_length, out=segment_length)
    params = np.zeros((n, count), dtype=np.float64)
    np.cumsum(segment_length, axis=1, dtype=np.float64, out=params[:, 1:])
    length = params[:, -1].copy()
    degenerate = length <= 0.0
    params /= np.where(degenerate, 1.0, length)[:, None]
    if degenerate.any():
        params[degenerate] = np.linspace(0.0, 1.0, count)
    params[:, -1] = 1.0  # exact end: the tip is kept, whatever the rounding
    return params, length


def arc_length_params(strands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative arc length per point of strands [N,V,3] normalised to [0, 1], and length."""
    return _arc_length_params(_coordinates(strands))


def _uniform_knots(params: np.ndarray, segment: np.ndarray,
                   coords: list[np.ndarray], knots: int) -> list[np.ndarray]:
    """x, y, z [n,knots] of the points at arc-length parameters j / (knots - 1) along each strand.

    `segment[r, i]` is floor(params[r, i] * (knots - 1)): the knot interval that input point
    i falls in. Counting, per strand, the points below each knot (one bincount for all
    strands) gives the input interval around every knot without a search. Gathers use flat
    indices, which numpy does far faster than take_along_axis.
    """
    n, count = params.shape
    rows = np.arange(n)[:, None]
    below = np.bincount((rows * knots + segment).ravel(), minlength=n * knots)
    below = np.cumsum(below.reshape(n, knots), axis=1)
    # First input point at or past knot j: the count of points in intervals before j.
    upper = np.empty((n, knots), dtype=np.int64)
    upper[:, 0] = 1
    upper[:, 1:] = below[:, :-1]
    upper = np.clip(upper, 1, count - 1) + rows * count
    lower = upper - 1
    flat_params = params.ravel()
    p0 = flat_params[lower]
    span = flat_params[upper] - p0
    targets = np.linspace(0.0, 1.0, knots)[None, :]
    weight = np.clip((targets - p0) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    weight = weight.astype(np.float32)
    knot_coords = []
    for coord in coords:
        flat = coord.ravel()
        start, end = flat[lower], flat[upper]
        end -= start
        end *= weight
        start += end
        knot_coords.append(start)
    return knot_coords


def _segment_distance(coords: list[np.ndarray], knot_coords: list[np.ndarray],
                      segment: np.ndarray) -> np.ndarray:
    """Distance [n,V] from each input point p to its written polyline segment a-b.

    `segment[r, i]` is the index of the knot that starts the segment covering input point i.
    """
    n, knots = knot_coords[0].shape
    flat_index = segment + (np.arange(n) * knots)[:, None]
    ab, pa = [], []
    for coord, knot in zip(coords, knot_coords, strict=True):
        flat = knot.ravel()
        a = flat[flat_index]
        b = flat[flat_index + 1]
        b -= a
        a -= coord  # a - p
        ab.append(b)
        pa.append(a)
    denom = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]
    along = ab[0] * pa[0]
    along += ab[1] * pa[1]
    along += ab[2] * pa[2]
    np.negative(along, out=along)  # (p - a) . (b - a)
    along /= np.where(denom > 0, denom, 1.0)
    np.clip(along, 0.0, 1.0, out=along)
    distance = np.zeros_like(along)
    for b, a in zip(ab, pa, strict=True):
        b *= along
        b += a  # (a - p) + t (b - a): from p to its nearest point on the segment
        b *= b
        distance += b
    return np.sqrt(distance, out=distance)


def resample_strands(strands: np.ndarray, points: int, basis: str = "linear",
                     deviation: bool = True) -> Resampled:
    """Resample strands [N,V,3] to `points` per strand, uniformly in arc length.

    `linear` writes a polyline of `points` vertices. `bspline` writes `points` control points
    of a uniform cubic B-spline that interpolates `points - 2` arc-length-uniform knots,
    including the root and the tip. The deviation is measured from every input point to the
    written curve: to the polyline segment covering the same arc length (linear), or to the
    spline point at the same parameter (bspline); both bound the distance to the curve.
    When there are as many knots as input points, the input points are the knots, unchanged.
    `deviation=False` skips measuring it (linear only; the report's deviations are then 0).
    """
    if basis not in BASES:
        raise ValueError(f"unknown curve basis {basis!r}: use one of {', '.join(BASES)}")
    n, count, _ = strands.shape
    knots_per_strand = points if basis == "linear" else points - 2
    if knots_per_strand < 2:
        raise ValueError(
            f"{points} points per strand is too few for {basis} curves: use at least "
            f"{2 if basis == 'linear' else 4}"
        )
    if knots_per_strand == count and basis == "linear":
        # Nothing to decimate: the input points are the polyline, exactly.
        return Resampled(points=np.ascontiguousarray(strands, dtype=np.float32),
                         max_deviation=0.0, mean_deviation=0.0)
    out = np.empty((n, points, 3), dtype=np.float32)
    worst = 0.0
    total = 0.0
    for start in range(0, n, CHUNK_STRANDS):
        chunk = strands[start : start + CHUNK_STRANDS]
        coords = _coordinates(chunk)
        if knots_per_strand == count:
            # A B-spline through every input point: each point is its own knot.
            knot_coords = coords
            params = np.broadcast_to(np.linspace(0.0, 1.0, count), chunk.shape[:2])
        else:
            params, _ = _arc_length_params(coords)
        # Which written segment covers each input point, and where in it.
        position = params * (knots_per_strand - 1)
        segment = position.astype(np.int64)
        if knots_per_strand != count:
            knot_coords = _uniform_knots(params, segment, coords, knots_per_strand)
        np.minimum(segment, knots_per_strand - 2, out=segment)
        if basis == "linear":
            out[start : start + len(chunk)] = np.stack(knot_coords, axis=-1)
            if not deviation:
                continue
            distance = _segment_distance(coords, knot_coords, segment)
        else:
            control = interpolating_bspline(np.stack(knot_coords, axis=-1))
            weights = bspline_basis(position - segment).astype(np.float32)  # [n,V,4]
            curve = -np.ascontiguousarray(chunk, dtype=np.float32)
            for k in range(4):
                curve += weights[..., k : k + 1] * _gather_points(control, segment + k)
            distance = np.sqrt(np.einsum("...i,...i->...", curve, curve))
            out[start : start + len(chunk)] = control
        worst = max(worst, float(distance.max()))
        total += float(distance.sum(dtype=np.float64))
    return Resampled(points=out, max_deviation=worst, mean_deviation=total / max(n * count, 1))
