"""The linear arc-length resampling of `tressel.usd.curves` as one compiled loop (numba).

numpy runs the resampling as some forty passes over every input point (segment lengths, a
running sum, knot intervals, the deviation's gathers and products), each through memory; this
loop makes one pass per strand with everything in registers: about 2.5 times faster on the
100,000-strand benchmark. It does the same float32 and float64 operations in the same order as
the numpy code in `curves.py`, so the points and the maximum deviation are the same bits; the
mean deviation is summed strand by strand instead of numpy's pairwise order (last-bit
differences). `tests/test_usd_write_path.py` holds the two to that.

Compiling takes about a second and a half the first time; numba caches the machine code beside
this file (or in the user's cache folder when that is read-only), after which loading it takes
about half a second per process. That is why `curves.load_compiled_kernel` loads it only where
it pays: in the daemon and `tressel batch`, in the background after their first groom.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _clip_low(a, low):
    """numpy's clip, in its scalar form: NaN stays NaN, else the larger of the two, compared
    the way numpy compares them (which matters for zeros of either sign)."""
    if np.isnan(a):
        return a
    return a if a > low else low  # noqa: FURB136


@numba.njit(inline="always")
def _clip_high(a, high):
    if np.isnan(a):
        return a
    return a if a < high else high  # noqa: FURB136


@numba.njit(nogil=True, cache=True)
def linear_chunk(chunk, knots, even_params, targets, out, measure):  # pragma: no cover
    """Resample strands `chunk` [n,V,3] float32 to `knots` points each, into `out` [n,knots,3].

    `even_params` is linspace(0, 1, V) (a zero-length strand's parameters), `targets`
    linspace(0, 1, knots). With `measure`, returns (largest, sum) of the distances from every
    input point to the written segment covering it, else (0, 0). Releases the GIL.
    (Compiled: coverage cannot see inside; the tests compare it with the numpy code.)
    """
    n, count, _ = chunk.shape
    params = np.empty(count, np.float64)
    segment = np.empty(count, np.int64)
    below = np.empty(knots, np.int64)
    kx = np.empty(knots, np.float32)
    ky = np.empty(knots, np.float32)
    kz = np.empty(knots, np.float32)
    scale = np.float64(knots - 1)
    worst = np.float32(0.0)
    total = 0.0
    saw_nan = False
    for r in range(n):
        p = chunk[r]
        # Arc length: float32 segment lengths summed in float64, normalised to [0, 1].
        running = 0.0
        params[0] = 0.0
        for j in range(1, count):
            dx = p[j, 0] - p[j - 1, 0]
            dy = p[j, 1] - p[j - 1, 1]
            dz = p[j, 2] - p[j - 1, 2]
            length = dx * dx
            length = length + dy * dy
            length = length + dz * dz
            running += np.float64(np.sqrt(length))
            params[j] = running
        total_length = params[count - 1]
        if total_length <= 0.0:
            for j in range(count):
                params[j] = even_params[j]
        else:
            for j in range(count):
                params[j] = params[j] / total_length
        params[count - 1] = 1.0
        # The knot interval of every point, and per knot the first point at or past it.
        for k in range(knots):
            below[k] = 0
        for j in range(count):
            s = np.int64(params[j] * scale)
            if s < 0 or s >= knots:
                raise ValueError("strand points must be finite numbers")
            segment[j] = s
            below[s] += 1
        seen = 0
        for k in range(knots):
            seen += below[k]
            below[k] = seen
        for k in range(knots):
            upper = 1 if k == 0 else below[k - 1]
            upper = min(max(upper, 1), count - 1)
            lower = upper - 1
            p0 = params[lower]
            span = params[upper] - p0
            w = (targets[k] - p0) / (span if span > 0.0 else 1.0)
            weight = np.float32(_clip_high(_clip_low(w, 0.0), 1.0))
            sx, sy, sz = p[lower, 0], p[lower, 1], p[lower, 2]
            kx[k] = sx + (p[upper, 0] - sx) * weight
            ky[k] = sy + (p[upper, 1] - sy) * weight
            kz[k] = sz + (p[upper, 2] - sz) * weight
            out[r, k, 0] = kx[k]
            out[r, k, 1] = ky[k]
            out[r, k, 2] = kz[k]
        if not measure:
            continue
        # Distance from each point to the written segment covering its arc length.
        for j in range(count):
            s = min(segment[j], knots - 2)
            ax, ay, az = kx[s], ky[s], kz[s]
            d0 = kx[s + 1] - ax
            d1 = ky[s + 1] - ay
            d2 = kz[s + 1] - az
            denom = d0 * d0 + d1 * d1
            denom = denom + d2 * d2
            if not denom > 0:
                denom = np.float32(1.0)
            q0 = p[j, 0] - ax
            q1 = p[j, 1] - ay
            q2 = p[j, 2] - az
            along = d0 * q0
            along = along + d1 * q1
            along = along + d2 * q2
            along = along / denom
            along = _clip_high(_clip_low(along, np.float32(0.0)), np.float32(1.0))
            e0 = q0 - d0 * along
            e1 = q1 - d1 * along
            e2 = q2 - d2 * along
            distance = e0 * e0 + e1 * e1
            distance = distance + e2 * e2
            distance = np.sqrt(distance)
            if np.isnan(distance):
                saw_nan = True
            elif distance > worst:
                worst = distance
            total += np.float64(distance)
    if saw_nan:  # numpy's max propagates NaN
        worst = np.float32(np.nan)
    return worst, total


def warm_up() -> None:
    """Compile `linear_chunk` (or load it from numba's cache) with a tiny call."""
    strands = np.zeros((1, 4, 3), np.float32)
    strands[0, :, 1] = np.arange(4)
    out = np.empty((1, 3, 3), np.float32)
    linear_chunk(strands, 3, np.linspace(0.0, 1.0, 4), np.linspace(0.0, 1.0, 3), out, True)
