"""Tressel's codeless USD schema (`TresselGroomAPI`): registration, and regeneration from source.

The source of truth is `usd_schemas/schema.usda` at the repository root (where pipeline TDs
look for it and can add the folder to PXR_PLUGINPATH_NAME). usdGenSchema turns it into
`generatedSchema.usda` and `plugInfo.json`; `python -m tressel.usd.schema` runs it and mirrors
all three files into `tressel/data/usd_schemas/`, which setup.py's package_data ships in the
wheel. Tressel registers the packaged copy, so an editable checkout and an installed wheel find
the schema the same way; a test keeps the two folders identical.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from pxr import Plug, Sdf, Usd
from tressel.errors import ConfigError

log = logging.getLogger(__name__)

GROOM_API = "TresselGroomAPI"
SCHEMA_FILES = ("schema.usda", "generatedSchema.usda", "plugInfo.json")
PACKAGE_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "usd_schemas"
SOURCE_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "usd_schemas"  # checkout only

# usdGenSchema leaves these for CMake; a codeless, resource-only plugin points at its folder.
PLUG_INFO_PLACEHOLDERS = {
    "@PLUG_INFO_LIBRARY_PATH@": "",
    "@PLUG_INFO_RESOURCE_PATH@": ".",
    "@PLUG_INFO_ROOT@": ".",
}

_lock = threading.Lock()
_registered = False


def register_schemas() -> bool:
    """Register Tressel's USD schema plugin once per process; True when USD knows the schema.

    USD builds its schema registry once, the first time a stage is opened, so registration
    only takes effect if it happens before that: `tressel.usd` does it when imported. Layers
    written after a late registration are the same (Tressel authors every attribute with its
    type), only this process cannot look the schema up.
    """
    global _registered
    with _lock:
        if not _registered:
            plug_info = PACKAGE_SCHEMA_DIR / "plugInfo.json"
            if not plug_info.is_file():
                raise ConfigError(
                    f"Tressel's USD schema is missing ({plug_info}): reinstall tressel, or run "
                    "`python -m tressel.usd.schema` in a checkout"
                )
            Plug.Registry().RegisterPlugins(str(PACKAGE_SCHEMA_DIR))
            _registered = True
            known = Usd.SchemaRegistry().FindAppliedAPIPrimDefinition(GROOM_API) is not None
            if not known:
                log.warning(
                    "USD opened a stage before Tressel registered %s, so this process cannot "
                    "look the schema up: import tressel.usd before other USD work, or add %s "
                    "to PXR_PLUGINPATH_NAME", GROOM_API, PACKAGE_SCHEMA_DIR,
                )
        return Usd.SchemaRegistry().FindAppliedAPIPrimDefinition(GROOM_API) is not None


def groom_attribute_types() -> dict[str, str]:
    """Attribute name -> USD value type name of TresselGroomAPI, read from the packaged
    generatedSchema.usda, so the writer can author typed attributes even after a late
    registration."""
    layer = Sdf.Layer.FindOrOpen(str(PACKAGE_SCHEMA_DIR / "generatedSchema.usda"))
    if layer is None:
        raise ConfigError(f"cannot read {PACKAGE_SCHEMA_DIR / 'generatedSchema.usda'}: "
                          "reinstall tressel")
    spec = layer.GetPrimAtPath(f"/{GROOM_API}")
    return {attr.name: str(attr.typeName) for attr in spec.attributes}


def generate(schema_usda: Path, out_dir: Path) -> None:
    """Run usdGenSchema on `schema_usda` and write generatedSchema.usda and plugInfo.json to
    `out_dir`, with plugInfo paths set for a resource-only plugin."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copyfile(schema_usda, work / "schema.usda")
        proc = subprocess.run(
            [sys.executable, "-m", "pxr.Usd.usdGenSchema", "--quiet", "schema.usda", "."],
            cwd=work, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise ConfigError(f"usdGenSchema failed on {schema_usda}:\n{proc.stderr.strip()}")
        plug_info = (work / "plugInfo.json").read_text()
        for placeholder, value in PLUG_INFO_PLACEHOLDERS.items():
            plug_info = plug_info.replace(placeholder, value)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "plugInfo.json").write_text(plug_info)
        shutil.copyfile(work / "generatedSchema.usda", out_dir / "generatedSchema.usda")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tressel.usd.schema",
        description="Regenerate Tressel's USD schema files from usd_schemas/schema.usda and "
        "mirror them into the package data folder.",
    )
    parser.add_argument("--source", type=Path, default=SOURCE_SCHEMA_DIR)
    args = parser.parse_args(argv)
    generate(args.source / "schema.usda", args.source)
    PACKAGE_SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name in SCHEMA_FILES:
        shutil.copyfile(args.source / name, PACKAGE_SCHEMA_DIR / name)
    print(f"wrote {', '.join(SCHEMA_FILES)} to {args.source} and {PACKAGE_SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
