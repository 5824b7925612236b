"""Guides that represent a groom: strands clustered by shape, one guide per clump, weights.

Each strand is described by its root and its shape (root-relative points at even arc length).
k-means on that description, started from guides spread evenly over the scalp, groups strands
into clumps; the member nearest a clump's centre becomes its guide. Every strand then gets
three guides (its clump's, then the two next nearest in shape) and weights that rebuild it as
its own root plus the weighted sum of their root-relative shapes: what Houdini's guide
interpolation, XGen's guide-driven grooms and Unreal's `groom_closest_guides` /
`groom_guide_weights` do. `reconstruction_error` measures how well that rebuild works; the
same solver over evenly spread guides (nearest by root) is the baseline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from tressel.usd.curves import resample_many, resample_strands, spread_guides

log = logging.getLogger(__name__)

GUIDES_PER_STRAND = 3
FEATURE_POINTS = 8  # shape samples per strand for clustering
WEIGHT_POINTS = 16  # samples per strand for the weights and the reconstruction error
CONVERGED = 0.005  # k-means stops once at most this share of the strands change clump
NEIGHBOURS = 32  # guides searched for a strand's second and third guide (see `_candidates`)
CHUNK = 4096  # rows per product: a [4096, 2000] float32 score block is 33 MB


@dataclass
class GuideSet:
    """Which strands are guides and how every strand follows them."""

    index: np.ndarray  # [G] sorted strand indices of the guides
    guides: np.ndarray  # [N,3] int32 positions in `index` (0..G-1), own clump's guide first
    weights: np.ndarray  # [N,3] float32, non-negative, summing to 1
    clump: np.ndarray  # [N] int32 clump id = position in `index` of the clump's guide
    method: str  # "clusters" or "spread"
    seconds: float = 0.0
    # The strands at WEIGHT_POINTS arc-length samples, as the weights were solved on: kept so
    # that `reconstruction_error` need not resample them again.
    sampled: np.ndarray | None = field(default=None, repr=False, compare=False)


def shape_features(positions: np.ndarray, points: int = FEATURE_POINTS,
                   sampled: np.ndarray | None = None) -> np.ndarray:
    """[N, 3 + 3*points] float32: root (weighted like a shift of every point) and the
    root-relative shape at `points` arc-length-even samples (`sampled`, when the caller has
    them)."""
    if sampled is None:
        sampled = resample_strands(positions, points, "linear", deviation=False).points
    roots = sampled[:, 0]
    shape = (sampled - roots[:, None]).reshape(len(sampled), -1)
    return np.concatenate([roots * np.float32(np.sqrt(points)), shape], axis=1).astype(
        np.float32)


def _nearest(features: np.ndarray, centres: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(indices [N,k], squared distances [N,k]) of the k nearest centres, chunked.

    |f - c|^2 = |f|^2 - 2 (f.c - |c|^2 / 2), and |f|^2 is the same for every centre, so the
    ranking is one matrix product of [f, 1] with [c, -|c|^2 / 2] per chunk, then one pass to
    pick the largest scores: no [chunk, centres] temporaries beyond the product itself.
    """
    features = np.asarray(features, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.float32)
    scored_centres = np.concatenate(
        [centres, -0.5 * (centres.astype(np.float64) ** 2).sum(axis=1, keepdims=True)],
        axis=1).astype(np.float32).T.copy()
    feature_norm = (features.astype(np.float64) ** 2).sum(axis=1)
    index = np.empty((len(features), k), np.int64)
    dist = np.empty((len(features), k), np.float32)
    rows = np.empty((CHUNK, features.shape[1] + 1), np.float32)
    rows[:, -1] = 1.0
    for start in range(0, len(features), CHUNK):
        count = min(CHUNK, len(features) - start)
        rows[:count, :-1] = features[start:start + count]
        score = rows[:count] @ scored_centres  # [count, centres]: larger is nearer
        # k passes of argmax, masking each winner, beat a partition for the few k used here.
        part = np.empty((count, k), np.int64)
        best = np.empty((count, k), np.float64)
        rows_index = np.arange(count)
        for j in range(k):
            part[:, j] = score.argmax(axis=1)
            best[:, j] = score[rows_index, part[:, j]]
            if j + 1 < k:
                score[rows_index, part[:, j]] = -np.inf
        index[start:start + count] = part
        dist[start:start + count] = feature_norm[start:start + count, None] - 2.0 * best
    return index, np.maximum(dist, 0.0)


def solve_weights(positions: np.ndarray, guide_strands: np.ndarray, candidates: np.ndarray,
                  points: int = WEIGHT_POINTS, sampled: np.ndarray | None = None) -> np.ndarray:
    """Weights [N,3] (>= 0, sum 1) rebuilding each strand's root-relative shape from its
    candidate guides' (least squares on `points` samples, batched 3x3 solves)."""
    if sampled is None:
        sampled = resample_strands(positions, points, "linear", deviation=False).points
    points = sampled.shape[1]
    shape = sampled - sampled[:, :1]
    guide_shape = shape[guide_strands]  # [G,P,3]
    weights = np.empty(candidates.shape, np.float32)
    k = candidates.shape[1]
    for start in range(0, len(shape), CHUNK):
        target = shape[start:start + CHUNK].reshape(-1, points * 3).astype(np.float64)
        basis = guide_shape[candidates[start:start + CHUNK]].reshape(
            len(target), k, points * 3).astype(np.float64)
        # Minimise |B^T w - s|^2 with sum(w) = 1: KKT system, regularised a little so that
        # identical guides do not make it singular.
        gram = np.einsum("nkd,njd->nkj", basis, basis)
        scale = np.trace(gram, axis1=1, axis2=2)[:, None, None] / k + 1e-12
        gram += np.eye(k)[None] * scale * 1e-6
        rhs = np.einsum("nkd,nd->nk", basis, target)
        system = np.zeros((len(target), k + 1, k + 1))
        system[:, :k, :k] = gram
        system[:, :k, k] = 1.0
        system[:, k, :k] = 1.0
        vector = np.concatenate([rhs, np.ones((len(target), 1))], axis=1)
        w = np.linalg.solve(system, vector[..., None])[:, :k, 0]
        w = np.clip(w, 0.0, None)
        total = w.sum(axis=1, keepdims=True)
        w = np.where(total > 1e-9, w / np.maximum(total, 1e-12), np.eye(k)[0])
        weights[start:start + len(target)] = w
    return weights


def cluster_guides(positions: np.ndarray, count: int, iterations: int = 10) -> GuideSet:
    """`count` guides picked by clustering strands on root and shape (see module doc)."""
    start = time.perf_counter()
    positions = np.asarray(positions)
    n = len(positions)
    count = min(count, n)
    # One arc-length pass gives the feature samples and the weight samples.
    feature_points, sampled = resample_many(positions, (FEATURE_POINTS, WEIGHT_POINTS))
    features = shape_features(positions, sampled=feature_points)
    del feature_points
    # Centres start spread evenly over the scalp and settle on a seeded sample (ten strands
    # per guide, at least 20,000): the same kind of clumps for a fifth of the work on 100,000
    # strands. The even spread is taken over the sample's roots too, since farthest-point
    # sampling costs guides x strands. Every strand is assigned at the end.
    sample_size = min(n, max(20000, 10 * count))
    chosen = np.arange(n) if sample_size == n else np.sort(
        np.random.default_rng(0).choice(n, sample_size, replace=False))
    sample = features[chosen]
    centres = sample[spread_guides(positions[chosen, 0], count)].copy()
    previous = None
    for _ in range(iterations):
        label = _nearest(sample, centres, 1)[0][:, 0]
        if previous is not None:
            changed = int(np.count_nonzero(label != previous))
            log.debug("k-means: %d of %d strands changed clump", changed, len(label))
            if changed <= CONVERGED * len(label):
                break  # settled: further passes would move a handful of strands
        previous = label
        sums = np.stack([np.bincount(label, weights=column, minlength=count)
                         for column in sample.T], axis=1)
        members = np.bincount(label, minlength=count)
        filled = members > 0  # an empty clump keeps its centre
        centres[filled] = (sums[filled] / members[filled, None]).astype(np.float32)
    label, dist = _nearest(features, centres, 1)
    label, dist = label[:, 0], dist[:, 0]
    # The guide of each clump: its member nearest the clump's centre.
    order = np.lexsort((dist, label))
    first = np.r_[True, label[order][1:] != label[order][:-1]]
    guide_of_clump = np.full(count, -1, np.int64)
    guide_of_clump[label[order][first]] = order[first]
    used = guide_of_clump >= 0
    index = np.sort(guide_of_clump[used])
    position_in_index = np.searchsorted(index, guide_of_clump[used])
    clump = np.full(count, -1, np.int64)
    clump[used] = position_in_index
    own = clump[label]
    candidates = _candidates(features, index, own)
    weights = solve_weights(positions, index, candidates, sampled=sampled)
    return GuideSet(index=index, guides=candidates.astype(np.int32), weights=weights,
                    clump=own.astype(np.int32), method="clusters",
                    seconds=time.perf_counter() - start, sampled=sampled)


def _candidates(features: np.ndarray, index: np.ndarray, own: np.ndarray) -> np.ndarray:
    """[N,3] guide positions: `own` first, then the nearest other guides in shape space."""
    k = min(GUIDES_PER_STRAND, len(index))
    guide_features = features[index]
    width = min(len(index), NEIGHBOURS)
    if width == len(index):
        near, _ = _nearest(features, guide_features, k + 1)
    else:
        # The guides nearest a strand in shape are among those nearest its own guide: search
        # those `width` instead of all of them (2,000 guides: 60x fewer distances), one small
        # product per clump (a loop over guides, vectorised over their strands).
        neighbours, _ = _nearest(guide_features, guide_features, width)  # [G, width]
        half_norm = 0.5 * (guide_features.astype(np.float64) ** 2).sum(axis=1)
        near = np.empty((len(features), k + 1), np.int64)
        by_clump = np.argsort(own, kind="stable")
        bounds = np.searchsorted(own[by_clump], np.arange(len(index) + 1))
        for guide in range(len(index)):
            members = by_clump[bounds[guide] : bounds[guide + 1]]
            if len(members) == 0:
                continue
            candidates = neighbours[guide]
            # |f - g|^2 - |f|^2 = 2 (|g|^2 / 2 - f.g): the same ranking, one product.
            score = half_norm[candidates] - features[members] @ guide_features[candidates].T
            order = np.argsort(score, axis=1, kind="stable")[:, : k + 1]
            near[members] = candidates[order]
    out = np.empty((len(features), k), np.int64)
    out[:, 0] = own
    # Drop `own` from each row (where present) and keep the first k - 1 of the rest.
    keep = near != own[:, None]
    ranks = np.cumsum(keep, axis=1)
    for j in range(1, k):
        column = np.argmax(keep & (ranks == j), axis=1)
        out[:, j] = near[np.arange(len(near)), column]
    return out


def spread_guide_set(positions: np.ndarray, count: int) -> GuideSet:
    """The baseline: guides spread evenly over the scalp (farthest-point on roots), each strand
    following the three guides with the nearest roots, weights from the same solver."""
    start = time.perf_counter()
    positions = np.asarray(positions)
    index = spread_guides(positions[:, 0], count)
    roots = positions[:, 0].astype(np.float32)
    near, _ = _nearest(roots, roots[index], min(GUIDES_PER_STRAND, len(index)))
    sampled = resample_strands(positions, WEIGHT_POINTS, "linear", deviation=False).points
    weights = solve_weights(positions, index, near, sampled=sampled)
    return GuideSet(index=index, guides=near.astype(np.int32), weights=weights,
                    clump=near[:, 0].astype(np.int32), method="spread",
                    seconds=time.perf_counter() - start, sampled=sampled)


def reconstruct(positions: np.ndarray, guide_set: GuideSet, points: int = 16,
                sampled: np.ndarray | None = None) -> np.ndarray:
    """Strands [N,points,3] rebuilt from their guides: own root + weighted guide shapes.

    `sampled` is `positions` resampled to `points` already, when the caller has it."""
    if sampled is None:
        sampled = resample_strands(positions, points, "linear", deviation=False).points
    shape = sampled - sampled[:, :1]
    guide_shape = shape[guide_set.index]
    rebuilt = np.einsum("nk,nkpc->npc", guide_set.weights, guide_shape[guide_set.guides])
    return sampled[:, :1] + rebuilt


def reconstruction_error(positions: np.ndarray, guide_set: GuideSet,
                         points: int = WEIGHT_POINTS) -> dict[str, float]:
    """Mean and 95th percentile over strands of the RMS distance (metres) between a strand and
    its rebuild, at `points` arc-length-even samples."""
    sampled = guide_set.sampled
    if sampled is None or sampled.shape != (len(positions), points, 3):
        sampled = resample_strands(positions, points, "linear", deviation=False).points
    rebuilt = reconstruct(positions, guide_set, points, sampled)
    rms = np.sqrt(((rebuilt - sampled) ** 2).sum(axis=2).mean(axis=1))
    return {"mean": float(rms.mean()), "p95": float(np.percentile(rms, 95)),
            "max": float(rms.max())}


def pick_guides(positions: np.ndarray, count: int, method: str = "clusters") -> GuideSet:
    """Guides by `method`: "clusters" (shape clumps) or "spread" (even over the scalp)."""
    if method == "clusters":
        return cluster_guides(positions, count)
    if method == "spread":
        return spread_guide_set(positions, count)
    raise ValueError(f"unknown guide method {method!r}: use clusters or spread")
