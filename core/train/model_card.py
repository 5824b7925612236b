"""The demo bundle's MODEL_CARD.md, written from the recipe, stage metrics and eval numbers."""

from __future__ import annotations

import json
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
        "architecture (strand codec, HDiT scalp diffusion, rgb2material, DINOv2-style image "
        "encoder) at a very small size; its grooms are plausible hair shapes, not faithful "
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
        ("- Image encoder: a DINOv2-architecture ViT with registers "
        f"({json.dumps(recipe['image_encoder']['config'])}), trained from scratch on the renders "
        "to predict every style attribute, then frozen. Pretrained DINOv2 weights cannot be "
        "downloaded offline, and a few hundred renders can teach this supervised task in "
        "minutes; its CLS token and patch map condition the diffusion model and rgb2material "
        "exactly as DINOv2's do in DiffLocks."),
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
    else:
        lines.append("Not evaluated yet: add an `eval:` section to the recipe and run "
                     "`tressel train eval --recipe RECIPE --work WORK --out BUNDLE`.")
    lines += [
        "",
        "## Limits",
        "",
        ("- Trained only on stylised synthetic renders; on photographs the image encoder is far "
        "outside its training data, so the groom follows the photo only loosely."),
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
