"""Strand metrics between generated and ground-truth grooms, with an image-ignoring baseline.

For each held-out synthetic groom, the model generates hair from the groom's render twice: with
the image (the normal job), and with the image ignored (the same denoiser's unconditional
branch, guidance 0 over the whole schedule; this is what the model knows about hair in general,
learned through condition dropout). Both are compared with the ground-truth strands:

- `root_matched_mm`: each ground-truth strand is paired with the generated strand whose root is
  nearest; the mean point-to-point distance over the strand (all 256 points, in mm).
- `precision@d` / `recall@d`: the fraction of generated points within d of some ground-truth
  point, and of ground-truth points within d of some generated point (d = 5, 10, 20 mm);
  `f1@d` their harmonic mean.
- `chamfer_mm`: the mean of the two nearest-point distances.
- `length_class_acc`, `curl_class_acc`, `colour_class_acc`: the share of grooms whose
  generated hair has the truth's length class, curl type and colour class, measured from the
  strands and material as a user sees them (`tressel.train.attributes`). The image-ignored
  baseline gets no colour from its denoiser, so its colour accuracy is the best constant
  guess: the share of the most common colour class among the held-out grooms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tressel.params import MAX_SIGMA

log = logging.getLogger(__name__)

THRESHOLDS_MM = (5.0, 10.0, 20.0)


def _nearest(a, b, chunk: int = 2048):
    """Distance from each row of a [N,3] to its nearest row of b [M,3] (torch tensors)."""
    import torch

    out = []
    for start in range(0, len(a), chunk):
        out.append(torch.cdist(a[start:start + chunk], b).min(dim=1).values)
    return torch.cat(out)


def strand_metrics(generated: np.ndarray, truth: np.ndarray, max_strands: int = 1000,
                   points_per_strand: int = 32, seed: int = 0) -> dict[str, float]:
    """Compare strands [N,V,3] with ground truth [M,V,3] (metres); distances in mm."""
    import torch

    rng = np.random.default_rng(seed)
    if len(generated) == 0:
        nan = float("nan")
        out = {"root_matched_mm": nan, "chamfer_mm": nan}
        for d in THRESHOLDS_MM:
            out.update({f"precision@{d:g}mm": 0.0, f"recall@{d:g}mm": 0.0, f"f1@{d:g}mm": 0.0})
        return out

    def subset(strands: np.ndarray) -> np.ndarray:
        if len(strands) > max_strands:
            strands = strands[np.sort(rng.choice(len(strands), max_strands, replace=False))]
        return strands

    gen, gt = subset(generated), subset(truth)
    gen_t = torch.from_numpy(np.ascontiguousarray(gen, np.float32))
    gt_t = torch.from_numpy(np.ascontiguousarray(gt, np.float32))
    pair = torch.cdist(gt_t[:, 0], gen_t[:, 0]).argmin(dim=1)
    root_matched = (gt_t - gen_t[pair]).norm(dim=-1).mean() * 1e3
    idx = np.linspace(0, gen.shape[1] - 1, points_per_strand).round().astype(int)
    gen_pts = gen_t[:, idx].reshape(-1, 3)
    gt_pts = gt_t[:, idx].reshape(-1, 3)
    to_truth = _nearest(gen_pts, gt_pts) * 1e3
    to_gen = _nearest(gt_pts, gen_pts) * 1e3
    out = {"root_matched_mm": float(root_matched),
           "chamfer_mm": float(0.5 * (to_truth.mean() + to_gen.mean()))}
    for d in THRESHOLDS_MM:
        p = float((to_truth < d).float().mean())
        r = float((to_gen < d).float().mean())
        out[f"precision@{d:g}mm"] = p
        out[f"recall@{d:g}mm"] = r
        out[f"f1@{d:g}mm"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


@dataclass
class EvalResult:
    per_groom: list[dict]
    summary: dict[str, dict[str, float]]  # {"image": {...}, "ignore_image": {...}}
    seconds: float


def evaluate(bundle, dataset: Path, count: int | None = None, max_strands: int = 3000,
             seed: int = 0, progress=None, cancel=None, attributes: bool = True
             ) -> EvalResult:
    """Generate from each held-out render with and without the image and score both."""
    import time

    from tressel.bundles import load_bundle
    from tressel.pipeline import GenerateParams, generate
    from tressel.progress import check_cancel
    from tressel.synth.dataset import list_grooms, read_groom
    from tressel.train.attributes import colour_class, measure_groom

    bundle = load_bundle(bundle)
    folders = list_grooms(dataset)[:count]
    t0 = time.perf_counter()
    rows = []
    # collide=False: the metrics judge the model's own strands, not the collision pass after it
    modes = {
        "image": GenerateParams(seed=seed, crop=False, max_strands=max_strands, collide=False),
        # guidance 0 everywhere = the unconditional denoiser alone: the image is ignored
        # (and no curl read off it by the encoder's style head)
        "ignore_image": GenerateParams(seed=seed, crop=False, max_strands=max_strands,
                                       guidance=0.0, guidance_interval=(0.0, MAX_SIGMA),
                                       collide=False, curl=False),
    }
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        truth = read_groom(folder)
        style = truth.meta["style"]
        raw = truth.meta["material_raw"]
        row = {"groom": folder.name, "style": style["length_class"] + "/" + style["curl_type"],
               "truth": {"length_class": style["length_class"], "curl_class": style["curl_type"],
                         "colour_class": colour_class(raw[3]), "melanin": round(raw[3], 3)}}
        for mode, params in modes.items():
            hair = generate(folder / "render.png", bundle, params)
            metrics = strand_metrics(hair.positions, truth.positions, seed=seed)
            metrics["strands"] = hair.num_strands
            seen = measure_groom(hair.positions, hair.material.melanin, seed=seed)
            if mode == "image":
                metrics["melanin_abs_err"] = abs(hair.material.melanin - raw[3])
                metrics["redness_abs_err"] = abs(hair.material.redness - raw[4])
            if attributes:
                for key in ("length_class", "curl_class", "colour_class"):
                    metrics[f"{key}_acc"] = float(seen.get(key) == row["truth"][key])
                row[f"{mode}_attributes"] = seen
            row[mode] = metrics
        rows.append(row)
        if progress is not None:
            progress("eval", i + 1, len(folders))
    if rows and attributes:  # the image-free baseline's colour: the best constant guess
        colours = [r["truth"]["colour_class"] for r in rows]
        common = max(sorted(set(colours)), key=colours.count)
        for r in rows:
            r["ignore_image"]["colour_class_acc"] = float(r["truth"]["colour_class"] == common)
    summary = {}
    for mode in modes:
        keys = rows[0][mode].keys() if rows else []
        summary[mode] = {k: float(np.nanmean([r[mode][k] for r in rows])) for k in keys}
    return EvalResult(rows, summary, time.perf_counter() - t0)


def eval_record(bundle, dataset: Path, result: EvalResult) -> dict:
    """What `tressel eval --json` and the recipe's eval stage write: every number, and the
    bundle it was measured on (so a stale record is never shown for a rebuilt bundle)."""
    return {"bundle": bundle.name, "bundle_hash": bundle.content_hash, "data": str(dataset),
            "seconds": result.seconds, "summary": result.summary, "per_groom": result.per_groom}


def format_summary(result: EvalResult) -> str:
    """A small plain-text table: one row per metric, one column per mode."""
    modes = list(result.summary)
    keys = list(result.summary[modes[0]]) if modes else []
    lines = [f"{'metric':<22}" + "".join(f"{m:>14}" for m in modes)]
    for key in keys:
        lines.append(f"{key:<22}" + "".join(f"{result.summary[m].get(key, float('nan')):>14.4g}"
                                            for m in modes))
    return "\n".join(lines)
