"""The generate options `tressel generate` and `tressel batch` share: flags, parsing, meaning.

Options come in two kinds. *Item options* (seed, steps, strands, USD layout...) may differ from
one photo to the next, so a batch manifest row or a farm job's `--options` string can set them;
*run options* (model, device, precision) hold for a whole process, which loads the model once.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any

from tressel import params
from tressel.errors import ConfigError


def _option(check: Callable[[Any], Any], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: convert the text, then check it with the shared bounds (tressel.params)."""

    def parse(text: str) -> Any:
        try:
            return check(convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def parse_strands(text: str) -> tuple[float, int | None]:
    """`0.5x` scales the density (fewer strands), a plain integer caps the strand count."""
    try:
        return params.parse_strands(text, what="--strands")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_interval(text: str) -> tuple[float, float]:
    try:
        return params.check_guidance_interval([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--guidance-interval {text!r}: give two noise levels LO,HI such as 0,5") from None
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"--guidance-interval {text!r}: {exc}") from None


# Item options that are on/off flags (a manifest cell says yes or no).
FLAG_OPTIONS = ("no_crop", "no_collide", "no_curl", "no_hair_reading", "npz", "alembic")
# argparse dest -> the WriteOptions field it sets.
WRITE_OPTION_FIELDS = {"points": "points_per_strand", "basis": "basis", "units": "units",
                       "guides": "guides", "guide_method": "guide_method",
                       "width_variation": "width_variation"}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype: one value for the whole process."""
    p.add_argument("--model", default=None,
                   help="bundle name or folder (default: $TRESSEL_MODEL, else the only or "
                        "'difflocks' bundle in the store)")
    p.add_argument("--device", default="auto", type=_option(params.check_device, str),
                   help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="diffusion precision (auto: bfloat16 autocast on CUDA, float32 on CPU)")


def add_item_options(p: argparse.ArgumentParser, suppress_defaults: bool = False) -> None:
    """Sampling and output options. With `suppress_defaults`, an option not given leaves the
    namespace untouched, so parsing a manifest row or `--options` only overrides what it names.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress_defaults else value

    p.add_argument("--seed", type=_option(params.check_seed, int), default=default(0),
                   help="random seed (default 0)")
    p.add_argument("--steps", type=_option(params.check_steps, int), default=default(None),
                   help="diffusion steps (default: the bundle's, 100 for DiffLocks)")
    p.add_argument("--guidance", type=_option(params.check_guidance, float),
                   default=default(None),
                   help="classifier-free guidance scale; 1 disables it (default: the bundle's)")
    p.add_argument("--guidance-interval", type=parse_interval, default=default(None),
                   metavar="LO,HI",
                   help="apply guidance only for noise levels LO < sigma < HI (default 0,5)")
    p.add_argument("--strands", type=parse_strands, default=default((1.0, None)), metavar="N|Sx",
                   help="cap the strand count (20000) or scale the density (0.5x)")
    p.add_argument("--no-crop", action="store_true", default=default(False),
                   help="use the whole image as the face crop (no face detection)")
    p.add_argument("--no-curl", action="store_true", default=default(False),
                   help="keep strands as the strand codec decodes them; by default a bundle "
                        "whose image encoder has a style head (the demo model) curls them as "
                        "it reads the photo (wavy, curly, coily); others are unaffected")
    p.add_argument("--no-hair-reading", action="store_true", default=default(False),
                   help="keep the model's own strand length and colour; by default, for a "
                        "bundle with a style head (the demo model), the hair is measured in "
                        "the photo (how far it falls, how high it stands, its colour) and the "
                        "groom follows it; others are unaffected")
    hair = p.add_argument_group("collision")
    hair.add_argument("--no-collide", action="store_true", default=default(False),
                      help="keep strands as the model made them, even where they pass through "
                           "the scalp (default: push them out, keeping their lengths)")
    hair.add_argument("--collision-margin", default=default(0.5), metavar="MM",
                      type=_option(params.check_collision_margin_mm, float),
                      help="distance kept between strands and the scalp, millimetres "
                           "(default 0.5)")
    usd = p.add_argument_group("USD layer")
    usd.add_argument("--points", type=_option(params.WRITE_CHECKS["points_per_strand"], int),
                     default=default(None),
                     help="points written per strand (default 64, resampled by arc length)")
    usd.add_argument("--basis", choices=["linear", "bspline"], default=default(None),
                     help="curve basis (default linear: every importer reads it)")
    usd.add_argument("--units", choices=["m", "cm"], default=default(None),
                     help="stage units (default m; the model works in metres)")
    usd.add_argument("--guides", type=_option(params.WRITE_CHECKS["guides"], int),
                     default=default(None),
                     help="guide curves for DCC import (default 2000, 0 for none)")
    usd.add_argument("--guide-method", choices=["clusters", "spread"], default=default(None),
                     help="clusters: one guide per clump of like-shaped strands (default); "
                          "spread: evenly over the scalp")
    usd.add_argument("--width-variation", metavar="V", default=default(None),
                     type=_option(params.WRITE_CHECKS["width_variation"], float),
                     help="per-strand thickness variation: each strand up to V thinner or "
                          "thicker (0.1 = 10 %%; default 0, every strand the same taper). "
                          "USD then stores widths as they are: the layer writes and reads "
                          "faster but is larger (a third more at 256 points per strand)")
    p.add_argument("--alembic", action="store_true", default=default(False),
                   help="also write OUT.abc: an Alembic groom (Ogawa) for Unreal's groom "
                        "importer, Maya and Blender, in centimetres unless --units says m")
    p.add_argument("--npz", action="store_true", default=default(False),
                   help="also write OUT.npz with positions, root_uv and material")


class _RaisingParser(argparse.ArgumentParser):
    """An argparse parser whose errors are ConfigErrors instead of an exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def item_option_parser() -> argparse.ArgumentParser:
    parser = _RaisingParser(prog="options", add_help=False)
    add_item_options(parser, suppress_defaults=True)
    return parser


def apply_option_string(args: argparse.Namespace, text: str, what: str = "--options") -> None:
    """Parse `text` ("--steps 50 --strands 0.5x") as item options into `args`, in place."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r}: {exc}") from None
    try:
        item_option_parser().parse_args(tokens, namespace=args)
    except ConfigError as exc:
        raise ConfigError(f"{what} {text!r}: {exc}; it takes the options of `tressel "
                          "generate` that may differ per photo (--seed, --steps, --strands, "
                          "--points, ...)") from None


def apply_option_values(args: argparse.Namespace, values: dict[str, Any], what: str) -> None:
    """Set item options from a mapping such as a manifest row ({"steps": "2", "npz": "yes"}).

    Keys are option names without dashes (`guidance_interval` or `guidance-interval`); values
    are parsed exactly as on the command line; empty values are skipped.
    """
    parser = item_option_parser()
    known = {action.dest: action for action in parser._actions if action.option_strings}
    tokens: list[str] = []
    for key, value in values.items():
        dest = str(key).strip().lower().replace("-", "_")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if dest not in known:
            names = ", ".join(sorted(a.option_strings[0][2:] for a in known.values()))
            raise ConfigError(f"{what}: unknown option {key!r}; columns may be: photo, output, "
                              f"{names}")
        if dest in FLAG_OPTIONS:
            setattr(args, dest, _truthy(value, f"{what}: {key}"))
        else:
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            tokens += [known[dest].option_strings[0], str(value)]
    try:
        parser.parse_args(tokens, namespace=args)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _truthy(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "yes", "y", "true", "on", "x"):
        return True
    if text in ("0", "no", "n", "false", "off"):
        return False
    raise ConfigError(f"{what} is {value!r}: use yes or no")


def generate_values(args: argparse.Namespace) -> dict[str, Any]:
    """The `GenerateParams` fields the options ask for, checked (standard library only)."""
    density_scale, max_strands = args.strands
    values = {
        "seed": args.seed, "steps": args.steps, "guidance": args.guidance,
        "guidance_interval": args.guidance_interval, "density_scale": density_scale,
        "max_strands": max_strands, "device": args.device, "dtype": args.dtype,
        "crop": not args.no_crop, "collide": not args.no_collide, "curl": not args.no_curl,
        "hair_reading": not args.no_hair_reading,
        "collision_margin": args.collision_margin * 1e-3,
    }
    params.check_generate_params(values)
    return values


def generate_params(args: argparse.Namespace) -> Any:
    """The `GenerateParams` the options ask for (imports the pipeline: torch)."""
    from tressel.pipeline import GenerateParams

    return GenerateParams(**generate_values(args))


def write_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `write_groom` keywords the options set (unset ones keep the writer's defaults)."""
    return {field: getattr(args, dest) for dest, field in WRITE_OPTION_FIELDS.items()
            if getattr(args, dest, None) is not None}
