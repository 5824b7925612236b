"""`tressel train STAGE`: train Tressel's own models from a recipe (config + seed)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STAGE_HELP = {
    "strand-codec": "encode strands to latents: the strand encoder + SIREN decoder",
    "image-encoder": "the DINOv2-architecture ViT, trained on the renders, plus its features",
    "textures": "scalp textures (latents + density) of every groom, with the trained codec",
    "rgb2material": "hair material (melanin, redness, root darkness) from the image features",
    "diffusion": "the HDiT scalp-texture diffusion model on the textures and image features",
    "bundle": "assemble the trained networks and Tressel's scalp into a model bundle",
    "eval": "score the bundle on the held-out grooms (the recipe's eval: section) and put the "
            "numbers in its MODEL_CARD.md",
    "all": "every stage in order (synthetic data first), skipping finished ones",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the demo model's networks from a recipe (CPU or GPU)",
        description=(
            "Train one stage of a recipe (YAML with every config and seed, e.g. "
            "recipes/demo.yaml). Stages write into WORK/<stage>/: checkpoint.pt (resumable "
            "with --resume), losses.jsonl (one line per logged step), final.safetensors (EMA "
            "weights) and metrics.json. `all` runs synth, every stage, the bundle and its evaluation, "
            "skipping stages that already finished (so re-running it after an interruption "
            "continues where it stopped)."
        ),
        epilog="example: tressel train all --recipe recipes/demo.yaml --work runs/demo "
               "--out runs/demo/bundle",
    )
    p.add_argument("stage", choices=list(STAGE_HELP), metavar="STAGE",
                   help="; ".join(f"{k}: {v}" for k, v in STAGE_HELP.items()))
    p.add_argument("--recipe", type=Path, required=True, help="recipe YAML")
    p.add_argument("--work", type=Path, required=True, help="work folder (data, checkpoints)")
    p.add_argument("--out", type=Path,
                   help="bundle folder to write (stages bundle, eval and all)")
    p.add_argument("--resume", action="store_true",
                   help="continue a stage from its checkpoint.pt")
    p.add_argument("--force", action="store_true",
                   help="with `all`: rerun stages that already finished")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.errors import ConfigError
    from tressel.progress import TqdmProgress
    from tressel.train import recipe as stages

    recipe = stages.Recipe.load(args.recipe)
    if args.stage in ("all", "image-encoder"):
        from tressel.nn.cnn_encoder import is_cnn_config, require_pretrained_weights

        if is_cnn_config(stages.image_encoder_config(recipe)):
            require_pretrained_weights()  # before hours of stages, not in the middle of them
    work = stages.Workdir(args.work)
    progress = TqdmProgress(leave=False)

    def run_stage(stage: str) -> None:
        t0 = time.perf_counter()
        if stage == "data":
            result = stages.stage_data(recipe, work, progress)
        elif stage == "strand-codec":
            result = stages.stage_strand_codec(recipe, work, args.resume, progress)
        elif stage == "image-encoder":
            result = stages.stage_image_encoder(recipe, work, args.resume, progress)
        elif stage == "textures":
            result = stages.stage_textures(recipe, work, progress)
        elif stage == "rgb2material":
            result = stages.stage_rgb2material(recipe, work, args.resume, progress)
        elif stage == "diffusion":
            result = stages.stage_diffusion(recipe, work, args.resume, progress)
        elif args.out is None:
            raise ConfigError(f"the {stage} stage needs --out BUNDLE_FOLDER")
        elif stage == "bundle":
            result = {"bundle": str(stages.stage_bundle(recipe, work, args.out))}
        else:
            result = stages.stage_eval(recipe, work, args.out, progress)
        progress.close()
        print(f"{stage}: done in {time.perf_counter() - t0:.1f}s {json.dumps(result)}")

    if args.stage == "all":
        if args.out is None:
            raise ConfigError("`tressel train all` needs --out FOLDER for the bundle")
        t0 = time.perf_counter()
        for stage in stages.STAGES:
            if stage != "bundle" and not args.force and stages.stage_done(work, stage, args.out):
                print(f"{stage}: already done, skipped")
                continue
            run_stage(stage)
        print(f"all stages done in {time.perf_counter() - t0:.1f}s; bundle at {args.out}")
    else:
        run_stage(args.stage)
    return 0
