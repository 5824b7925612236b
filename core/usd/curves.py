"""Strand geometry for USD curves: arc-length resampling, B-spline fitting, guides and widths.

Everything here is vectorised over strands (a loop may run over points per strand, never over
strands) and works in chunks so that 100,000 strands of 256 points stay within a few hundred
megabytes of temporaries. Linear resampling also exists as one compiled loop
(`resample_kernel`), used once a long-running process has loaded it (`load_compiled_kernel`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Strands per chunk: 512 strands x 256 points is a 0.5 MB float32 temporary per coordinate,
# so the many passes of resampling run in the processor's cache.
CHUNK_STRANDS = 512
# Resampling threads at most: each holds about 10 MB of chunk buffers (512 strands of 256 points),
# so their memory stays under 100 MB whatever the machine.
MAX_THREADS = 8
# Elements per torch call: below torch's grain size, so it runs on the calling thread.
TORCH_BLOCK = 16384
# Distinct strand widths along the taper (see `tapered_widths`).
WIDTH_LEVELS = 16

BASES = ("linear", "bspline")

# The compiled linear resampling loop (`tressel.usd.resample_kernel.linear_chunk`) once
# `load_compiled_kernel` has loaded it, False when loading failed; None before.
_kernel = None
_kernel_lock = threading.Lock()
_kernel_requested = False  # `load_compiled_kernel_in_background` has started its thread


def load_compiled_kernel() -> bool:
    """Load the compiled resampling loop, so that linear resampling from here on runs in it
    (same points, about 2.5x faster); True when it is in use.

    Loading costs about half a second per process (1.5 s the first time on a machine, to
    compile): more than it saves on one groom of a few thousand strands, so a one-shot
    `tressel generate` stays on numpy, while the daemon and `tressel batch` load it in the
    background once their first groom is written (`load_compiled_kernel_in_background`).
    Failing to load (numba missing or broken) is logged once and leaves numpy in use.
    """
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            start = time.perf_counter()
            try:
                from tressel.usd.resample_kernel import linear_chunk, warm_up

                warm_up()
                _kernel = linear_chunk
                log.info("resampling: compiled loop loaded in %.2f s",
                         time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001  (any failure: numpy does the same work)
                log.warning("the compiled resampling loop is unavailable (%s: %s); resampling "
                            "with numpy", type(exc).__name__, exc)
                _kernel = False
    return bool(_kernel)


def load_compiled_kernel_in_background() -> threading.Thread | None:
    """`load_compiled_kernel` on a daemon thread, the first time it is called in a process
    (later calls return None); resampling uses numpy until it is done.

    Long-running processes call it after their first groom: at start it would compete with
    the imports for the interpreter (a daemon answered 0.5-1 s later), and the first groom
    would not wait for it anyway.
    """
    global _kernel_requested
    with _kernel_lock:
        if _kernel_requested:
            return None
        _kernel_requested = True
    thread = threading.Thread(target=load_compiled_kernel, name="tressel-resample-kernel",
                              daemon=True)
    thread.start()
    return thread


def _loaded_kernel():
    """The compiled loop if loaded, else None (never loads it)."""
    return _kernel or None


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


def _cumsum_rows(values: np.ndarray, out: np.ndarray) -> None:
    """Running sums along each row of float32 `values` [n,V], in float64, into `out`.

    numpy's accumulate costs about 5 ns per element here; torch's CPU cumsum adds the same
    float64 numbers in the same order (sequentially along the row), so it gives the same bits
    in a fifth of the time. torch is used only when the process has imported it already (the
    daemon and the pipeline have): importing it just for this would cost more than it saves.
    """
    torch = sys.modules.get("torch")
    if torch is None or not (out.flags.c_contiguous and values.flags.c_contiguous):
        np.cumsum(values, axis=1, dtype=np.float64, out=out)
        return
    source, target = torch.from_numpy(values), torch.from_numpy(out)
    # Blocks under torch's parallel grain (32,768 elements) run on the calling thread: the
    # chunks are parallel already, and torch's own threads, spread over a busy machine, made
    # single calls up to 20x slower here.
    rows = max(1, TORCH_BLOCK // values.shape[1])
    for start in range(0, len(values), rows):
        torch.cumsum(source[start : start + rows], 1, dtype=torch.float64,
                     out=target[start : start + rows])


class _Workspace:
    """Buffers for one chunk of strands, allocated once per call and reused by every chunk.

    Fresh temporaries of a few hundred kilobytes each cost page faults on every chunk; reusing
    them keeps the passes in cache. Slicing the leading axis keeps them contiguous for the last,
    shorter chunk.
    """

    def __init__(self, rows: int, count: int, knots: int) -> None:
        self.coords = np.empty((3, rows, count), np.float32)
        self.lengths = np.zeros((rows, count), np.float32)  # column 0 is 0: params start at 0
        self.scratch = np.empty((rows, count), np.float32)
        self.params = np.empty((rows, count), np.float64)
        self.length = np.empty(rows, np.float64)
        self.position = np.empty((rows, count), np.float64)
        self.segment = np.empty((rows, count), np.int64)
        self.rows = np.arange(rows, dtype=np.int64)[:, None]
        self.row_offset = self.rows * knots
        self.gathered = np.empty((6, rows, count), np.float32)
        self.along = np.empty((rows, count), np.float32)
        self.tmp = np.empty((rows, count), np.float32)


def _chunk_params(chunk: np.ndarray, work: _Workspace) -> tuple[list[np.ndarray], np.ndarray]:
    """Contiguous coordinates [3][n,V] and arc-length parameters [n,V] in [0, 1] of a chunk.

    Segment lengths in float32 from per-coordinate differences, summed along the strand in
    float64; a strand of zero length gets evenly spaced parameters, so that it resamples to its
    root. (The same arithmetic, in the same order, as before issue 19: the same bits.)
    """
    n, count, _ = chunk.shape
    coords = work.coords[:, :n]
    np.copyto(coords, chunk.transpose(2, 0, 1), casting="same_kind")
    lengths = work.lengths[:n]
    # Differences of consecutive points over the whole chunk as one flat array (contiguous,
    # about three times faster than row by row); the difference across each row boundary
    # lands in a row's column 0, which is set back to 0 below.
    segment_length = lengths.ravel()[1:]
    scratch = work.scratch.ravel()[: n * count - 1]
    x = coords[0].ravel()
    np.subtract(x[1:], x[:-1], out=segment_length)
    np.multiply(segment_length, segment_length, out=segment_length)
    for coord in coords[1:]:
        flat = coord.ravel()
        np.subtract(flat[1:], flat[:-1], out=scratch)
        np.multiply(scratch, scratch, out=scratch)
        np.add(segment_length, scratch, out=segment_length)
    np.sqrt(segment_length, out=segment_length)
    lengths[:, 0] = 0.0
    params = work.params[:n]
    _cumsum_rows(lengths, params)  # 0 + first length is exact: the same sums as before
    length = work.length[:n]
    length[:] = params[:, -1]
    degenerate = length <= 0.0
    params /= np.where(degenerate, 1.0, length)[:, None]
    if degenerate.any():
        params[degenerate] = np.linspace(0.0, 1.0, count)
    params[:, -1] = 1.0  # exact end: the tip is kept, whatever the rounding
    return list(coords), params


def arc_length_params(strands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative arc length per point of strands [N,V,3] normalised to [0, 1] (float64), and
    length per strand. A strand of zero length gets evenly spaced parameters."""
    n, count, _ = strands.shape
    work = _Workspace(n, count, 2)
    _, params = _chunk_params(strands, work)
    return params, work.length[:n].copy()


def _knot_segments(params: np.ndarray, knots: int, work: _Workspace) -> np.ndarray:
    """Flat knot-interval index [n,V] of every input point: row * knots + floor(p * (knots-1))."""
    n = len(params)
    position = work.position[:n]
    np.multiply(params, knots - 1, out=position)
    segment = work.segment[:n]
    with np.errstate(invalid="ignore"):  # NaN points: `_uniform_knots` says so, clearly
        np.copyto(segment, position, casting="unsafe")  # truncation, as astype(int64)
    segment += work.rows[:n] * knots
    return segment


def _uniform_knots(params: np.ndarray, flat_segment: np.ndarray,
                   coords: list[np.ndarray], knots: int) -> list[np.ndarray]:
    """x, y, z [n,knots] of the points at arc-length parameters j / (knots - 1) along each strand.

    `flat_segment[r, i]` is r * knots + floor(params[r, i] * (knots - 1)): the knot interval
    that input point i falls in. Counting, per strand, the points below each knot (one bincount
    for all strands) gives the input interval around every knot without a search. Gathers use
    flat indices, which numpy does far faster than take_along_axis.
    """
    n, count = params.shape
    rows = np.arange(n)[:, None]
    try:
        below = np.bincount(flat_segment.ravel(), minlength=n * knots)
    except ValueError:  # a NaN or infinite point made a negative interval
        raise ValueError("strand points must be finite numbers") from None
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
                      flat_segment: np.ndarray, work: _Workspace) -> np.ndarray:
    """Distance [n,V] from each input point p to its written polyline segment a-b.

    `flat_segment[r, i]` is r * knots + the index of the knot that starts the segment covering
    input point i. Per segment, a, b - a and |b - a|^2 are computed once ([n,knots], small);
    each input point then gathers them (mode="wrap": the indices are in range, and numpy's
    default mode copies through a buffer to check them). The arithmetic is the one the earlier per-point code
    did, written for p - a instead of a - p (an exact negation), so the distances are the
    same bits.
    """
    n = len(knot_coords[0])
    ab = []
    for knot in knot_coords:
        diff = np.zeros_like(knot)  # the last column is never gathered
        np.subtract(knot[:, 1:], knot[:, :-1], out=diff[:, :-1])
        ab.append(diff)
    denom = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]
    denom = np.where(denom > 0, denom, np.float32(1.0)).astype(np.float32)
    index = flat_segment.ravel()
    gathered = work.gathered[:, :n]
    along = work.along[:n]
    q = gathered[:3]
    d = gathered[3:]
    for axis in range(3):
        np.take(knot_coords[axis].ravel(), index, out=q[axis].ravel(), mode="wrap")
        np.subtract(coords[axis], q[axis], out=q[axis])  # p - a
        np.take(ab[axis].ravel(), index, out=d[axis].ravel(), mode="wrap")
    tmp = work.tmp[:n]
    np.multiply(d[0], q[0], out=along)
    for axis in (1, 2):
        np.multiply(d[axis], q[axis], out=tmp)
        along += tmp
    np.take(denom.ravel(), index, out=tmp.ravel(), mode="wrap")
    along /= tmp
    np.clip(along, 0.0, 1.0, out=along)
    for axis in range(3):
        d[axis] *= along
        np.subtract(q[axis], d[axis], out=d[axis])  # the negated residual: same square
        np.multiply(d[axis], d[axis], out=d[axis])
    distance = d[0] + d[1]
    distance += d[2]
    return np.sqrt(distance, out=distance)


def _gather_points(points: np.ndarray, index: np.ndarray) -> np.ndarray:
    """points[r, index[r, i]] for points [n,K,3] and index [n,V], by flat indexing."""
    n, count, _ = points.shape
    flat = index + (np.arange(n) * count)[:, None]
    return np.take(points.reshape(-1, 3), flat, axis=0)


def bspline_basis(t: np.ndarray) -> np.ndarray:
    """Uniform cubic B-spline weights [..., 4] for local parameters t in [0, 1]."""
    t2, t3 = t * t, t * t * t
    return np.stack(
        [(1 - t) ** 3, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3], axis=-1
    ) / 6.0


def interpolating_bspline(knots: np.ndarray) -> np.ndarray:
    """Control points [n,M+2,3] of uniform cubic B-splines through `knots` [n,M,3].

    The spline passes through knot j at the start of segment j, so its ends are the root and
    the tip. End conditions C0 = 2 C1 - C2 (and mirrored) make C1 the root and C[M] the tip;
    the interior solves the constant tridiagonal system C[j] + 4 C[j+1] + C[j+2] = 6 D[j]
    by the Thomas algorithm, looping over points and vectorised over strands.
    """
    n, m, _ = knots.shape
    if m < 2:
        raise ValueError("a B-spline needs at least 2 knots per strand")
    control = np.empty((n, m + 2, 3), dtype=np.float64)
    control[:, 1] = knots[:, 0]
    control[:, m] = knots[:, m - 1]
    unknowns = m - 2  # C[2] .. C[m-1]
    if unknowns > 0:
        rhs = 6.0 * knots[:, 1 : m - 1].astype(np.float64)
        rhs[:, 0] -= knots[:, 0]
        rhs[:, -1] -= knots[:, m - 1]
        # Forward sweep with diagonal 4 and off-diagonals 1: the modified upper coefficients
        # are the same for every strand.
        upper = np.empty(unknowns)
        upper[0] = 1.0 / 4.0
        rhs[:, 0] /= 4.0
        for i in range(1, unknowns):
            denom = 4.0 - upper[i - 1]
            upper[i] = 1.0 / denom
            rhs[:, i] = (rhs[:, i] - rhs[:, i - 1]) / denom
        for i in range(unknowns - 2, -1, -1):
            rhs[:, i] -= upper[i] * rhs[:, i + 1]
        control[:, 2:m] = rhs
    control[:, 0] = 2.0 * control[:, 1] - control[:, 2]
    control[:, m + 1] = 2.0 * control[:, m] - control[:, m - 1]
    return control


def evaluate_bspline_knots(control: np.ndarray) -> np.ndarray:
    """Points where the segments of uniform cubic B-splines [n,K,3] meet: [n,K-2,3]."""
    return (control[:, :-2] + 4.0 * control[:, 1:-1] + control[:, 2:]) / 6.0


def resample_strands(strands: np.ndarray, points: int, basis: str = "linear",
                     deviation: bool = True, out: np.ndarray | None = None,
                     threads: int | None = None) -> Resampled:
    """Resample strands [N,V,3] to `points` per strand, uniformly in arc length.

    `linear` writes a polyline of `points` vertices. `bspline` writes `points` control points
    of a uniform cubic B-spline that interpolates `points - 2` arc-length-uniform knots,
    including the root and the tip. The deviation is measured from every input point to the
    written curve: to the polyline segment covering the same arc length (linear), or to the
    spline point at the same parameter (bspline); both bound the distance to the curve.
    When there are as many knots as input points, the input points are the knots, unchanged.
    `deviation=False` skips measuring it (linear only; the report's deviations are then 0).
    `out` ([N,points,3] float32, C-contiguous) receives the points instead of a new array: the
    writer passes the buffer of the USD array itself, so the points are written once.
    Chunks of strands run on `threads` threads (default `compute_threads()`); the result does
    not depend on the count. Linear resampling runs in the compiled loop once
    `load_compiled_kernel` has loaded it (the same points and maximum deviation, bit for bit).
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
    if out is not None and (out.shape != (n, points, 3) or out.dtype != np.float32
                            or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n, points, 3)}")
    if knots_per_strand == count and basis == "linear":
        # Nothing to decimate: the input points are the polyline, exactly.
        if out is None:
            return Resampled(points=np.ascontiguousarray(strands, dtype=np.float32),
                             max_deviation=0.0, mean_deviation=0.0)
        np.copyto(out, strands, casting="same_kind")
        return Resampled(points=out, max_deviation=0.0, mean_deviation=0.0)
    if out is None:
        out = np.empty((n, points, 3), dtype=np.float32)
    kernel = _loaded_kernel() if basis == "linear" else None
    if kernel is not None:
        even_params = np.linspace(0.0, 1.0, count)
        targets = np.linspace(0.0, 1.0, knots_per_strand)
    local = threading.local()

    def one_chunk(start: int) -> tuple[float, float]:
        """Resample strands[start : start + CHUNK_STRANDS] into `out`; (worst, total) distance."""
        if kernel is not None:
            chunk = np.ascontiguousarray(strands[start : start + CHUNK_STRANDS], np.float32)
            worst, total = kernel(chunk, knots_per_strand, even_params, targets,
                                  out[start : start + len(chunk)], deviation)
            return float(worst), float(total)
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = _Workspace(min(CHUNK_STRANDS, n), count, knots_per_strand)
        chunk = strands[start : start + CHUNK_STRANDS]
        rows = len(chunk)
        row_offset = work.row_offset[:rows]
        if knots_per_strand == count:
            # A B-spline through every input point: each point is its own knot.
            coords = knot_coords = _coordinates(chunk)
            params = np.broadcast_to(np.linspace(0.0, 1.0, count), chunk.shape[:2])
            flat_segment = (params * (knots_per_strand - 1)).astype(np.int64) + row_offset
        else:
            coords, params = _chunk_params(chunk, work)
            # Which written segment covers each input point.
            flat_segment = _knot_segments(params, knots_per_strand, work)
            knot_coords = _uniform_knots(params, flat_segment, coords, knots_per_strand)
        # The last knot starts no segment: points at the tip belong to the one before it.
        np.minimum(flat_segment, row_offset + (knots_per_strand - 2), out=flat_segment)
        if basis == "linear":
            for axis, knot in enumerate(knot_coords):
                out[start : start + rows, :, axis] = knot
            if not deviation:
                return 0.0, 0.0
            distance = _segment_distance(coords, knot_coords, flat_segment, work)
        else:
            segment = flat_segment - row_offset
            position = params * (knots_per_strand - 1)  # where in its segment each point is
            control = interpolating_bspline(np.stack(knot_coords, axis=-1))
            weights = bspline_basis(position - segment).astype(np.float32)  # [n,V,4]
            curve = -np.ascontiguousarray(chunk, dtype=np.float32)
            for k in range(4):
                curve += weights[..., k : k + 1] * _gather_points(control, segment + k)
            distance = np.sqrt(np.einsum("...i,...i->...", curve, curve))
            out[start : start + rows] = control
        return float(distance.max()), float(distance.sum(dtype=np.float64))

    results = _run_chunks(one_chunk, range(0, n, CHUNK_STRANDS), threads)
    # Summed in chunk order whatever the threads: the mean does not depend on them.
    worst = max((worst for worst, _ in results), default=0.0)
    total = sum(total for _, total in results)
    return Resampled(points=out, max_deviation=worst, mean_deviation=total / max(n * count, 1))


def resample_many(strands: np.ndarray, counts: tuple[int, ...],
                  threads: int | None = None) -> list[np.ndarray]:
    """Linear resamplings of strands [N,V,3] to each of `counts` points, without deviations.

    The same points, bit for bit, as `resample_strands(strands, c, deviation=False).points`
    for each c, from one arc-length pass (with numpy; the compiled loop, when loaded, redoes
    that pass per count): guides need strands at 8 and 16 points, and that pass is half the
    cost of each.
    """
    n, count, _ = strands.shape
    if any(c < 2 for c in counts):
        raise ValueError(f"resampling needs at least 2 points per strand, got {counts}")
    outs = [np.empty((n, c, 3), dtype=np.float32) for c in counts]
    kernel = _loaded_kernel()
    if kernel is not None:
        even_params = np.linspace(0.0, 1.0, count)
        targets = [np.linspace(0.0, 1.0, knots) for knots in counts]
    local = threading.local()

    def one_chunk(start: int) -> None:
        if kernel is not None:
            chunk = np.ascontiguousarray(strands[start : start + CHUNK_STRANDS], np.float32)
            for knots, out, knot_targets in zip(counts, outs, targets, strict=True):
                if knots == count:
                    out[start : start + len(chunk)] = chunk
                else:
                    kernel(chunk, knots, even_params, knot_targets,
                           out[start : start + len(chunk)], False)
            return
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = _Workspace(min(CHUNK_STRANDS, n), count, max(counts))
        chunk = strands[start : start + CHUNK_STRANDS]
        rows = len(chunk)
        coords, params = _chunk_params(chunk, work)
        for knots, out in zip(counts, outs, strict=True):
            if knots == count:
                out[start : start + rows] = chunk
                continue
            flat_segment = _knot_segments(params, knots, work)
            for axis, knot in enumerate(_uniform_knots(params, flat_segment, coords, knots)):
                out[start : start + rows, :, axis] = knot

    _run_chunks(one_chunk, range(0, n, CHUNK_STRANDS), threads)
    return outs


def _run_chunks(fn, starts: range, threads: int | None) -> list:
    """fn(start) for every chunk start, in order, on up to `threads` threads."""
    workers = min(compute_threads() if threads is None else max(1, threads), len(starts))
    if workers > 1:
        # numpy and torch release the GIL in every pass here, so chunks run in parallel.
        with ThreadPoolExecutor(workers, thread_name_prefix="resample") as pool:
            return list(pool.map(fn, starts))
    return [fn(start) for start in starts]


def compute_threads() -> int:
    """Threads for the vectorised passes here: the process's CPU share, capped by what the
    process allows its math libraries (torch's thread count when torch is loaded, which the
    daemon's thread policy sets; else OMP_NUM_THREADS when set), at most MAX_THREADS."""
    torch = sys.modules.get("torch")
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if torch is not None:
        threads = torch.get_num_threads()
    elif limit.isdigit() and int(limit) > 0:
        threads = int(limit)
    else:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            threads = os.cpu_count() or 1
    return max(1, min(threads, MAX_THREADS))


def width_factors(strand_ids: np.ndarray, variation: float) -> np.ndarray:
    """Per-strand width factors [N] float32 in [1 - variation, 1 + variation].

    Each factor is a fixed function of the strand's id (the splitmix64 finaliser, a public
    integer hash), so a strand is as thick in the preview, the guides, the Alembic file and
    the next run as in the full layer, whatever the thread count or strand order.
    """
    ids = np.asarray(strand_ids).astype(np.uint64)
    if variation == 0 or len(ids) == 0:
        return np.ones(len(ids), dtype=np.float32)
    with np.errstate(over="ignore"):  # the hash wraps around 2^64 by design
        z = ids + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    unit = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # [0, 1)
    return (1.0 + variation * (2.0 * unit - 1.0)).astype(np.float32)


def strand_widths(taper: np.ndarray, factors: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex widths [N, P]: each strand's factor times the taper [P] (float32)."""
    return np.multiply(np.asarray(factors, np.float32)[:, None],
                       np.asarray(taper, np.float32)[None, :], out=out)


def tapered_widths(points: int, root_width: float, tip_width: float) -> np.ndarray:
    """Per-point widths [points] from root to tip, narrowing slowly near the root and faster
    towards the tip (1 - t^2), as real hair thins mostly near its end.

    The taper takes at most `WIDTH_LEVELS` distinct values (root and tip exact, every other
    width within (root - tip) / (2 (WIDTH_LEVELS - 1)) of the smooth taper: 2.6 um for the
    default widths). USD's crate writer stores a repeating width pattern as a lookup table,
    and its encoder searches that table linearly for every value: 256 distinct widths made
    saving 100,000 strands x 256 points take seconds; 16 take a tenth of that.
    """
    t = np.linspace(0.0, 1.0, points)
    taper = 1.0 - t**2
    if points > WIDTH_LEVELS:
        taper = np.rint(taper * (WIDTH_LEVELS - 1)) / (WIDTH_LEVELS - 1)
    return (tip_width + (root_width - tip_width) * taper).astype(np.float32)


def spread_guides(root_positions: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` strands whose roots spread evenly over the scalp, sorted.

    Farthest-point sampling on root positions: each new guide is the root farthest from all
    guides chosen so far. It starts from the root nearest the centroid, so the choice is
    deterministic. The loop runs over guides (a few thousand), vectorised over strands.
    """
    n = len(root_positions)
    if count >= n:
        return np.arange(n)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    # Separate contiguous coordinates and reused buffers: each step is a few passes over
    # float32 vectors, which keeps 2,000 guides from 100,000 roots well under a second.
    x, y, z = (np.ascontiguousarray(root_positions[:, axis], dtype=np.float32) for axis in range(3))
    nearest = np.empty(n, dtype=np.float32)
    delta = np.empty(n, dtype=np.float32)
    square = np.empty(n, dtype=np.float32)

    def squared_distance(i: int, out: np.ndarray) -> np.ndarray:
        np.subtract(x, x[i], out=out)
        np.multiply(out, out, out=out)
        for coord in (y, z):
            np.subtract(coord, coord[i], out=delta)
            np.multiply(delta, delta, out=square)
            out += square
        return out

    chosen = np.empty(count, dtype=np.int64)
    centroid = np.array([x.mean(), y.mean(), z.mean()], dtype=np.float32)
    chosen[0] = int(np.argmin(((root_positions - centroid) ** 2).sum(axis=1)))
    squared_distance(chosen[0], nearest)
    scratch = np.empty(n, dtype=np.float32)
    for i in range(1, count):
        chosen[i] = int(np.argmax(nearest))
        np.minimum(nearest, squared_distance(chosen[i], scratch), out=nearest)
    return np.sort(chosen)


def preview_subset(num_strands: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random subset of strands.

    Random rather than evenly spread, so the preview keeps the groom's density: thin areas
    stay thin.
    """
    keep = max(1, min(num_strands, round(num_strands * fraction)))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_strands, size=keep, replace=False))
