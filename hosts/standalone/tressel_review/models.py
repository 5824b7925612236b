"""The review tool's queue and job state, without Qt: what the queue panel shows, and why.

Each photo dropped on the window becomes a `QueueEntry`; the controller moves it through
pending -> running -> succeeded/failed/cancelled as `tressel.hosting.HostJob` reports, and
`ReviewQueue.merge_history` adds the daemon's own job list, so jobs submitted from Maya or
Houdini show up beside the local ones. Tests drive all of it without a display.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tressel.errors import ConfigError
from tressel.hosting import GroomOptions

# Image files the daemon decodes (OpenImageIO); folders are searched for these.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".hdr")
GROOM_SUFFIXES = (".usd", ".usdc", ".usda")

# The phases of one job in the order they are reported: the host's own ("connecting", and the
# daemon's "queued"), then tressel.pipeline.PHASES (not imported: it would import torch), then
# the daemon writing the layer. Weights are rough shares of a job's time, for one overall bar.
PHASES = ("connecting", "queued", "load", "image", "face", "encode", "diffusion", "roots",
          "decode", "place", "material", "hair", "collide", "write")
PHASE_WEIGHTS = {"connecting": 1, "queued": 1, "load": 6, "image": 1, "face": 2, "encode": 10,
                 "diffusion": 60, "roots": 2, "decode": 10, "place": 2, "material": 1,
                 "hair": 1, "collide": 8, "write": 4}

STATES = ("pending", "running", "succeeded", "failed", "cancelled")
DAEMON_TO_STATE = {"queued": "running", "running": "running", "succeeded": "succeeded",
                   "failed": "failed", "cancelled": "cancelled"}


@dataclass
class ReviewOptions(GroomOptions):
    """`GroomOptions` plus what only the review tool asks for: guidance and the scalp mesh.

    The scalp is written into the layer (guide purpose) so the viewer can draw the head.
    `guidance` None keeps the bundle's default.
    """

    guidance: float | None = None
    scalp: bool = True

    def check(self) -> None:
        super().check()
        if self.guidance is not None and not 0 <= float(self.guidance) <= 100:
            raise ConfigError(f"guidance must be between 0 and 100, got {self.guidance}")

    def submit_kwargs(self) -> dict[str, Any]:
        kwargs = super().submit_kwargs()
        if self.guidance is not None:
            kwargs["params"]["guidance"] = float(self.guidance)
        kwargs["write_options"]["scalp"] = bool(self.scalp)
        return kwargs

    def with_seed(self, seed: int) -> ReviewOptions:
        return ReviewOptions(**{**self.to_dict(), "seed": int(seed)})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Path],
                                                                     list[str]]:
    """Sort dropped or opened paths into (photos, groom layers, problems).

    A folder contributes the photos directly inside it (sorted by name); anything that is
    neither a photo nor a groom is reported, never silently dropped.
    """
    photos: list[Path] = []
    grooms: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                problems.append(f"{path}: no photos in this folder ({', '.join(PHOTO_SUFFIXES)})")
            photos.extend(found)
        elif not path.is_file():
            problems.append(f"{path}: not found")
        elif path.suffix.lower() in GROOM_SUFFIXES:
            grooms.append(path)
        elif path.suffix.lower() in PHOTO_SUFFIXES:
            photos.append(path)
        else:
            problems.append(f"{path.name}: not a photo or a USD groom; open a "
                            f"{'/'.join(s.lstrip('.') for s in PHOTO_SUFFIXES[:4])} photo")
    return photos, grooms, problems


@dataclass
class QueueEntry:
    """One job in the queue panel: a local submission or one from the daemon's history."""

    key: str
    photo: str
    options: ReviewOptions
    state: str = "pending"
    origin: str = "local"  # "local" (submitted here) or "daemon" (history: Maya, Houdini, CLI)
    job_id: str | None = None
    phase: str = ""
    step: int = 0
    total: int = 0
    phases_seen: list[str] = field(default_factory=list)
    message: str = ""  # the daemon's reason on failure
    layer: Path | None = None
    group: str | None = None  # seed-variant group: entries of one photo run with N seeds
    created_at: float = 0.0
    attempts: int = 1

    @property
    def name(self) -> str:
        return Path(self.photo).name if self.photo else (self.job_id or self.key)

    @property
    def seed(self) -> int:
        return int(self.options.seed)

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def can_cancel(self) -> bool:
        return self.state in ("pending", "running")

    @property
    def can_retry(self) -> bool:
        return self.state in ("failed", "cancelled") and self.origin == "local" \
            and bool(self.photo) and Path(self.photo).is_file()

    def fraction(self) -> float:
        """Overall progress in [0, 1]: finished phases by weight, plus the current step."""
        if self.state == "succeeded":
            return 1.0
        if self.phase not in PHASE_WEIGHTS:
            return 0.0
        index = PHASES.index(self.phase)
        total_weight = sum(PHASE_WEIGHTS.values())
        before = sum(PHASE_WEIGHTS[p] for p in PHASES[:index])
        within = (self.step / self.total) if self.total > 0 and self.phase != "queued" else 0.0
        return min(1.0, (before + PHASE_WEIGHTS[self.phase] * min(within, 1.0)) / total_weight)

    def status_text(self) -> str:
        """What the queue shows in the status column."""
        if self.state == "pending":
            return "waiting"
        if self.state == "succeeded":
            return "done"
        if self.state == "cancelled":
            return "cancelled"
        if self.state == "failed":
            return f"failed: {self.message}" if self.message else "failed"
        if self.phase == "queued":
            return f"queued ({self.step} ahead)" if self.step else "queued (next)"
        if self.phase and self.total:
            return f"{self.phase} {self.step}/{self.total}"
        return self.phase or "running"


class ReviewQueue:
    """Every job the window knows, in the order they were added (history first)."""

    def __init__(self) -> None:
        self.entries: list[QueueEntry] = []
        self._counter = itertools.count(1)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def add(self, photo: str | os.PathLike[str], options: ReviewOptions,
            group: str | None = None) -> QueueEntry:
        options.check()
        entry = QueueEntry(key=f"local-{next(self._counter)}", photo=str(photo),
                           options=options, group=group)
        self.entries.append(entry)
        return entry

    def add_seed_variants(self, photo: str | os.PathLike[str], options: ReviewOptions,
                          seeds: Sequence[int]) -> list[QueueEntry]:
        """The same photo once per seed, as one group (the seed grid shows them together)."""
        if not seeds:
            raise ConfigError("seed variants need at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds {list(seeds)} repeat: each variant needs its own seed")
        group = f"seeds-{next(self._counter)}"
        return [self.add(photo, options.with_seed(seed), group=group) for seed in seeds]

    def get(self, key: str) -> QueueEntry:
        for entry in self.entries:
            if entry.key == key:
                return entry
        raise KeyError(key)

    def by_job_id(self, job_id: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.job_id == job_id), None)

    def group(self, group: str) -> list[QueueEntry]:
        return [e for e in self.entries if e.group == group]

    def row(self, key: str) -> int:
        return next(i for i, e in enumerate(self.entries) if e.key == key)

    # -- state changes (the controller calls these on the UI thread) ---------------------------

    def started(self, key: str) -> QueueEntry:
        entry = self.get(key)
        entry.state, entry.phase, entry.step, entry.total = "running", "connecting", 0, 0
        entry.message, entry.layer, entry.phases_seen = "", None, ["connecting"]
        return entry

    def progress(self, key: str, phase: str, step: int, total: int) -> QueueEntry:
        entry = self.get(key)
        if entry.done:
            return entry  # a late event after cancel must not revive the row
        entry.phase, entry.step, entry.total = phase, int(step), int(total)
        if phase not in entry.phases_seen:
            entry.phases_seen.append(phase)
        return entry

    def submitted(self, key: str, job_id: str) -> QueueEntry:
        entry = self.get(key)
        entry.job_id = job_id
        return entry

    def succeeded(self, key: str, layer: Path, job_id: str | None = None) -> QueueEntry:
        entry = self.get(key)
        entry.state, entry.layer, entry.message = "succeeded", Path(layer), ""
        entry.job_id = job_id or entry.job_id
        return entry

    def failed(self, key: str, message: str) -> QueueEntry:
        entry = self.get(key)
        entry.state, entry.message = "failed", message
        return entry

    def cancelled(self, key: str) -> QueueEntry:
        entry = self.get(key)
        entry.state = "cancelled"
        return entry

    def retry(self, key: str) -> QueueEntry:
        """Reset a failed or cancelled local entry so the controller can run it again."""
        entry = self.get(key)
        if not entry.can_retry:
            raise ConfigError(f"{entry.name} cannot be retried ({entry.state}): only failed or "
                              "cancelled jobs whose photo still exists can")
        entry.state, entry.job_id, entry.message, entry.layer = "pending", None, "", None
        entry.phase, entry.step, entry.total, entry.phases_seen = "", 0, 0, []
        entry.attempts += 1
        return entry

    def merge_history(self, jobs: Iterable[Any]) -> list[QueueEntry]:
        """Add or update entries from the daemon's job list (`client.jobs()`, newest first).

        Jobs this window submitted are left to their own HostJob; the others (other hosts,
        the CLI, an earlier session) appear with origin "daemon". Returns the entries changed.
        """
        changed: list[QueueEntry] = []
        for job in reversed(list(jobs)):  # oldest first, so the list reads in order
            entry = self.by_job_id(job.id)
            if entry is not None and entry.origin == "local":
                continue
            state = DAEMON_TO_STATE.get(job.state, "running")
            created = entry is None
            if entry is None:
                options = ReviewOptions(seed=int(job.seed))
                entry = QueueEntry(key=f"daemon-{job.id}", photo="", options=options,
                                   origin="daemon", job_id=job.id, created_at=job.created_at)
                entry.photo = job.image_name or ""
                self.entries.insert(self._history_insert_point(), entry)
            before = (entry.state, entry.phase, entry.step, entry.message)
            entry.state = state
            entry.phase = "queued" if job.state == "queued" else (job.phase or "")
            entry.step, entry.total = job.step, job.total
            entry.message = job.error or ""
            if created or (entry.state, entry.phase, entry.step, entry.message) != before:
                changed.append(entry)
        return changed

    def _history_insert_point(self) -> int:
        # History rows sit before the local ones, in daemon order.
        return sum(1 for e in self.entries if e.origin == "daemon")

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys(STATES, 0)
        for entry in self.entries:
            result[entry.state] += 1
        return result

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[s]} {s}" for s in ("running", "pending", "succeeded", "failed",
                                                "cancelled") if counts[s]]
        return ", ".join(parts) if parts else "queue empty: drop photos or folders here"
