"""The Tressel Groom node's Generate and Cancel buttons: a daemon job that never blocks Houdini.

Generate reads the node's parameters into `GroomOptions` and starts a `tressel.hosting.HostJob`
(connect, submit, progress, fetch on a worker thread). Its callbacks come back through a
`CallQueue` drained by a Houdini event-loop callback, so every `hou` call happens on Houdini's
main thread: progress goes to the node's comment and the status bar; the finished layer,
saved under `$HIP/tressel/`, goes into the node's Groom Layer parameter and the node recooks
(the cook reads the layer, see `tressel_houdini.cook`); a failure is stored on the node, whose
next cook shows it as the node's error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tressel.errors import ConfigError, TresselError
from tressel.hosting import CallQueue, GroomOptions, HostJob, HostResult

from tressel_houdini import ui

log = logging.getLogger(__name__)

OPTION_PARMS = ("photo", "seed", "strands", "points", "guides", "load", "bundle", "crop", "curl",
                "hair_reading", "steps")
OUTPUT_DIR = "$HIP/tressel"

_jobs: dict[int, HostJob] = {}  # node session id -> its running job
_calls = CallQueue()


def options_from_parms(values: dict[str, Any]) -> tuple[str, GroomOptions]:
    """The photo and the job options from the node's evaluated parameters (metres: Houdini)."""
    photo = str(values["photo"]).strip()
    if not photo:
        raise ConfigError("no photo: pick a portrait in Photo, then press Generate")
    load = str(values["load"])
    guides = int(values["guides"])
    if load != "strands" and guides == 0:
        raise ConfigError(f"Load {load} needs guides: set Guide Strands above 0")
    options = GroomOptions(
        seed=int(values["seed"]), strands=str(values["strands"]).strip(),
        points_per_strand=int(values["points"]), units="m", guides=guides,
        bundle=str(values["bundle"]).strip(), steps=int(values["steps"]) or None,
        crop=bool(values["crop"]), curl=bool(values.get("curl", True)),
        hair_reading=bool(values.get("hair_reading", True)),
        import_guides=load != "strands",
    )
    options.check()
    return photo, options


def progress_text(phase: str, step: int, total: int) -> str:
    return f"Tressel: {phase} {step}/{total}" if total else f"Tressel: {phase}..."


def hip_relative(path: Path, hip: str) -> str:
    """`$HIP/tressel/x.usdc` for a file under the scene's folder, so the scene can move."""
    try:
        return "$HIP/" + path.resolve().relative_to(Path(hip).resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def running_job(node: Any) -> HostJob | None:
    job = _jobs.get(node.sessionId())
    return job if job is not None and not job.done else None


# -- button callbacks (Houdini's main thread) --------------------------------------------------


def on_generate(node: Any) -> HostJob | None:
    """Start a groom job for `node`; returns at once (None when nothing was started)."""
    if running_job(node) is not None:
        ui.show_status(node, "Tressel: already generating; press Cancel first", "Warning")
        return None
    if not ui.ui_available():
        raise TresselError("Generate needs Houdini's interface; in hython call "
                           "tressel_houdini.generate(photo, node=node) instead")
    try:
        photo, options = options_from_parms(ui.read_parms(node, OPTION_PARMS))
    except TresselError as exc:
        _show_error(node, str(exc))
        return None
    ui.set_parm(node, "error", "")
    session_id = node.sessionId()
    job = HostJob(
        photo, options, ui.expand(OUTPUT_DIR), call_on_ui_thread=_calls.post,
        on_progress=lambda phase, step, total: _progress(session_id, phase, step, total),
        on_done=lambda result: _done(session_id, result),
        on_error=lambda message: _failed(session_id, message),
        on_cancelled=lambda: _cancelled(session_id),
    )
    _jobs[session_id] = job
    ui.add_event_loop_callback(drain)
    ui.show_status(node, f"Tressel: sending {Path(photo).name} to the daemon...")
    job.start()
    return job


def on_cancel(node: Any) -> None:
    job = running_job(node)
    if job is None:
        ui.show_status(node, "Tressel: nothing to cancel")
        return
    job.cancel()
    ui.show_status(node, "Tressel: cancelling...")


def drain() -> None:
    """Houdini event-loop callback: run the jobs' posted callbacks; unhook when all are done."""
    _calls.drain()
    if all(job.done for job in _jobs.values()):
        _calls.drain()
        _jobs.clear()
        ui.remove_event_loop_callback(drain)


# -- job callbacks (delivered by drain, on the main thread) ------------------------------------


def _progress(session_id: int, phase: str, step: int, total: int) -> None:
    node = ui.node_by_session_id(session_id)
    ui.show_status(node, progress_text(phase, step, total))


def _done(session_id: int, result: HostResult) -> None:
    node = ui.node_by_session_id(session_id)
    text = f"Tressel: {result.path.name} from {Path(result.photo).name}"
    if node is None:  # deleted meanwhile: the layer stays on disk
        ui.show_status(None, text)
        return
    ui.set_parm(node, "layer", hip_relative(result.path, ui.expand("$HIP")))
    ui.set_parm(node, "error", "")
    ui.show_status(node, text)
    ui.recook(node)


def _failed(session_id: int, message: str) -> None:
    _show_error(ui.node_by_session_id(session_id), message)


def _show_error(node: Any | None, message: str) -> None:
    ui.show_status(node, f"Tressel error: {message}", "Error")
    if node is not None:
        ui.set_parm(node, "error", message)
        ui.recook(node)  # the cook raises it: the node shows the error state


def _cancelled(session_id: int) -> None:
    ui.show_status(ui.node_by_session_id(session_id), "Tressel: cancelled")
