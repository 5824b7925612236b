"""What the Tressel shelf button does, as plain Python: options, job, progress, cancel, result.

Maya is reached only through `tressel_maya.scene` and Qt only through `tressel_maya.qt`, so
tests drive this module whole against a fake Maya and a real daemon. Threads: every function
here runs on Maya's main thread except the bodies of `_fetch_bundles` and `_escape_ticker`,
which talk to the daemon or sleep and hand their results back with `scene.defer`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

import tressel
from tressel import client as tressel_client
from tressel.errors import ConfigError, TresselError
from tressel.hosting import GroomOptions, HostJob, HostResult, node_name, run_groom_job
from tressel.hosting.jobs import ConnectFn, default_connect

from tressel_maya import scene

log = logging.getLogger(__name__)

TITLE = "Tressel"
OPTION_VAR = "tresselGroomOptions"  # JSON of GroomOptions, kept between sessions
PHOTO_VAR = "tresselLastPhoto"
ESCAPE_POLL_SECONDS = 0.15


def _connect_if_running() -> tressel_client.Client:
    """The daemon if one runs; listing bundles must not start one just to fill a menu."""
    return tressel_client.connect(autostart=False)


# How the host reaches the daemon; a studio (or a test) may replace these.
CONNECT: ConnectFn = default_connect
CONNECT_FOR_LIST: ConnectFn = _connect_if_running


class OptionsDialog(Protocol):
    def set_bundles(self, names: list[str], default: str, note: str) -> None: ...


# (photo, options, on_accept(photo, options)) -> a dialog; `tressel_maya.qt` by default.
DialogFactory = Callable[[str, GroomOptions, Callable[[str, GroomOptions], None]], OptionsDialog]


def _qt_dialog(photo: str, options: GroomOptions,
               on_accept: Callable[[str, GroomOptions], None]) -> OptionsDialog:
    from tressel_maya import qt

    return qt.open_options_dialog(photo, options, on_accept, scene.main_window_pointer())


DIALOG: DialogFactory = _qt_dialog

_active: GroomSession | None = None


# -- options -----------------------------------------------------------------------------------


def saved_options() -> tuple[str, GroomOptions]:
    """The last photo and options (from optionVars), or the defaults for a Maya scene."""
    photo = scene.read_option(PHOTO_VAR) or ""
    text = scene.read_option(OPTION_VAR)
    try:
        options = GroomOptions.from_dict(json.loads(text)) if text else GroomOptions()
        options.check()
    except (ValueError, TypeError, TresselError) as exc:  # saved by another version: start over
        log.warning("Tressel: ignoring saved options (%s)", exc)
        options = GroomOptions()
    return photo, options


def save_options(photo: str, options: GroomOptions) -> None:
    scene.write_option(PHOTO_VAR, photo)
    scene.write_option(OPTION_VAR, json.dumps(options.to_dict(), sort_keys=True))


def check_options(options: GroomOptions) -> None:
    """`GroomOptions.check`, plus what only Maya needs: guides to import must exist."""
    options.check()
    if options.import_guides and int(options.guides) == 0:
        raise ConfigError("importing guides as curves needs guide strands: set guides above 0, "
                          "or turn off the guide import")


def make_options(values: dict[str, Any]) -> GroomOptions:
    """`GroomOptions` from keyword arguments, refusing names it does not know."""
    known = {f.name for f in fields(GroomOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}: use "
                          f"{', '.join(sorted(known))}")
    options = GroomOptions(**values)
    check_options(options)
    return options


def groom_folder() -> Path:
    """`<Maya project>/usd/tressel`, where every groom of this project is saved."""
    return Path(scene.workspace_root()) / "usd" / "tressel"


def provenance(result: HostResult) -> dict[str, str]:
    """What the groom's transform carries as string attributes: where it came from."""
    job = result.job
    return {
        "tresselPhoto": str(result.photo),
        "tresselPhotoSha256": job.image_sha256,
        "tresselBundle": job.bundle,
        "tresselBundleHash": job.bundle_hash,
        "tresselSeed": str(job.seed),
        "tresselJobId": job.id,
        "tresselLayer": str(result.path),
        "tresselParams": json.dumps(job.params, sort_keys=True),
        "tresselOptions": json.dumps(result.options.to_dict(), sort_keys=True),
        "tresselVersion": tressel.__version__,
    }


def describe(phase: str, step: int, total: int) -> str:
    label = phase.replace("_", " ")
    return f"Tressel: {label} {step}/{total}" if total else f"Tressel: {label}..."


# -- the shelf button ----------------------------------------------------------------------------


def show() -> OptionsDialog | None:
    """The shelf button: open the options dialog, or offer to cancel the groom in progress."""
    if _active is not None and not _active.finished:
        if scene.ask_yes_no(TITLE, f"A groom of {Path(_active.photo).name} is being made.",
                            yes="Cancel it", no="Keep going"):
            _active.cancel()
        return None
    photo, options = saved_options()
    dialog = DIALOG(photo, options, start)
    _fetch_bundles(dialog)
    return dialog


def _fetch_bundles(dialog: OptionsDialog) -> None:
    """Fill the dialog's model menu from the daemon, from a thread (the UI never waits)."""

    def work() -> None:
        names: list[str] = []
        default, note = "", ""
        try:
            models = CONNECT_FOR_LIST().models()
            names = [str(m["name"]) for m in models]
            default = next((str(m["name"]) for m in models if m.get("default")), "")
        except TresselError as exc:
            note = f"daemon not running: it starts when you press Generate ({exc})"
        except OSError as exc:
            note = f"daemon not reachable: {exc}"
        scene.defer(lambda: dialog.set_bundles(names, default, note))

    threading.Thread(target=work, name="tressel-maya-bundles", daemon=True).start()


def start(photo: str, options: GroomOptions) -> GroomSession | None:
    """The dialog's Generate: check, remember the options, and start the job in the background."""
    global _active
    try:
        check_options(options)
        if not photo or not Path(photo).is_file():
            raise ConfigError(f"photo {photo or '(none)'} not found: pick an existing image file")
    except TresselError as exc:
        scene.show_message(TITLE, str(exc))
        return None
    save_options(photo, options)
    _active = GroomSession(photo, options, groom_folder()).start()
    return _active


def active() -> GroomSession | None:
    return _active


class GroomSession:
    """One groom from the shelf button: a `HostJob` tied to Maya's progress bar and dialogs."""

    def __init__(self, photo: str, options: GroomOptions, output_dir: Path) -> None:
        self.photo = photo
        self.options = options
        self.shape: str | None = None
        self.guides = 0
        self.error: str | None = None
        self.cancelled = False
        self.finished = False
        self.cancel_requested = False
        self._poll_pending = threading.Event()
        self.job = HostJob(photo, options, output_dir, call_on_ui_thread=scene.defer,
                           on_progress=self._progress, on_done=self._done,
                           on_error=self._failed, on_cancelled=self._cancelled,
                           connect=CONNECT)

    def start(self) -> GroomSession:
        scene.progress_begin(f"Tressel: {Path(self.photo).name}")
        self.job.start()
        threading.Thread(target=self._escape_ticker, name="tressel-maya-escape",
                         daemon=True).start()
        return self

    def cancel(self) -> None:
        if not self.finished and not self.cancel_requested:
            self.cancel_requested = True
            scene.progress_update("Tressel: cancelling...", 0, 0)
            self.job.cancel()

    # -- Esc in the main progress bar: polled on the main thread, a few times a second ----------

    def _escape_ticker(self) -> None:  # worker thread: only sleeps and posts
        while not self.finished:
            if not self._poll_pending.is_set():
                self._poll_pending.set()
                scene.defer(self._poll_escape)
            time.sleep(ESCAPE_POLL_SECONDS)

    def _poll_escape(self) -> None:
        self._poll_pending.clear()
        if not self.finished and not self.cancel_requested and scene.progress_cancelled():
            self.cancel()

    # -- HostJob callbacks, on the main thread ---------------------------------------------

    def _progress(self, phase: str, step: int, total: int) -> None:
        if not self.cancel_requested:
            scene.progress_update(describe(phase, step, total), step, total)

    def _finish(self) -> None:
        self.finished = True
        scene.progress_end()

    def _done(self, result: HostResult) -> None:
        self._finish()
        try:
            self.shape, self.guides = scene.bring_in_groom(
                str(result.path), node_name(self.photo), provenance(result),
                self.options.import_guides)
        except scene.SceneError as exc:
            self.error = f"{exc}\n\nThe groom layer is saved at {result.path}."
            scene.show_message(TITLE, self.error)
            return
        log.info("Tressel: %s brought in from %s", self.shape, result.path)

    def _failed(self, message: str) -> None:
        self._finish()
        self.error = message
        scene.show_message(TITLE, f"No groom was made from {Path(self.photo).name}:\n\n{message}")

    def _cancelled(self) -> None:
        self._finish()
        self.cancelled = True
        scene.show_message(TITLE, f"The groom of {Path(self.photo).name} was cancelled; "
                                  "nothing was added to the scene.", error=False)


# -- scripting -----------------------------------------------------------------------------


def generate(photo: str, *, output_dir: str | None = None, **options: Any) -> str:
    """Blocking: make a groom of `photo` and bring it in; returns the proxy shape's path.

    For mayapy and TD scripts (no dialog). `options` are `GroomOptions` fields (seed, strands,
    points_per_strand, units, guides, lod, bundle, steps, crop, curl, hair_reading,
    import_guides, format); the layer goes to `output_dir` or `<project>/usd/tressel`. In an
    interactive Maya the main progress bar shows the job and Esc cancels it. Raises
    `tressel.errors.TresselError` (with the daemon's message) or `tressel_maya.scene.SceneError`;
    the scene is unchanged then.
    """
    chosen = make_options(options)
    folder = Path(output_dir) if output_dir else groom_folder()
    cancel = threading.Event()
    interactive = not scene.is_batch()

    def progress(phase: str, step: int, total: int) -> None:
        log.info(describe(phase, step, total))
        if interactive:
            scene.progress_update(describe(phase, step, total), step, total)
            if scene.progress_cancelled():
                cancel.set()

    if interactive:
        scene.progress_begin(f"Tressel: {Path(photo).name}")
    try:
        result = run_groom_job(photo, chosen, folder, progress=progress, cancel=cancel,
                               connect=CONNECT)
    finally:
        if interactive:
            scene.progress_end()
    shape, _ = scene.bring_in_groom(str(result.path), node_name(photo), provenance(result),
                                    chosen.import_guides)
    return shape
