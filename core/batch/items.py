"""What a batch converts: photos from files, folders, globs and manifests, numbered from 1.

The numbering and the output names come from the whole input list, never from a subset, so
`tressel batch INPUTS --items 3-4` on one farm worker names its grooms exactly as a local run
of all items would. Folders are listed in name order; files under the output folder (such as
the `_crop.png` sidecars of an earlier run) and hidden files are never inputs.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tressel.errors import ConfigError
from tressel.outputs import GROOM_SUFFIXES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".exr")
MANIFEST_SUFFIXES = (".csv", ".json")
PHOTO_KEYS = ("photo", "image")
OUTPUT_KEYS = ("output", "name")


@dataclass
class BatchItem:
    """One photo to convert and where its groom goes."""

    number: int  # 1-based position in the whole input list
    photo: Path
    output: Path  # the groom layer
    origin: str  # where the item was listed, for messages ("shots.csv row 4")
    options: dict[str, Any] = field(default_factory=dict)  # a manifest row's generate options
    problem: str | None = None  # why the row cannot run (it fails alone)


@dataclass
class _Entry:
    photo: Path
    origin: str
    name: str | None = None  # the output name the manifest asks for
    options: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def expand_inputs(inputs: list[str | os.PathLike], output_dir: Path) -> list[BatchItem]:
    """Every item of `inputs`, numbered, with its groom path in `output_dir`."""
    output_dir = Path(output_dir)
    entries: list[_Entry] = []
    for spec in inputs:
        entries += _expand_one(str(spec), output_dir)
    if not entries:
        raise ConfigError(f"no photos in {', '.join(str(i) for i in inputs)}: give image files "
                          f"({', '.join(IMAGE_SUFFIXES)}), folders of them, globs or a manifest")
    return _name_outputs(entries, output_dir)


def _expand_one(spec: str, output_dir: Path) -> list[_Entry]:
    path = Path(spec)
    if path.is_dir():
        photos = _photos_in(sorted(path.iterdir(), key=lambda p: p.name), output_dir)
        if not photos:
            raise ConfigError(f"folder {path} holds no photos ({', '.join(IMAGE_SUFFIXES)})")
        return [_Entry(photo, origin=str(path)) for photo in photos]
    if path.is_file():
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            return read_manifest(path)
        return [_Entry(path, origin="command line")]
    if glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        photos = _photos_in([Path(m) for m in matches], output_dir)
        if not photos:
            raise ConfigError(f"{spec!r} matches no photos: check the pattern (quote it so "
                              "that the shell leaves it to tressel)")
        return [_Entry(photo, origin=spec) for photo in photos]
    raise ConfigError(f"input {spec} does not exist: give a photo, a folder, a glob or a "
                      "manifest (.csv, .json)")


def _photos_in(paths: list[Path], output_dir: Path) -> list[Path]:
    out_resolved = output_dir.resolve()
    photos = []
    for path in paths:
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.is_file() or path.resolve().is_relative_to(out_resolved):
            continue
        photos.append(path)
    return photos


def read_manifest(path: Path) -> list[_Entry]:
    """Rows of a CSV (with a header) or JSON (a list of objects) manifest.

    Each row names a `photo` (relative paths are relative to the manifest), optionally an
    `output` name, and any per-photo generate option (seed, steps, strands, points...).
    """
    rows: list[tuple[str, Any]]
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not any(
                    (name or "").strip().lower() in PHOTO_KEYS for name in reader.fieldnames):
                raise ConfigError(f"manifest {path} needs a header row with a 'photo' column "
                                  "(and optionally output, seed, steps, strands, ...)")
            # DictReader counts the header as line 1, so a row's line is its data line.
            rows = [(f"{path.name} line {reader.line_num}", row) for row in reader]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"manifest {path} is not valid JSON ({exc}): fix or re-export "
                              "it") from None
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data = data["items"]
        if not isinstance(data, list):
            raise ConfigError(f"manifest {path} must hold a list of objects such as "
                              '[{"photo": "a.jpg", "seed": 3}] (or {"items": [...]})')
        rows = [(f"{path.name} item {index}", row) for index, row in enumerate(data, 1)]
    entries = []
    for origin, row in rows:
        entries.append(_manifest_entry(origin, row, path.parent))
    if not entries:
        raise ConfigError(f"manifest {path} lists no photos")
    return entries


def _manifest_entry(origin: str, row: Any, base: Path) -> _Entry:
    if not isinstance(row, dict):
        return _Entry(base, origin, problem=f"{origin} is not an object with a 'photo'")
    values = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    if None in row:  # csv: more cells than header columns
        return _Entry(base, origin, problem=f"{origin} has more cells than the header")
    photo = next((values.pop(k) for k in PHOTO_KEYS if k in values), None)
    name = next((values.pop(k) for k in OUTPUT_KEYS if k in values), None)
    if not photo or not str(photo).strip():
        return _Entry(base, origin, problem=f"{origin} names no photo")
    photo_path = Path(str(photo).strip()).expanduser()
    if not photo_path.is_absolute():
        photo_path = base / photo_path
    return _Entry(photo_path, origin, name=str(name).strip() if name else None,
                  options=values)


def _name_outputs(entries: list[_Entry], output_dir: Path) -> list[BatchItem]:
    """Groom paths: a manifest's name where given, else the photo's stem (stem_2, stem_3...
    for repeats). Names compare case-insensitively, as on macOS and Windows farm workers."""
    taken: dict[str, str] = {}
    explicit: dict[int, Path] = {}
    for index, entry in enumerate(entries):
        if entry.name is None or entry.problem:
            continue
        relative = _checked_name(entry.name, entry.origin)
        key = relative.as_posix().casefold()
        if key in taken:
            raise ConfigError(f"{entry.origin} and {taken[key]} both write {relative}: give "
                              "each row its own output name")
        taken[key] = entry.origin
        explicit[index] = output_dir / relative
    items = []
    for index, entry in enumerate(entries):
        output = explicit.get(index)
        if output is None:
            stem, count = entry.photo.stem or "groom", 1
            candidate = f"{stem}.usdc"
            while candidate.casefold() in taken:
                count += 1
                candidate = f"{stem}_{count}.usdc"
            taken[candidate.casefold()] = entry.origin
            output = output_dir / candidate
        items.append(BatchItem(number=index + 1, photo=entry.photo, output=output,
                               origin=entry.origin, options=entry.options,
                               problem=entry.problem))
    return items


def _checked_name(name: str, origin: str) -> PurePosixPath:
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.name \
            or Path(name).is_absolute():
        raise ConfigError(f"{origin}: output {name!r} must be a name inside the output folder "
                          "(no absolute path, no '..')")
    if relative.suffix.lower() not in GROOM_SUFFIXES:
        relative = relative.with_name(relative.name + ".usdc")
    return relative


def parse_item_ranges(text: str, count: int) -> list[int]:
    """`3-7`, `1-3,9` or `1-9:2` (Open Job Description range syntax) -> item numbers, sorted.

    Numbers start at 1 and must not pass `count`.
    """
    numbers: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            span, _, step_text = part.partition(":")
            lo_text, dash, hi_text = span.partition("-")
            lo = int(lo_text)
            hi = int(hi_text) if dash else lo
            step = int(step_text) if step_text else 1
            if step < 1 or lo < 1 or hi < lo:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--items {text!r}: give item numbers from 1 such as 3-7, 1-3,9 "
                              "or 1-9:2") from None
        if hi > count:
            raise ConfigError(f"--items {text!r}: item {hi} is past the last of the {count} "
                              "items (`tressel batch INPUTS --list` numbers them)")
        numbers.update(range(lo, hi + 1, step))
    if not numbers:
        raise ConfigError(f"--items {text!r} selects no item")
    return sorted(numbers)


def format_item_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 9] -> "1-3,9"."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = prev = None
    for n in [*ordered, None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ",".join(parts)
