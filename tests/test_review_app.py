"""The review window (pytest-qt) against a real daemon process with the tiny random bundle.

Plain widgets run on Qt's `offscreen` platform here (the 3D views fall back to the painter);
the OpenGL view is checked from rendered pixels under Xvfb in test_review_gl.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication

import numpy as np
import pytest
from daemon_support import FAST, write_png
from review_support import REVIEW_DIR  # noqa: F401  (puts tressel_review on sys.path)

pytest.importorskip("pytestqt", reason="pytest-qt is part of the test extra")
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from tressel_review.controller import ReviewController
from tressel_review.models import ReviewOptions
from tressel_review.window import MainWindow

# What the parameter panel sends for the tiny bundle: few strands, points and steps, no crop.
TINY = ReviewOptions(strands=str(FAST["max_strands"]), steps=FAST["steps"], crop=False,
                     points_per_strand=8, guides=8, units="cm")
JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def daemon(tiny_daemon):
    return tiny_daemon


@pytest.fixture
def window(qtbot, daemon, tmp_path):
    _, client = daemon
    controller = ReviewController(connect=lambda: client, output_dir=tmp_path / "grooms",
                                  history=False)
    settings = QSettings(str(tmp_path / "review.ini"), QSettings.Format.IniFormat)
    win = MainWindow(controller, settings)
    win.parameters.set_options(TINY)
    qtbot.addWidget(win)
    win.show()
    yield win
    controller.shutdown(cancel_jobs=True)


def drop(win: MainWindow, paths) -> None:
    """A real drop event, as a file manager would send it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    win.dropEvent(event)


def wait_states(qtbot, win: MainWindow, keys, states=("succeeded",), timeout=JOB_TIMEOUT_MS):
    queue = win.controller.queue

    def finished():
        assert all(queue.get(k).state in states for k in keys), \
            [(queue.get(k).state, queue.get(k).message) for k in keys]

    qtbot.waitUntil(finished, timeout=timeout)


def test_two_dropped_photos_both_finish_and_the_queue_shows_them_done(qtbot, window, tmp_path):
    photos = [write_png(tmp_path / f"p{i}.png", seed=10 + i) for i in range(2)]
    drop(window, photos)
    queue = window.controller.queue
    assert [e.name for e in queue] == ["p0.png", "p1.png"]
    keys = [e.key for e in queue]
    seen_progress = []
    window.controller.entry_changed.connect(
        lambda key: seen_progress.append(queue.get(key).phase))
    wait_states(qtbot, window, keys)
    assert [window.queue_panel.status_of(k) for k in keys] == ["done", "done"]
    assert all(queue.get(k).layer.is_file() for k in keys)
    assert "diffusion" in seen_progress  # per-phase progress reached the panel
    bars = [window.queue_panel.table.cellWidget(r, 3).value() for r in range(2)]
    assert bars == [1000, 1000]
    assert window.queue_panel.summary.text() == "2 succeeded"
    # The finished groom is shown: selecting it loads the layer into the viewer.
    window.queue_panel.select(keys[1])
    qtbot.waitUntil(lambda: window.current is not None and window.current_key == keys[1],
                    timeout=120_000)
    assert window.current.scene.strands.num_curves == FAST["max_strands"]
    assert window.current.scene.scalp_vertices is not None  # ReviewOptions asks for the scalp
    assert window.viewer.photo.has_image() and window.viewer.crop.has_image()
    # The history poll knows these jobs are ours: no second row for them.
    with qtbot.waitSignal(window.controller.history_failed, timeout=2000, raising=False):
        window.controller.refresh_history()
    qtbot.waitUntil(lambda: not window.controller._history_busy, timeout=30_000)
    assert [e.origin for e in queue if e.job_id in {queue.get(k).job_id for k in keys}] == \
        ["local", "local"]


def test_cancel_one_job_mid_run(qtbot, window, tmp_path):
    long = ReviewOptions.from_dict({**TINY.to_dict(), "steps": 1000})
    window.parameters.set_options(long)
    entries = window.open_paths([write_png(tmp_path / "slow.png", seed=30)])
    key = entries[0].key
    queue = window.controller.queue
    qtbot.waitUntil(lambda: queue.get(key).phase == "diffusion", timeout=JOB_TIMEOUT_MS)
    window.queue_panel.select(key)
    window.cancel_selected()
    wait_states(qtbot, window, [key], states=("cancelled",), timeout=120_000)
    assert window.queue_panel.status_of(key) == "cancelled"
    job = window.controller.connect().job(queue.get(key).job_id)
    assert job.state == "cancelled"
    assert job.step < 1000  # it stopped mid-run, not at the end
    assert queue.get(key).layer is None
    # Retry runs it again (here with the short settings) to the end.
    queue.get(key).options = TINY
    window.retry_selected()
    wait_states(qtbot, window, [key])


def test_a_corrupt_photo_shows_the_daemons_message(qtbot, window, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    entries = window.open_paths([bad])
    key = entries[0].key
    wait_states(qtbot, window, [key], states=("failed",), timeout=120_000)
    message = window.controller.queue.get(key).message
    assert "broken.png" in message  # the daemon names the user's file ...
    status = window.queue_panel.status_of(key)
    assert status == f"failed: {message}"  # ... and the panel shows its words
    window.queue_panel.select(key)
    assert message in window.statusBar().currentMessage()


def test_seed_grid_with_three_seeds_yields_three_distinct_grooms(qtbot, window, tmp_path):
    from tressel.usd import read_groom

    photo = write_png(tmp_path / "face.png", seed=40)
    entries = window.seed_variants(str(photo), count=3)
    assert [e.seed for e in entries] == [0, 1, 2]
    keys = [e.key for e in entries]
    wait_states(qtbot, window, keys)
    tiles = window.seed_tiles
    qtbot.waitUntil(lambda: all(tiles[k].viewport._buffers is not None for k in keys),
                    timeout=120_000)
    positions = [read_groom(window.controller.queue.get(k).layer).positions for k in keys]
    for i in range(3):
        for j in range(i + 1, 3):
            assert positions[i].shape != positions[j].shape or \
                not np.allclose(positions[i], positions[j])
    assert all(t.caption.text().startswith(f"seed {i}:") for i, t in enumerate(tiles.values()))
    window.pick(keys[2])
    assert window.picked_key == keys[2] and window.parameters.seed.value() == 2
    qtbot.waitUntil(lambda: window.current_key == keys[2] and window.current is not None
                    and window.current.entry_key == keys[2], timeout=120_000)
    # Compare two of them side by side: one camera drives both views.
    window.compare(keys[0], 0)
    window.compare(keys[1], 1)
    left, right = window.compare_views
    qtbot.waitUntil(lambda: left._buffers is not None and right._buffers is not None,
                    timeout=120_000)
    assert left.link is right.link
    before = right.link.camera.revision
    left.link.camera.orbit(30, 5)
    left.link.notify()
    assert right.link.camera.revision > before


def test_export_writes_a_valid_layer(qtbot, window, tmp_path):
    from tressel.usd.validate import validate_layer

    entries = window.open_paths([write_png(tmp_path / "sitter.png", seed=50)])
    key = entries[0].key
    wait_states(qtbot, window, [key])
    window.queue_panel.select(key)
    folder = tmp_path / "delivery"
    with qtbot.waitSignal(window.controller.exported, timeout=120_000) as blocker:
        window.export_current(str(folder))
    report = blocker.args[0]
    names = sorted(p.name for p in report.written)
    assert names == ["sitter_s0.usdc", "sitter_s0_crop.png", "sitter_s0_material.json"]
    errors = [i for i in validate_layer(folder / "sitter_s0.usdc") if i.severity == "error"]
    assert errors == []
    assert "exported" in window.statusBar().currentMessage()


def test_history_shows_jobs_submitted_elsewhere(qtbot, window, daemon, tmp_path):
    _, client = daemon
    photo = write_png(tmp_path / "from_maya.png", seed=60)
    # What the Maya host sends, straight to the daemon (not through this window).
    job = client.submit(photo, seed=9, **{k: v for k, v in TINY.submit_kwargs().items()
                                          if k != "seed"})
    client.wait(job.id, timeout=120)
    window.controller.refresh_history()
    queue = window.controller.queue
    qtbot.waitUntil(lambda: queue.by_job_id(job.id) is not None, timeout=30_000)
    entry = queue.by_job_id(job.id)
    assert entry.origin == "daemon" and entry.name == "from_maya.png" and entry.seed == 9
    assert entry.state == "succeeded"
    row = window.queue_panel.keys.index(entry.key)
    assert window.queue_panel.table.item(row, 4).text() == "daemon"
    window.queue_panel.select(entry.key)  # fetched from the daemon and shown
    qtbot.waitUntil(lambda: window.current is not None and window.current_key == entry.key,
                    timeout=120_000)
    assert window.current.scene.strands.num_curves == FAST["max_strands"]


def test_parameters_persist_in_qsettings(qtbot, daemon, tmp_path):
    _, client = daemon
    path = str(tmp_path / "settings.ini")
    first = MainWindow(ReviewController(connect=lambda: client, history=False),
                       QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    wanted = ReviewOptions(seed=12, strands="0.5x", points_per_strand=24, units="m", guides=50,
                           lod=True, steps=9, guidance=2.5, crop=False, hair_reading=False)
    assert first.parameters.hair_reading.isChecked()  # on unless turned off
    first.parameters.set_options(wanted)
    assert not first.parameters.hair_reading.isChecked()
    first.lod_box.setCurrentText("guides")
    first.close()
    second = MainWindow(ReviewController(connect=lambda: client, history=False),
                        QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.parameters.options() == wanted
    assert second.parameters.options().submit_kwargs()["params"]["hair_reading"] is False
    assert second.lod_box.currentText() == "guides"
    # The bundle list and its defaults come from the daemon.
    with qtbot.waitSignal(second.controller.models_listed, timeout=30_000):
        second.controller.list_models()
    assert second.parameters.bundle.count() >= 2
    assert "bundle defaults" in second.parameters.defaults_note.text()


def test_view_responds_to_mouse_and_keyboard(qtbot, window, tmp_path):
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest
    from review_support import write_layer

    layer = write_layer(tmp_path / "look.usdc", num_strands=300)
    with qtbot.waitSignal(window.controller.groom_loaded, timeout=120_000):
        window.open_paths([str(layer)])
    qtbot.waitUntil(lambda: window.current is not None, timeout=30_000)
    view = window.viewer.viewport.view
    camera = window.viewer.viewport.link.camera
    yaw, distance, target = camera.yaw, camera.distance, camera.target.copy()
    centre = view.rect().center()
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(view, centre + QPoint(40, 0))
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(40, 0))
    assert camera.yaw != yaw  # orbit
    QTest.mousePress(view, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(view, centre + QPoint(0, 30))
    QTest.mouseRelease(view, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(0, 30))
    assert not np.allclose(camera.target, target)  # pan
    QTest.mousePress(view, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(view, centre + QPoint(30, -30))
    QTest.mouseRelease(view, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(30, -30))
    assert camera.distance < distance  # zoom in
    window.activateWindow()
    window.frame_action.trigger()  # F: back to the whole groom
    assert camera.distance == pytest.approx(distance)
    for key, lod in ((Qt.Key.Key_2, "preview"), (Qt.Key.Key_3, "guides"),
                     (Qt.Key.Key_1, "full")):
        QTest.keyClick(window, key)
        assert window.view_state.lod == lod
        assert view.buffers is window.current.buffers[lod]
    shading = window.view_state.shading
    QTest.keyClick(window, Qt.Key.Key_S)
    assert window.view_state.shading != shading
    QTest.keyClick(window, Qt.Key.Key_H)
    assert window.view_state.show_head is False
    assert window.current.buffers["preview"].num_curves == 30
    assert window.current.buffers["guides"].num_curves == 20
    # Export works for a groom opened from a file too (no photo: no crop, and it says so).
    with qtbot.waitSignal(window.controller.exported, timeout=60_000) as blocker:
        window.export_current(str(tmp_path / "out"))
    report = blocker.args[0]
    assert sorted(p.name for p in report.written) == ["look.usdc", "look_material.json"]
    assert report.skipped and "photo" in report.skipped[0]


def test_a_slower_earlier_load_does_not_replace_the_groom_asked_for_last(window, tmp_path):
    from review_support import write_layer
    from tressel_review.controller import load_groom

    first = load_groom(write_layer(tmp_path / "a.usdc", num_strands=50), None, "local-a")
    last = load_groom(write_layer(tmp_path / "b.usdc", num_strands=60, seed=1), None, "local-b")
    window.current_key = "local-b"  # the user selected b after a, before anything showed
    window.controller.groom_loaded.emit(first)  # a's load finishes first: not wanted any more
    assert window.current is None
    window.controller.groom_loaded.emit(last)
    assert window.current is last and window.current_key == "local-b"
    assert window.current.scene.strands.num_curves == 60
