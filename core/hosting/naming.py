"""Where a host saves a groom: `<folder>/<photo>_s<seed>.<ext>`, never over another groom.

Standard library only (runs inside DCC Pythons).
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def groom_stem(photo: str | os.PathLike[str], seed: int) -> str:
    """`portrait_s3` for `/shots/portrait.jpg` and seed 3 (unsafe characters become `_`)."""
    stem = Path(photo).stem
    clean = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "groom"
    return f"{clean}_s{int(seed)}"


def reserve_output(folder: str | os.PathLike[str], photo: str | os.PathLike[str], seed: int,
                   ext: str = "usdc") -> Path:
    """Create and return an empty, new file for the groom of `photo` with `seed` in `folder`.

    The first free name of `portrait_s3.usdc`, `portrait_s3_2.usdc`, ... is claimed with an
    exclusive create, so two jobs (or two DCC sessions) never pick the same file. The caller
    fills it by an atomic replace, or removes it if the job does not succeed (`release`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = groom_stem(photo, seed)
    for index in range(1, 10_000):
        name = f"{stem}.{ext}" if index == 1 else f"{stem}_{index}.{ext}"
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise OSError(f"{folder} already holds 10,000 grooms named {stem}: choose another folder")


def release(path: Path | None) -> None:
    """Remove a reserved file that was never filled (an empty placeholder only)."""
    if path is None:
        return
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass
