"""`tressel models list|info|import-difflocks|remove`: manage the model bundles in the store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="list, inspect, import and remove model bundles",
        description=(
            "Model bundles live in the bundle store: $TRESSEL_MODELS_DIR, else the user data "
            "directory (~/.local/share/tressel/models on Linux). Tressel never downloads "
            "weights: download the DiffLocks release yourself and convert it with "
            "import-difflocks."
        ),
    )
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")

    ls = sub.add_parser("list", help="list installed bundles",
                        description="List the bundles installed in the store.")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    info = sub.add_parser("info", help="show a bundle's settings, sizes and files",
                          description="Show a bundle's manifest summary (name or folder path).")
    info.add_argument("bundle", help="installed bundle name or bundle folder")
    info.add_argument("--verify", action="store_true",
                      help="re-hash every file and check it against the manifest")
    info.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    info.set_defaults(func=run_info)

    imp = sub.add_parser(
        "import-difflocks",
        help="convert the authors' DiffLocks release into a bundle",
        description=(
            "Convert the DiffLocks release you downloaded (diffusion .pth with model_ema, "
            "strand_codec.pt, rgb2material.pt, scalp.ply) plus DINOv2 ViT-L/14-reg4 weights "
            "(Meta dinov2_vitl14_reg4_pretrain.pth or timm model.safetensors) into a bundle. "
            "Checkpoints are read with torch.load(weights_only=True) only, and every key and "
            "shape is checked; on any problem the store is left unchanged."
        ),
        epilog="example: tressel models import-difflocks ~/Downloads/difflocks_release",
    )
    imp.add_argument("release", type=Path, help="folder holding the release files")
    imp.add_argument("--name", default="difflocks", help="bundle name (default: difflocks)")
    imp.add_argument("--force", action="store_true", help="replace a bundle of the same name")
    for flag, role in (("--diffusion", "diffusion"), ("--strand-codec", "strand_codec"),
                       ("--rgb2material", "rgb2material"), ("--dinov2", "image_encoder"),
                       ("--scalp", "scalp")):
        imp.add_argument(flag, dest=f"file_{role}", type=Path, metavar="FILE",
                         help=f"use FILE as the {role.replace('_', ' ')} file")
    imp.set_defaults(func=run_import)

    rm = sub.add_parser("remove", help="delete an installed bundle",
                        description="Delete an installed bundle from the store.")
    rm.add_argument("name", help="installed bundle name")
    rm.set_defaults(func=run_remove)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run_list(args: argparse.Namespace) -> int:
    from tressel.bundles import bundle_store_dir, list_bundles

    store = bundle_store_dir()
    bundles = list_bundles(store)
    if args.json:
        print(json.dumps([{"name": b.name, "kind": b.kind, "hash": b.content_hash,
                           "bytes": b.total_bytes(), "path": str(b.path)} for b in bundles],
                         indent=1))
        return 0
    if not bundles:
        print(f"no bundles installed in {store}")
        print("import the DiffLocks release with: tressel models import-difflocks DIR")
        return 0
    print(f"bundles in {store}:")
    width = max(len(b.name) for b in bundles)
    for b in bundles:
        print(f"  {b.name:<{width}}  {b.kind:<10}  {b.short_hash}  {_human(b.total_bytes()):>9}  "
              f"texture {b.texture_size}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from tressel.bundles import load_bundle

    bundle = load_bundle(args.bundle)
    if args.json:
        print(json.dumps(bundle.manifest, indent=1, sort_keys=True))
    else:
        m = bundle.manifest
        sampler = m["sampler"]
        diffusion = m["components"]["diffusion"]["config"]
        encoder = m["components"]["image_encoder"]["config"]
        codec = m["components"]["strand_codec"]["config"]
        print(f"name:        {bundle.name}")
        print(f"kind:        {bundle.kind}")
        print(f"path:        {bundle.path}")
        print(f"hash:        {bundle.content_hash}")
        if m.get("description"):
            print(f"description: {m['description']}")
        if m.get("license"):
            print(f"license:     {m['license']}")
        print(f"created:     {m.get('created_utc', '?')} (tressel {m.get('tressel_version', '?')})")
        print(f"texture:     {bundle.texture_size}x{bundle.texture_size}x"
              f"{bundle.texture_channels}, sigma_data {bundle.sigma_data}")
        print(f"diffusion:   widths {diffusion.get('widths')} depths {diffusion.get('depths')} "
              f"mapping {diffusion.get('mapping_width')}")
        if encoder.get("architecture"):
            print(f"encoder:     {encoder['architecture']} (pretrained, frozen) + projection to "
                  f"{encoder.get('embed_dim')}, crop {bundle.crop_size} px")
        else:
            print(f"encoder:     ViT {encoder.get('embed_dim')}x{encoder.get('depth')} patch "
                  f"{encoder.get('patch_size')}, crop {bundle.crop_size} px")
        print(f"strands:     {codec.get('nr_verts_per_strand')} points, latent "
              f"{codec.get('latent_dim')}")
        print(f"scalp:       {m['scalp']['mesh']} (UV maps {bundle.uv_map_size})")
        print(f"sampler:     {sampler['steps']} steps, sigma {sampler['sigma_min']}.."
              f"{sampler['sigma_max']}, guidance {sampler['guidance']} in "
              f"{tuple(sampler['guidance_interval'])}")
        print("files:")
        for rel, meta in sorted(m["files"].items()):
            print(f"  {rel:<28} {_human(int(meta['bytes'])):>9}  {meta['sha256'][:12]}")
    if args.verify:
        problems = bundle.verify()
        for problem in problems:
            print(f"BAD {problem}")
        print("verify: ok" if not problems else f"verify: {len(problems)} problem(s)")
        return 0 if not problems else 1
    return 0


def run_import(args: argparse.Namespace) -> int:
    from tressel.difflocks_import import import_difflocks

    overrides = {role: getattr(args, f"file_{role}") for role in
                 ("diffusion", "strand_codec", "rgb2material", "image_encoder", "scalp")}
    bundle = import_difflocks(args.release, name=args.name, replace=args.force,
                              overrides=overrides, progress=lambda msg: print(msg, flush=True))
    print(f"use it with: tressel generate IMAGE -o OUT --model {bundle.name}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from tressel.bundles import remove_bundle

    path = remove_bundle(args.name)
    print(f"removed {args.name} ({path})")
    return 0
