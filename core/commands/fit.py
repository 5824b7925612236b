"""`tressel fit GROOM --head MESH -o OUT`: move a groom onto a character's own head mesh."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a groom layer onto your character's head mesh (USD, OBJ or PLY)",
        description=textwrap.fill(
            "Register the model's scalp to the head by a similarity transform (scale, rotation, "
            "translation), put every root on the head's surface, carry each strand along with "
            "its root and push strands out of the head. Writes a new layer whose provenance "
            "records the fit; prints the fit error and how far the roots are from the head.",
            78),
        epilog=("examples:\n"
                "  tressel fit groom.usdc --head character_head.usd -o fitted.usdc\n"
                "  tressel fit groom.usdc --head head.obj --units cm -o fitted.usdc\n"
                "  tressel fit groom.usdc --head head.ply --landmarks marks.json -o fitted.usdc\n"
                "\nmarks.json: {\"source\": [[x,y,z], ...], \"target\": [[x,y,z], ...]} with 3 or "
                "more\npoints on the model's scalp (metres) and the same places on the head (the "
                "head's\nfile units)."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("groom", type=Path, help="groom layer written by tressel (.usdc/.usda)")
    p.add_argument("--head", type=Path, required=True, metavar="MESH",
                   help="the character's head: .usd/.usda/.usdc/.usdz, .obj or .ply")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="fitted groom layer to write (.usdc or .usda)")
    p.add_argument("--head-prim", default=None, metavar="PATH",
                   help="USD only: take the meshes under this prim (default: every mesh)")
    p.add_argument("--units", choices=["m", "cm", "mm"], default=None,
                   help="units of an OBJ or PLY head (default m; USD says its own)")
    p.add_argument("--source-scalp", type=Path, default=None, metavar="MESH",
                   help="the scalp the groom was grown on (default: the layer's Scalp prim, "
                        "else the scalp of the bundle named in its provenance)")
    p.add_argument("--landmarks", type=Path, default=None, metavar="JSON",
                   help="corresponding points on the scalp and the head; needed when the head "
                        "does not stand Y up facing +Z like the model's")
    p.add_argument("--no-icp", action="store_true",
                   help="use the landmarks' similarity as it is, without surface refinement")
    p.add_argument("--no-collide", action="store_true",
                   help="do not push strands out of the head after fitting")
    p.add_argument("--collision-margin", type=float, default=0.5, metavar="MM",
                   help="distance kept between strands and the head, millimetres (default 0.5)")
    p.add_argument("--guides", type=int, default=None,
                   help="guide curves in the written layer (default 2000, 0 for none)")
    p.add_argument("--layer-units", choices=["m", "cm"], default=None,
                   help="units of the written layer (default m)")
    p.set_defaults(func=run)


def source_scalp(hair: Any, args: argparse.Namespace) -> Any:
    """The mesh the groom's roots sit on: given, in the layer, or in its bundle."""
    from tressel.errors import ConfigError
    from tressel.geometry.mesh import TriMesh
    from tressel.geometry.mesh_io import read_mesh

    if args.source_scalp is not None:
        return read_mesh(args.source_scalp)
    if hair.scalp_mesh is not None:
        return TriMesh(hair.scalp_mesh.vertices, hair.scalp_mesh.faces)
    name = hair.provenance.bundle_name
    if name:
        from tressel.bundles import load_bundle
        from tressel.errors import BundleError

        try:
            scalp = load_bundle(name).scalp_mesh()
        except BundleError:
            pass
        else:
            hair.scalp_mesh = scalp
            return TriMesh(scalp.vertices, scalp.faces)
    raise ConfigError(f"{args.groom} has no Scalp prim and its bundle {name or '(none)'} is not "
                      "installed: pass --source-scalp MESH, the scalp it was grown on")


def read_landmarks(path: Path, units_scale: float) -> tuple[Any, Any]:
    import numpy as np
    from tressel.errors import ConfigError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        source = np.asarray(data["source"], dtype=np.float64).reshape(-1, 3)
        target = np.asarray(data["target"], dtype=np.float64).reshape(-1, 3) * units_scale
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--landmarks {path}: {exc}; give a JSON object with 'source' and "
                          "'target' lists of [x, y, z] points") from None
    return source, target


def run(args: argparse.Namespace) -> int:
    from tressel.errors import ConfigError
    from tressel.geometry.fit import fit_groom
    from tressel.geometry.mesh_io import metres_per_unit, read_mesh
    from tressel.usd import read_groom, write_groom

    if args.output.suffix.lower() not in (".usdc", ".usda", ".usd"):
        raise ConfigError(f"-o {args.output}: use a .usdc or .usda file name")
    if args.no_icp and args.landmarks is None:
        raise ConfigError("--no-icp needs --landmarks: without them there is nothing to fit")
    head = read_mesh(args.head, args.units, args.head_prim)  # the likeliest mistake first
    hair = read_groom(args.groom)
    source = source_scalp(hair, args)
    correspondences = None
    if args.landmarks is not None:
        correspondences = read_landmarks(args.landmarks, metres_per_unit(args.head, args.units))
    fitted, report, collision = fit_groom(
        hair, source, head, correspondences, icp=not args.no_icp, head_name=args.head.name,
        collide=not args.no_collide, margin=args.collision_margin * 1e-3)
    options = {name: value for name, value in (("guides", args.guides),
                                               ("units", args.layer_units)) if value is not None}
    write_groom(fitted, args.output, scalp=fitted.scalp_mesh is not None, **options)
    print(report.summary())
    if collision is not None:
        print(collision.summary())
    print(f"wrote {args.output}: {fitted.num_strands} strands fitted to {args.head}")
    return 0
