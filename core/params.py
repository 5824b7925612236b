"""The types and bounds of every job parameter, checked in one place for CLI, daemon, pipeline.

Standard library only: the CLI checks its options here before importing torch, the daemon's
request schema checks a submission here before queueing it, and `GenerateParams.validate` calls
the same functions, so a value one of them accepts is never refused (or crashes) in another.
Every failure is a `ConfigError` that names the parameter, the value and the allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from tressel.errors import ConfigError

# Upper bounds: far above any useful value, low enough that a typo cannot queue a job that
# would run for days or allocate without limit (DiffLocks uses 100 steps and ~100K strands).
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
MAX_SIGMA = 1.0e6
MAX_DENSITY_SCALE = 16.0
MAX_STRANDS = 1_000_000
MAX_SEED = 2**63 - 1
MAX_CHUNK = 1_000_000
MAX_POINTS = 1024
MAX_GUIDES = 100_000
MAX_WIDTH_M = 0.01  # 1 cm: no hair strand is wider
MAX_COLLISION_MARGIN_M = 0.05  # 5 cm between hair and head is no longer hair on a head
GUIDE_METHODS = ("clusters", "spread")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BASES = ("linear", "bspline")
UNITS = ("m", "cm")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}={value!r} is not a number: give a number")
    if not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is not a finite number: give a finite number")
    return float(value)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """An integer in [low, high] (bools and non-integral floats are refused)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} is not a whole number: give an integer "
                          f"from {low} to {high}")
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range: use {low} to {high}")
    return value


def check_float(name: str, value: Any, low: float, high: float,
                low_open: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] with `low_open`)."""
    number = _number(name, value)
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name}={value!r} is out of range: use a value in "
                          f"{bracket}{low:g}, {high:g}]")
    return number


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: give true or false")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


def check_text(name: str, value: Any, max_length: int = 256) -> str:
    """A short printable string: no NUL or control characters (they break paths and logs)."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}={value!r} is not text")
    if len(value) > max_length:
        raise ConfigError(f"{name} is {len(value)} characters long: use at most {max_length}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{name}={value!r} contains control characters (such as a NUL "
                          "byte): remove them")
    return value


def check_seed(value: Any) -> int:
    return check_int("seed", value, 0, MAX_SEED)


def check_steps(value: Any) -> int:
    return check_int("steps", value, 1, MAX_STEPS)


def check_guidance(value: Any) -> float:
    return check_float("guidance", value, 0.0, MAX_GUIDANCE)


def check_guidance_interval(value: Any) -> tuple[float, float]:
    """(lo, hi) noise levels with 0 <= lo < hi, both finite."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"guidance_interval={value!r}: give two noise levels [LO, HI] "
                          "such as [0, 5]")
    low = check_float("guidance_interval low", value[0], 0.0, MAX_SIGMA)
    high = check_float("guidance_interval high", value[1], 0.0, MAX_SIGMA)
    if not low < high:
        raise ConfigError(f"guidance_interval={list(value)!r} needs LO < HI, such as [0, 5]")
    return low, high


def check_density_scale(value: Any) -> float:
    return check_float("density_scale", value, 0.0, MAX_DENSITY_SCALE, low_open=True)


def check_max_strands(value: Any) -> int:
    return check_int("max_strands", value, 1, MAX_STRANDS)


def parse_strands(text: str | float | None, what: str = "strands",
                  ) -> tuple[float, int | None]:
    """`"0.5x"` scales the predicted density, a count ("20000") caps the strands; empty: neither.

    Returns `(density_scale, max_strands)`, checked, as `GenerateParams` takes them. `what`
    names the value in errors as the caller's user typed it (the CLI says "--strands").
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return 1.0, None
    value = str(text).strip().lower()
    try:
        if value.endswith("x"):
            return check_density_scale(float(value[:-1])), None
        number = float(value)
        if not number.is_integer():
            raise ValueError
        return 1.0, check_max_strands(int(number))
    except ValueError:
        raise ConfigError(f"{what} {text!r}: give a maximum count like 20000, or a density "
                          "scale like 0.5x") from None
    except ConfigError as exc:
        raise ConfigError(f"{what} {text!r}: {exc}") from None


def check_collision_margin(value: Any) -> float:
    return check_float("collision_margin", value, 0.0, MAX_COLLISION_MARGIN_M)


def check_collision_margin_mm(value: Any) -> float:
    """The CLI's --collision-margin, in millimetres."""
    return check_float("collision margin (mm)", value, 0.0, MAX_COLLISION_MARGIN_M * 1e3)


def check_device(value: Any) -> str:
    return check_text("device", value, 64)


def check_dtype(value: Any) -> str:
    return check_choice("dtype", value, DTYPES)


def check_chunk(value: Any) -> int:
    return check_int("decode_chunk_size", value, 1, MAX_CHUNK)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


# `GenerateParams` fields: None means "the bundle's default" where the field allows it.
GENERATE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "seed": check_seed,
    "steps": _optional(check_steps),
    "guidance": _optional(check_guidance),
    "guidance_interval": _optional(check_guidance_interval),
    "density_scale": check_density_scale,
    "max_strands": _optional(check_max_strands),
    "device": check_device,
    "dtype": check_dtype,
    "crop": lambda v: check_bool("crop", v),
    "keep_texture": lambda v: check_bool("keep_texture", v),
    "decode_chunk_size": _optional(check_chunk),
    "collide": lambda v: check_bool("collide", v),
    "collision_margin": check_collision_margin,
    "curl": lambda v: check_bool("curl", v),
    "hair_reading": lambda v: check_bool("hair_reading", v),
}

# The writer options a request or the CLI sets; `WriteOptions.check` checks how they combine.
WRITE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "points_per_strand": lambda v: check_int("points_per_strand", v, 2, MAX_POINTS),
    "guide_points": _optional(lambda v: check_int("guide_points", v, 2, MAX_POINTS)),
    "preview_points": lambda v: check_int("preview_points", v, 2, MAX_POINTS),
    "guides": lambda v: check_int("guides", v, 0, MAX_GUIDES),
    "guide_method": lambda v: check_choice("guide_method", v, GUIDE_METHODS),
    "preview_fraction": lambda v: check_float("preview_fraction", v, 0.0, 1.0, low_open=True),
    "root_width": lambda v: check_float("root_width", v, 0.0, MAX_WIDTH_M, low_open=True),
    "tip_width": lambda v: check_float("tip_width", v, 0.0, MAX_WIDTH_M, low_open=True),
    "width_variation": lambda v: check_float("width_variation", v, 0.0, 0.95),
    "basis": lambda v: check_choice("basis", v, BASES),
    "units": lambda v: check_choice("units", v, UNITS),
    "lod": lambda v: check_bool("lod", v),
    "scalp": lambda v: check_bool("scalp", v),
    "material": lambda v: check_bool("material", v),
    "lod_selection": lambda v: check_text("lod_selection", v, 32),
    "groom_name": lambda v: check_text("groom_name", v, 128),
}


def _check_all(values: Mapping[str, Any], checks: dict[str, Callable[[Any], Any]],
               what: str, known_only: bool) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{what} must be an object of NAME: VALUE pairs, got {values!r}")
    checked: dict[str, Any] = {}
    unknown = []
    for name, value in values.items():
        check = checks.get(name)
        if check is None:
            unknown.append(str(name))
            checked[name] = value
        else:
            checked[name] = check(value)
    if unknown and not known_only:
        raise ConfigError(f"unknown {what} {', '.join(sorted(unknown))}: valid ones are "
                          f"{', '.join(sorted(checks))}")
    return checked


def check_generate_params(params: Mapping[str, Any], known_only: bool = False) -> dict[str, Any]:
    """Check every generation parameter in `params`; returns them normalised (intervals as
    tuples). With `known_only`, names this module does not know pass through unchecked (an
    engine with parameters of its own decides about them)."""
    return _check_all(params, GENERATE_CHECKS, "generation parameter(s)", known_only)


def check_write_options(options: Mapping[str, Any], known_only: bool = False) -> dict[str, Any]:
    """Check the USD writer options in `options` (types and bounds)."""
    return _check_all(options, WRITE_CHECKS, "USD writer option(s)", known_only)
