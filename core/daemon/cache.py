"""Finished layers stored under the SHA-256 of everything that determines them.

A key covers the image bytes' hash, the bundle's hash, the canonical generation parameters,
the writer options, the seed, the output format and the Tressel version, so an identical
request is answered with the stored layer without running the model. A layer appears in the
cache only through `os.replace` of a complete, fsynced temp file in the same folder, so a
crash leaves either the whole file or none; leftover temp files are swept at start.

The cache is bounded: every lookup that finds a layer marks it used (its mtime), and
`evict` deletes the least recently used layers until the folder is under its size limit.
A job whose layer was evicted answers 410 and is simply submitted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from tressel import __version__

log = logging.getLogger(__name__)

CACHE_LAYOUT = 1
_TMP_MARK = ".tmp-"
TEMP_DIR = "tmp"  # layers being written; renamed into `<key[:2]>/` when complete


def cache_key(
    image_sha256: str,
    bundle_hash: str,
    params: dict[str, Any],
    write_options: dict[str, Any],
    seed: int,
    fmt: str,
) -> str:
    """The hex SHA-256 naming a result; `params` must already be canonical (defaults filled)."""
    canonical = json.dumps(
        {
            "layout": CACHE_LAYOUT,
            "tressel": __version__,
            "image": image_sha256,
            "bundle": bundle_hash,
            "params": params,
            "write_options": write_options,
            "seed": int(seed),
            "format": fmt,
        },
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResultCache:
    """A folder of layers named `<key[:2]>/<key>.<format>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str, fmt: str) -> Path:
        return self.root / key[:2] / f"{key}.{fmt}"

    def lookup(self, key: str, fmt: str) -> Path | None:
        """The stored layer, marked as just used; None when there is none."""
        path = self.path(key, fmt)
        if _stat(path)[1] == 0:  # missing, or empty
            return None
        try:
            mark_used(path)
        except OSError:  # a read-only cache still answers; only its eviction order suffers
            pass
        return path

    def temp_path(self, key: str, fmt: str) -> Path:
        """A unique temp name in the cache's temp folder (same filesystem, so the rename is
        atomic); it keeps the format's extension because USD picks the file format from it.
        The layer's own folder is made only when a layer is published into it, so a cancelled
        or failed job leaves no empty folder behind."""
        temp_dir = self.root / TEMP_DIR
        temp_dir.mkdir(exist_ok=True)
        return temp_dir / f".{key}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.{fmt}"

    def sweep(self) -> int:
        """Delete temp files that a killed writer left behind, and empty layer folders (only at
        start: none is live)."""
        removed = 0
        for tmp in {*self.root.glob(f"*/.*{_TMP_MARK}*"), *self.root.glob(f"{TEMP_DIR}/*")}:
            try:
                tmp.unlink()
                removed += 1
            except OSError as exc:
                log.warning("cannot remove stale cache temp file %s: %s", tmp, exc)
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name != TEMP_DIR:
                try:
                    folder.rmdir()  # only succeeds when empty
                except OSError:
                    pass
        return removed

    def entries(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*/*")
                      if not p.name.startswith(".") and p.parent.name != TEMP_DIR)

    def usage(self) -> tuple[int, int]:
        """(layers, bytes) stored now."""
        sizes = [_stat(p)[1] for p in self.entries()]
        return len(sizes), sum(sizes)

    def evict(self, max_bytes: int, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used layers until at most `max_bytes` remain; `keep` (the
        layer just written) is never deleted, even when it alone is over the limit."""
        stats = [(_stat(p), p) for p in self.entries()]
        total = sum(size for (_, size), _ in stats)
        removed = []
        for (_, size), path in sorted(stats, key=lambda item: item[0][0]):
            if total <= max_bytes:
                break
            if path == keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot evict %s from the result cache: %s", path, exc)
                continue
            total -= size
            removed.append(path)
        return removed


def _stat(path: Path) -> tuple[int, int]:
    """(last use in ns, size); a file deleted meanwhile counts as empty and long unused."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0, 0
    return st.st_mtime_ns, st.st_size


def mark_used(path: Path) -> None:
    """Set the layer's last use (its mtime) from Python's fine clock: the kernel's own file
    times tick coarsely (milliseconds), so a fetch right after a publish could tie with it and
    evict the wrong layer."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def publish(tmp: Path, final: Path) -> Path:
    """fsync `tmp` and rename it to `final` (then fsync the folder so the rename is durable)."""
    mark_used(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return final
