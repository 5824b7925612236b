"""The options a host's dialog collects for one groom, and how they become a daemon request.

Standard library only: Maya, Houdini and Blender import this inside their own Python.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from tressel import params
from tressel.params import parse_strands

FORMATS = ("usdc", "usda")


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
    curl: bool = True  # curl strands as the photo reads (bundles with a style head: the demo)
    hair_reading: bool = True  # length and colour measured in the photo (the demo, likewise)
    import_guides: bool = False  # a host concern: also bring guides in as native curves
    format: str = "usdc"

    def check(self) -> None:
        """Raise `ConfigError` with a message an artist can act on (the daemon's own bounds)."""
        params.check_seed(self.seed)
        parse_strands(self.strands)
        if self.steps is not None:
            params.check_steps(self.steps)
        params.check_write_options({"points_per_strand": self.points_per_strand,
                                    "units": self.units, "guides": self.guides,
                                    "lod": self.lod})
        params.check_choice("format", self.format, FORMATS)

    def submit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `tressel.client.Client.submit`."""
        self.check()
        density_scale, max_strands = parse_strands(self.strands)
        params: dict[str, Any] = {"crop": bool(self.crop)}
        if not self.curl:  # on is the daemon's default: requests stay as they were
            params["curl"] = False
        if not self.hair_reading:
            params["hair_reading"] = False
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
