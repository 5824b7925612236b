"""Start the review window (`tressel review`), or render it once to a PNG (`--screenshot`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DESCRIPTION = """\
Tressel's review tool: drop portraits (or folders of them) to make grooms on the daemon, watch
each job's progress, look at the groom in 3D beside its photo and the crop the model saw, try
seed variants side by side, compare two grooms with one camera, and export the one you pick.
Jobs submitted from Maya, Houdini or the command line appear in the queue too.
"""
EPILOG = """\
examples:
  tressel review                               open the window
  tressel review portraits/ a.jpg              queue every photo in portraits/ and a.jpg
  tressel review groom.usdc                    look at a groom layer
  tressel review groom.usdc --screenshot g.png render the window once to g.png and exit

mouse: left drag orbit, middle (or Shift+left) drag pan, right drag or wheel zoom.
keys: F frame, 1/2/3 full/preview/guides, S shading, H head, Ctrl+O open, Ctrl+E export,
      Ctrl+G seed variants, Ctrl+. cancel, Ctrl+R retry, F5 refresh history.
The daemon is started on demand (`tressel daemon start` starts it yourself). Without OpenGL
(for example QT_QPA_PLATFORM=offscreen) the 3D view falls back to a slower QPainter drawing.
"""

DARK_STYLE = """
QWidget { font-size: 12px; }
QMainWindow, QDockWidget { background: #26282b; }
QDockWidget::title { background: #2f3236; padding: 4px; }
QTableWidget { background: #1f2123; gridline-color: #33363a; selection-background-color: #3d5a80; }
QHeaderView::section { background: #2f3236; color: #c8c8c8; border: 0; padding: 4px; }
QProgressBar { border: 1px solid #3a3d41; border-radius: 3px; background: #1f2123;
               text-align: center; color: #d0d0d0; }
QProgressBar::chunk { background: #4f7cac; }
QLabel#note { color: #8f949a; }
QLabel#imagePanel { background: #1d1e20; color: #6f747a; border: 1px solid #303336; }
QPushButton { background: #3a3d41; border: 1px solid #4a4e53; padding: 4px 10px;
              border-radius: 3px; }
QPushButton:hover { background: #45494e; }
QTabBar::tab { background: #2f3236; padding: 5px 14px; }
QTabBar::tab:selected { background: #3d5a80; }
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tressel review", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", type=Path, metavar="PHOTO_OR_GROOM",
                        help="photos or folders of photos to queue; .usd/.usdc/.usda grooms "
                             "to view")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="open the first groom (or the groom of the first photo, made on the "
                             "daemon), render the window once to PNG and exit")
    parser.add_argument("--size", default="1400x860", metavar="WxH",
                        help="window size (default 1400x860; the screenshot's size)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="--screenshot: give up after this many seconds (default 900)")
    parser.add_argument("--daemon-dir", type=Path,
                        help="the daemon's state folder (default: $TRESSEL_DAEMON_DIR, else the "
                             "user's); a daemon is started there when none runs")
    parser.add_argument("--output-dir", type=Path,
                        help="where fetched groom layers are kept (default: "
                             "$TRESSEL_REVIEW_DIR, else the user data folder)")


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
        if width < 200 or height < 150:
            raise ValueError
        return width, height
    except ValueError:
        raise SystemExit(f"tressel review: --size {text!r}: use WIDTHxHEIGHT, e.g. 1400x860 "
                         "(at least 200x150)") from None


def apply_dark_theme(app) -> None:
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QStyleFactory

    app.setStyle(QStyleFactory.create("Fusion"))
    palette = QPalette()
    for role, colour in (
            (QPalette.ColorRole.Window, "#26282b"), (QPalette.ColorRole.WindowText, "#d4d4d4"),
            (QPalette.ColorRole.Base, "#1f2123"), (QPalette.ColorRole.AlternateBase, "#2a2c2f"),
            (QPalette.ColorRole.Text, "#d4d4d4"), (QPalette.ColorRole.Button, "#35383c"),
            (QPalette.ColorRole.ButtonText, "#d4d4d4"), (QPalette.ColorRole.Highlight, "#3d5a80"),
            (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.ToolTipBase,
                                                               "#2f3236"),
            (QPalette.ColorRole.ToolTipText, "#d4d4d4"), (QPalette.ColorRole.PlaceholderText,
                                                          "#6f747a")):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    app.setStyleSheet(DARK_STYLE)


def make_application(argv: list[str] | None = None):
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from tressel_review.views import surface_format

    app = QApplication.instance()
    if app is None:
        QSurfaceFormat.setDefaultFormat(surface_format())
        app = QApplication(argv or ["tressel-review"])
    app.setApplicationName("Tressel Review")
    app.setOrganizationName("Tressel")
    apply_dark_theme(app)
    return app


def save_png_atomic(image, path: Path) -> Path:
    """Write a QImage as PNG through a temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    if not image.save(str(tmp), "PNG"):
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: check the folder exists and is writable")
    os.replace(tmp, path)
    return path


def grab_window(window):
    """The window as rendered now: widgets, with the OpenGL views' framebuffers inside."""
    return window.grab().toImage()


def run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QTimer

    from tressel_review.controller import ReviewController
    from tressel_review.models import expand_inputs
    from tressel_review.window import MainWindow

    if args.daemon_dir:
        os.environ["TRESSEL_DAEMON_DIR"] = str(args.daemon_dir)
    width, height = parse_size(args.size)
    app = make_application([sys.argv[0]])
    controller = ReviewController(output_dir=args.output_dir, history=not args.screenshot)
    window = MainWindow(controller)
    window.resize(width, height)
    window.show()
    if not args.screenshot:
        controller.list_models()
        controller.refresh_history()
        if args.inputs:
            window.open_paths([str(p) for p in args.inputs])
        return app.exec()

    photos, grooms, problems = expand_inputs(args.inputs)
    if problems or not (photos or grooms):
        print("tressel review: --screenshot needs a groom or a photo: "
              + ("; ".join(problems) or "none given"), file=sys.stderr)
        return 2
    outcome = {"code": 1}

    def shoot() -> None:
        save_png_atomic(grab_window(window), args.screenshot)
        print(f"{args.screenshot}: {window.width()}x{window.height()}, groom "
              f"{window.groom_info.text().strip()}")
        outcome["code"] = 0
        app.quit()

    def loaded(_groom) -> None:
        app.processEvents()
        QTimer.singleShot(400, shoot)  # let the views paint once at their final size

    def fail(message: str) -> None:
        print(f"tressel review: {message}", file=sys.stderr)
        app.quit()

    def job_changed(key: str) -> None:
        entry = controller.queue.get(key)
        if entry.state == "failed":
            fail(f"{entry.name}: {entry.message}")
        elif entry.state == "cancelled":
            fail(f"{entry.name}: cancelled")

    controller.groom_loaded.connect(loaded)
    controller.load_failed.connect(lambda key, message: fail(message))
    controller.entry_changed.connect(job_changed)
    if grooms:
        controller.load_file(grooms[0], str(photos[0]) if photos else None)
    else:
        window.open_paths([str(photos[0])])
    QTimer.singleShot(int(args.timeout * 1000), lambda: fail(
        f"no groom to show within {args.timeout:.0f} s (use --timeout)"))
    app.exec()
    controller.shutdown(cancel_jobs=True)  # a failed screenshot leaves no work behind
    return outcome["code"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
