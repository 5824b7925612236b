"""The one running groom job: a `tressel.hosting.HostJob` whose callbacks a Blender timer drains.

The job's daemon work runs on a worker thread; its callbacks are posted to a `CallQueue` and
run by `poll_job`, which `bpy.app.timers` calls on Blender's main thread (tests, where timers
never fire in background Blender, call `poll_job` themselves). `poll_job` shows progress in
the panel and the status bar and, when the groom is ready, imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from . import groom_import

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1


@dataclass
class JobState:
    """What the panel shows; module state, never saved in the .blend file."""

    job: Any = None  # tressel.hosting.HostJob while one runs
    calls: Any = None  # its tressel.hosting.CallQueue
    photo: str = ""
    scene_name: str = ""
    head_name: str = ""
    attach: str = "NEAREST"
    import_guides: bool = False
    phase: str = ""
    step: int = 0
    total: int = 0
    message: str = ""  # the last outcome: a done line, the daemon's error, a warning
    failed: bool = False
    imported: Any = None  # groom_import.ImportedGroom of the last success
    warnings: list[str] = field(default_factory=list)
    progress_shown: bool = False  # the window manager's progress indicator is up

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    @property
    def progress_text(self) -> str:
        if not self.phase:
            return "starting"
        if self.total:
            return f"{self.phase} {self.step}/{self.total}"
        return self.phase

    @property
    def fraction(self) -> float:
        return min(self.step / self.total, 1.0) if self.total else 0.0


STATE = JobState()


def start_job(photo: str, options: Any, output_dir: str | Path, *, scene_name: str,
              head_name: str = "", attach: str = "NEAREST") -> JobState:
    """Start a groom job for `photo`; `poll_job` (a timer) follows it. One job at a time."""
    from tressel.hosting import CallQueue, HostJob

    global STATE
    if STATE.running:
        raise RuntimeError("a Tressel job is already running: wait for it or cancel it")
    calls = CallQueue()
    # A fresh state per job; the callbacks below read the module's STATE when they run.
    STATE = JobState(calls=calls, photo=photo, scene_name=scene_name, head_name=head_name,
                     attach=attach, import_guides=bool(options.import_guides))
    STATE.job = HostJob(photo, options, output_dir, call_on_ui_thread=calls.post,
                        on_progress=_on_progress, on_done=_on_done, on_error=_on_error,
                        on_cancelled=_on_cancelled)
    STATE.job.start()
    _show_status()
    if not bpy.app.timers.is_registered(poll_job):
        bpy.app.timers.register(poll_job, first_interval=POLL_SECONDS)
    return STATE


def cancel_job() -> bool:
    """Ask the daemon to stop the running job; False when none runs."""
    if not STATE.running:
        return False
    STATE.phase = "cancelling"
    STATE.job.cancel()
    _show_status()
    return True


def poll_job() -> float | None:
    """Run the job's posted callbacks on this (the main) thread; the timer's next interval.

    Returns None (the timer stops) once the job has ended and its outcome is handled.
    """
    if STATE.calls is None:
        return None
    STATE.calls.drain()
    _redraw()
    if STATE.job is None or STATE.job.done:
        _clear_status()
        return None
    return POLL_SECONDS


# -- callbacks, on the main thread -------------------------------------------------------------


def _on_progress(phase: str, step: int, total: int) -> None:
    if STATE.phase == "cancelling":
        return
    STATE.phase, STATE.step, STATE.total = phase, step, total
    _show_status()


def _on_done(result: Any) -> None:
    from tressel.hosting import node_name

    scene = bpy.data.scenes.get(STATE.scene_name)
    head = bpy.data.objects.get(STATE.head_name) if STATE.head_name else None
    if STATE.head_name and head is None:
        STATE.warnings.append(f"head {STATE.head_name} is gone: the hair is not attached")
    try:
        with _scene_context(scene):
            imported = groom_import.import_groom(
                result.path, node_name(result.photo), head=head, attach=STATE.attach,
                import_guides=STATE.import_guides)
    except Exception as exc:  # the artist must see why; the scene is already restored
        log.exception("importing %s failed", result.path)
        _finish(f"the groom was made ({result.path}) but its import failed: {exc}", failed=True)
        return
    STATE.imported = imported
    STATE.warnings += imported.warnings
    curves = len(imported.strands.data.curves)
    attached = f", on {head.name}" if imported.head is not None else ""
    _finish(f"{imported.root.name}: {curves} strands{attached} ({Path(result.path).name})")
    try:
        bpy.ops.ed.undo_push(message="Tressel groom")
    except RuntimeError:  # no undo stack (background Blender): nothing to push onto
        pass


def _on_error(message: str) -> None:
    _finish(message, failed=True)


def _on_cancelled() -> None:
    _finish("cancelled: nothing was imported")


def _finish(message: str, failed: bool = False) -> None:
    STATE.message = message + "".join(f"\n{w}" for w in STATE.warnings)
    STATE.failed = failed
    STATE.phase = ""
    (log.error if failed else log.info)("Tressel: %s", STATE.message)


# -- Blender UI plumbing -----------------------------------------------------------------------


class _scene_context:
    """Import into the job's scene, through a window that shows it when there is one."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.override = None

    def __enter__(self) -> None:
        if self.scene is None:
            return
        window = next((w for w in bpy.context.window_manager.windows
                       if w.scene == self.scene), None)
        kwargs = {"scene": self.scene, "view_layer": self.scene.view_layers[0]}
        if window is not None:
            kwargs = {"window": window, "scene": self.scene, "view_layer": window.view_layer}
        self.override = bpy.context.temp_override(**kwargs)
        self.override.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.override is not None:
            self.override.__exit__(*exc)


def _windows() -> list[Any]:
    wm = bpy.context.window_manager
    return list(wm.windows) if wm is not None else []


def _show_status() -> None:
    """The job's phase in every window's status bar, and the window manager's progress."""
    text = f"Tressel: {STATE.progress_text}"
    for window in _windows():
        try:
            with bpy.context.temp_override(window=window):
                window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError, TypeError):
            pass
    wm = bpy.context.window_manager
    if wm is not None and _windows() and STATE.total:
        try:
            if not STATE.progress_shown:
                wm.progress_begin(0, 1000)
                STATE.progress_shown = True
            wm.progress_update(int(1000 * STATE.fraction))
        except RuntimeError:
            pass


def _clear_status() -> None:
    wm = bpy.context.window_manager
    for window in _windows():
        try:
            with bpy.context.temp_override(window=window):
                window.workspace.status_text_set(None)
        except (AttributeError, RuntimeError, TypeError):
            pass
    if wm is not None and STATE.progress_shown:
        STATE.progress_shown = False
        try:
            wm.progress_end()
        except RuntimeError:
            pass


def _redraw() -> None:
    for window in _windows():
        screen = window.screen
        for area in screen.areas if screen else ():
            if area.type in ("VIEW_3D", "STATUSBAR"):
                area.tag_redraw()
