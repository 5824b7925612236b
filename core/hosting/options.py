"""The options a host's dialog collects for one groom, and how they become a daemon request.

Standard library only: Maya, Houdini and Blender import this inside their own Python.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from tressel.errors import ConfigError

UNITS = ("cm", "m")
FORMATS = ("usdc", "usda")


def parse_strands(text: str | float | None) -> tuple[float, int | None]:
    """`"0.5x"` scales the predicted density; a plain count caps the strands; empty: neither.

    Returns `(density_scale, max_strands)`, as `GenerateParams` takes them.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return 1.0, None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = str(text)
    else:
        value = str(text).strip().lower()
    try:
        if value.endswith("x"):
            scale = float(value[:-1])
            if not scale > 0 or scale > 100:
                raise ValueError
            return scale, None
        count = int(float(value))
        if count < 1 or count != float(value):
            raise ValueError
        return 1.0, count
    except ValueError:
        raise ConfigError(
            f"strands {text!r}: give a maximum count like 20000, or a density scale like 0.5x"
        ) from None


@dataclass
class GroomOptions:
    """What an artist chooses for one groom; the defaults suit a DCC scene.

    `strands` is a count ("20000") or a density scale ("0.5x"); empty keeps the model's density.
    `bundle` empty means the daemon's default model. `steps` None is the bundle's default.
    """

    seed: int = 0
    strands: str = ""
    points_per_strand: int = 32
    units: str = "cm"
    guides: int = 2000
    lod: bool = False
    bundle: str = ""
    steps: int | None = None
    crop: bool = True
    import_guides: bool = False  # a host concern: also bring guides in as native curves
    format: str = "usdc"

    def check(self) -> None:
        """Raise `ConfigError` with a message an artist can act on; the daemon checks again."""
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a whole number of 0 or more, got {self.seed!r}")
        parse_strands(self.strands)
        if not 2 <= int(self.points_per_strand) <= 256:
            raise ConfigError(
                f"points per strand must be between 2 and 256, got {self.points_per_strand}"
            )
        if self.units not in UNITS:
            raise ConfigError(f"units {self.units!r}: use cm or m")
        if int(self.guides) < 0:
            raise ConfigError(f"guides must be 0 (none) or more, got {self.guides}")
        if self.steps is not None and not 1 <= int(self.steps) <= 1000:
            raise ConfigError(f"steps must be between 1 and 1000, got {self.steps}")
        if self.format not in FORMATS:
            raise ConfigError(f"format {self.format!r}: use usdc or usda")

    def submit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `tressel.client.Client.submit`."""
        self.check()
        density_scale, max_strands = parse_strands(self.strands)
        params: dict[str, Any] = {"crop": bool(self.crop)}
        if density_scale != 1.0:
            params["density_scale"] = density_scale
        if max_strands is not None:
            params["max_strands"] = max_strands
        if self.steps is not None:
            params["steps"] = int(self.steps)
        write_options = {
            "points_per_strand": int(self.points_per_strand),
            "units": self.units,
            "guides": int(self.guides),
            "lod": bool(self.lod),
        }
        return {"seed": int(self.seed), "bundle": self.bundle or None, "format": self.format,
                "params": params, "write_options": write_options}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroomOptions:
        """Options saved earlier (unknown keys from other versions are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def node_name(photo: str, prefix: str = "tressel") -> str:
    """A node name safe in Maya, Houdini and Blender: `tressel_<photo stem>`, word chars only."""
    stem = re.split(r"[\\/]", str(photo))[-1].rsplit(".", 1)[0]
    clean = re.sub(r"\W+", "_", stem, flags=re.ASCII).strip("_") or "groom"
    return f"{prefix}_{clean}" if prefix else (clean if not clean[0].isdigit() else f"_{clean}")
