"""Run a batch: one model load, items in order, finished ones skipped, bad ones failing alone.

An item is *finished* when its groom exists, every sidecar is beside it, the request recorded in
its material JSON equals the request now (same photo bytes, model, seed, sampling and output
options) and the groom layer's own provenance agrees. Anything else runs again; a photo that
cannot be converted is recorded with its reason and the batch goes on. A summary JSON beside the
outputs is rewritten (atomically) after every item, so a killed run still says how far it got.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tressel import __version__
from tressel.batch.items import BatchItem
from tressel.errors import Cancelled
from tressel.outputs import (
    OutputOptions,
    job_request,
    output_files,
    sidecar,
    stale_temp_files,
    write_job_outputs,
    write_text,
)
from tressel.progress import CancelFlag, ProgressFn, check_cancel

log = logging.getLogger(__name__)

DONE, SKIPPED, FAILED, PENDING = "done", "skipped", "failed", "pending"


@dataclass
class ItemJob:
    """An item with what to generate: per-photo params and output options."""

    item: BatchItem
    params: Any = None  # GenerateParams; None when item.problem says why it cannot run
    options: OutputOptions = field(default_factory=OutputOptions)


@dataclass
class ItemOutcome:
    number: int
    photo: str
    output: str
    status: str = PENDING
    reason: str = ""
    seconds: float = 0.0
    strands: int | None = None


@dataclass
class BatchSummary:
    """What a batch did; written as JSON beside the outputs."""

    output_dir: str
    items: str  # the --items selection, or "all"
    total_items: int  # items in the whole input list
    bundle: dict[str, str]
    device: str
    started_utc: str
    finished_utc: str | None = None
    interrupted: bool = False
    tressel_version: str = __version__
    outcomes: list[ItemOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failed(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {status: self.count(status)
                          for status in (DONE, SKIPPED, FAILED, PENDING)}
        return data


# One hook per batch event, so the CLI draws bars or prints farm progress messages.
@dataclass
class BatchHooks:
    item_started: Callable[[ItemJob, int, int], ProgressFn | None] = lambda job, i, n: None
    item_finished: Callable[[ItemJob, ItemOutcome, int, int], None] = lambda *a: None


def summary_path(output_dir: Path, selection: str | None) -> Path:
    """`tressel_batch.json`, or `tressel_batch.items_3-4.json` for a subset (farm tasks that
    share the output folder each write their own)."""
    if not selection:
        return output_dir / "tressel_batch.json"
    return output_dir / f"tressel_batch.items_{selection.replace(',', '_').replace(':', 'by')}.json"


def photo_request(job: ItemJob, bundle: Any) -> dict[str, Any]:
    """The job's request (hashes the photo; raises ImageError if it cannot be read)."""
    from tressel.bundles import sha256_file
    from tressel.errors import ImageError

    photo = job.item.photo
    if not photo.is_file():
        raise ImageError(f"photo not found: {photo}: check the path (manifest paths are "
                         "relative to the manifest)")
    try:
        digest = sha256_file(photo)
    except OSError as exc:
        raise ImageError(f"cannot read {photo}: {exc.strerror or exc}") from None
    return job_request(digest, bundle, job.params, job.options)


def unfinished_reason(job: ItemJob, request: dict[str, Any]) -> str | None:
    """None when the item's outputs answer `request`; else why it must (re)run."""
    groom = job.item.output
    if not groom.is_file():
        return "not converted yet"
    missing = [p.name for p in output_files(groom, job.options) if not p.is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        recorded = json.loads(sidecar(groom, "material", ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its material JSON is unreadable"
    previous = recorded.get("request") if isinstance(recorded, dict) else None
    if previous != request:
        if not isinstance(previous, dict):
            return "no request recorded"
        changed = sorted(k for k in set(previous) | set(request)
                         if previous.get(k) != request.get(k))
        return "changed: " + ", ".join(changed)
    provenance = groom_provenance(groom)
    if provenance is None:
        return "the groom layer is unreadable"
    wanted = {"image_sha256": request["image_sha256"], "bundle_hash": request["bundle_hash"],
              "seed": request["seed"], "steps": request["steps"]}
    differs = sorted(k for k, v in wanted.items() if getattr(provenance, k) != v)
    if differs:
        return "the groom's provenance differs: " + ", ".join(differs)
    return None


def groom_provenance(groom: Path) -> Any:
    """The TresselGroomAPI provenance of a layer, without loading its strands (None if the file
    is not a readable groom layer)."""
    from pxr import Sdf, Usd
    from tressel.usd.reader import read_provenance

    try:
        layer = Sdf.Layer.FindOrOpen(str(groom))
        if layer is None:
            return None
        layer.Reload()  # a cached layer would hide a file rewritten since
        stage = Usd.Stage.Open(layer, Usd.Stage.LoadNone)
        prim = stage.GetDefaultPrim()
        return read_provenance(prim) if prim else None
    except Exception:  # a damaged file (pxr raises Tf errors): run the item again
        log.debug("cannot read provenance of %s", groom, exc_info=True)
        return None


def run_batch(
    jobs: list[ItemJob],
    bundle: Any,
    summary: BatchSummary,
    summary_file: Path,
    force: bool = False,
    hooks: BatchHooks | None = None,
    cancel: CancelFlag | None = None,
) -> BatchSummary:
    """Convert `jobs` in order into `summary.outcomes`; the models load once, on first need."""
    from tressel.cpu_threads import cpu_job_threads
    from tressel.pipeline import run_generate

    hooks = hooks or BatchHooks()
    summary.outcomes = [ItemOutcome(job.item.number, str(job.item.photo), str(job.item.output))
                        for job in jobs]
    _save(summary, summary_file)
    total = len(jobs)
    stale = stale_temp_files([job.item.output for job in jobs])
    try:
        for index, (job, outcome) in enumerate(zip(jobs, summary.outcomes)):
            check_cancel(cancel)
            start = time.perf_counter()
            progress = hooks.item_started(job, index, total)
            try:
                if job.item.problem:
                    raise _ItemProblem(job.item.problem)
                request = photo_request(job, bundle)
                reason = None if force else unfinished_reason(job, request)
                if not force and reason is None:
                    outcome.status, outcome.reason = SKIPPED, "finished, same request"
                else:
                    log.debug("item %d (%s) runs: %s", job.item.number, job.item.photo,
                              reason or "--force")
                    for leftover in stale.get(job.item.output, []):
                        leftover.unlink(missing_ok=True)
                    with cpu_job_threads(job.params.device, job.item.photo.name):
                        result = run_generate(job.item.photo, bundle, job.params,
                                              progress=progress, cancel=cancel)
                    write_job_outputs(result, job.item.output, job.options, request)
                    outcome.status, outcome.strands = DONE, result.hair.num_strands
                    if index + 1 < total:
                        from tressel.usd.curves import load_compiled_kernel_in_background

                        # More grooms to write: the compiled resampling loop repays its
                        # half-second load (once; it waited for this first groom).
                        load_compiled_kernel_in_background()
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:
                outcome.status, outcome.reason = FAILED, _reason(exc)
                log.debug("item %d failed", job.item.number, exc_info=True)
            outcome.seconds = round(time.perf_counter() - start, 3)
            hooks.item_finished(job, outcome, index, total)
            _save(summary, summary_file)
    except (Cancelled, KeyboardInterrupt):
        summary.interrupted = True
        raise
    finally:
        summary.finished_utc = _now()
        _save(summary, summary_file)
    return summary


class _ItemProblem(Exception):
    """A manifest row that cannot run; its message is the reason."""


def _reason(exc: Exception) -> str:
    from tressel.errors import TresselError

    text = str(exc)
    if not isinstance(exc, (TresselError, _ItemProblem)):
        # Not a user error (out of memory, a bug): keep the type so the log can be searched.
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())  # one line in the table and the task log


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_summary(output_dir: Path, selection: str | None, total_items: int, bundle: Any,
                device: str) -> BatchSummary:
    return BatchSummary(
        output_dir=str(output_dir), items=selection or "all", total_items=total_items,
        bundle={"name": bundle.name, "hash": bundle.content_hash, "path": str(bundle.path)},
        device=device, started_utc=_now(),
    )


def _save(summary: BatchSummary, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(summary.to_json(), indent=1) + "\n")
    except OSError as exc:  # a full disk must not hide which items finished
        print(f"tressel batch: cannot write the summary {path}: {exc}", file=sys.stderr)


def format_table(summary: BatchSummary) -> str:
    """The end-of-batch table: one line per item, then the counts."""
    lines = [f"{'item':>5}  {'status':<8} {'seconds':>8}  photo -> groom (or why it failed)"]
    for o in summary.outcomes:
        seconds = f"{o.seconds:8.1f}" if o.status in (DONE, FAILED) else " " * 8
        detail = f"{Path(o.photo).name} -> {Path(o.output).name}"
        if o.status == FAILED:
            detail = f"{Path(o.photo).name}: {o.reason}"
        elif o.status == DONE and o.strands is not None:
            detail += f" ({o.strands} strands)"
        lines.append(f"{o.number:>5}  {o.status:<8} {seconds}  {detail}")
    counts = ", ".join(f"{summary.count(s)} {s}" for s in (DONE, SKIPPED, FAILED, PENDING)
                       if summary.count(s) or s != PENDING)
    lines.append(f"{len(summary.outcomes)} item(s): {counts}")
    return "\n".join(lines)
