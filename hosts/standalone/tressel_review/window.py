"""The review window: queue panel, parameter panel, viewer, seed grid and compare tabs.

The window is the view: it shows what `ReviewController` reports and turns clicks, drops and
shortcuts into controller calls. It never talks to the daemon itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from tressel.errors import TresselError

from tressel_review import drawing
from tressel_review.controller import LoadedGroom, ReviewController
from tressel_review.models import (
    PHOTO_SUFFIXES,
    QueueEntry,
    ReviewOptions,
    expand_inputs,
)
from tressel_review.views import CameraLink, GroomViewport, ViewState

log = logging.getLogger(__name__)

COLUMNS = ("photo", "seed", "status", "progress", "from")
SETTINGS_OPTIONS = "options/json"


def numpy_to_pixmap(rgb: np.ndarray | None) -> QPixmap | None:
    if rgb is None:
        return None
    rgb = np.ascontiguousarray(rgb, np.uint8)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())  # copy: the numpy memory may go away


class ImagePanel(QLabel):
    """A picture scaled to fit, keeping its aspect; a note when there is none."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(120, 120)
        self.setObjectName("imagePanel")
        self.set_image(None, "")

    def set_image(self, pixmap: QPixmap | None, note: str) -> None:
        self._pixmap = pixmap
        if pixmap is None:
            self.setPixmap(QPixmap())
            self.setText(f"{self.title}\n{note}" if note else self.title)
        self._rescale()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(self._pixmap.scaled(self.size() - QSize(8, 8),
                                               Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()


class ParameterPanel(QWidget):
    """Bundle, steps, guidance, strands, points, units, guides, LOD, seed: a `ReviewOptions`."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.bundle = QComboBox()
        self.bundle.addItem("daemon default", "")
        self.steps = QSpinBox()
        self.steps.setRange(0, 1000)
        self.steps.setSpecialValueText("bundle default")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(-0.1, 100.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(2)
        self.guidance.setMinimum(-0.1)
        self.guidance.setSpecialValueText("bundle default")
        self.guidance.setValue(-0.1)
        self.strands = QLineEdit()
        self.strands.setPlaceholderText("model density (e.g. 20000 or 0.5x)")
        self.points = QSpinBox()
        self.points.setRange(2, 256)
        self.units = QComboBox()
        self.units.addItems(["cm", "m"])
        self.guides = QSpinBox()
        self.guides.setRange(0, 100_000)
        self.lod = QCheckBox("write lod variants")
        self.crop = QCheckBox("find the face and crop")
        self.curl = QCheckBox("curl as the photo reads")
        self.curl.setToolTip("Models with a style head (the demo) curl strands as they read the "
                             "photo; off keeps them as decoded")
        self.hair_reading = QCheckBox("measure the hair in the photo")
        self.hair_reading.setToolTip("Models with a style head (the demo) take strand length and "
                                     "colour from the hair measured in the photo; off keeps the "
                                     "model's own")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.variants = QSpinBox()
        self.variants.setRange(2, 16)
        self.variants.setValue(4)
        self.defaults_note = QLabel("")
        self.defaults_note.setObjectName("note")
        self.defaults_note.setWordWrap(True)
        for label, widget in (("Bundle", self.bundle), ("Steps", self.steps),
                              ("Guidance", self.guidance), ("Strands", self.strands),
                              ("Points / strand", self.points), ("Units", self.units),
                              ("Guides", self.guides), ("", self.lod), ("", self.crop), ("", self.curl),
                              ("", self.hair_reading), ("Seed", self.seed),
                              ("Seed variants", self.variants)):
            form.addRow(label, widget)
        form.addRow(self.defaults_note)
        self._samplers: dict[str, dict] = {}
        self.set_options(ReviewOptions())
        self.bundle.currentIndexChanged.connect(self._show_defaults)

    def set_models(self, models: list[dict]) -> None:
        current = self.bundle.currentData()
        self.bundle.blockSignals(True)
        self.bundle.clear()
        self.bundle.addItem("daemon default", "")
        for model in models:
            name = model.get("name", "")
            label = f"{name} (default)" if model.get("default") else name
            self.bundle.addItem(label, name)
            if model.get("sampler"):
                self._samplers[name] = model["sampler"]
                if model.get("default"):
                    self._samplers[""] = model["sampler"]
        index = self.bundle.findData(current)
        self.bundle.setCurrentIndex(max(index, 0))
        self.bundle.blockSignals(False)
        self._show_defaults()

    def _show_defaults(self) -> None:
        sampler = self._samplers.get(self.bundle.currentData() or "")
        if not sampler:
            self.defaults_note.setText("")
            return
        steps, guidance = sampler.get("steps"), sampler.get("guidance")
        self.steps.setSpecialValueText(f"bundle default ({steps})")
        self.guidance.setSpecialValueText(f"bundle default ({guidance})")
        self.defaults_note.setText(f"bundle defaults: {steps} steps, guidance {guidance}")

    def options(self) -> ReviewOptions:
        options = ReviewOptions(
            seed=self.seed.value(), strands=self.strands.text().strip(),
            points_per_strand=self.points.value(), units=self.units.currentText(),
            guides=self.guides.value(), lod=self.lod.isChecked(),
            bundle=self.bundle.currentData() or "",
            steps=self.steps.value() or None, crop=self.crop.isChecked(),
            curl=self.curl.isChecked(), hair_reading=self.hair_reading.isChecked(),
            guidance=None if self.guidance.value() < 0 else self.guidance.value(),
        )
        options.check()
        return options

    def set_options(self, options: ReviewOptions) -> None:
        self.seed.setValue(int(options.seed))
        self.strands.setText(options.strands)
        self.points.setValue(int(options.points_per_strand))
        self.units.setCurrentText(options.units)
        self.guides.setValue(int(options.guides))
        self.lod.setChecked(bool(options.lod))
        index = self.bundle.findData(options.bundle or "")
        if index < 0 and options.bundle:
            self.bundle.addItem(options.bundle, options.bundle)
            index = self.bundle.count() - 1
        self.bundle.setCurrentIndex(max(index, 0))
        self.steps.setValue(int(options.steps or 0))
        self.crop.setChecked(bool(options.crop))
        self.curl.setChecked(bool(options.curl))
        self.hair_reading.setChecked(bool(options.hair_reading))
        self.guidance.setValue(-0.1 if options.guidance is None else float(options.guidance))


class QueuePanel(QWidget):
    """The job list: one row per job with its progress, and the buttons that act on it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        modes = (QHeaderView.ResizeMode.Interactive, QHeaderView.ResizeMode.ResizeToContents,
                 QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.Fixed,
                 QHeaderView.ResizeMode.ResizeToContents)
        for column, mode in enumerate(modes):
            header.setSectionResizeMode(column, mode)
        header.resizeSection(0, 120)
        header.resizeSection(3, 80)
        self.setMinimumWidth(400)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open…")
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton("Retry")
        self.seeds_button = QPushButton("Seeds…")
        for button in (self.open_button, self.cancel_button, self.retry_button,
                       self.seeds_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.summary = QLabel("queue empty: drop photos or folders here")
        self.summary.setObjectName("note")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.keys: list[str] = []

    def add_row(self, entry: QueueEntry, row: int) -> None:
        self.table.insertRow(row)
        self.keys.insert(row, entry.key)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        self.table.setCellWidget(row, 3, bar)
        self.update_row(entry)

    def update_row(self, entry: QueueEntry) -> None:
        row = self.keys.index(entry.key)
        values = (entry.name, str(entry.seed) if entry.origin == "local" or entry.seed else "",
                  entry.status_text(), None, "here" if entry.origin == "local" else "daemon")
        for column, value in enumerate(values):
            if value is None:
                continue
            item = self.table.item(row, column)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, column, item)
            item.setText(value)
            if column == 2:
                item.setToolTip(entry.message or entry.status_text())
        bar: QProgressBar = self.table.cellWidget(row, 3)
        bar.setValue(int(1000 * entry.fraction()))
        bar.setFormat(entry.phase if entry.state == "running" and entry.phase else
                      {"succeeded": "done"}.get(entry.state, entry.state))

    def status_of(self, key: str) -> str:
        return self.table.item(self.keys.index(key), 2).text()

    def selected_key(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.keys[rows[0].row()] if rows else None

    def select(self, key: str) -> None:
        self.table.selectRow(self.keys.index(key))


class ViewerTab(QWidget):
    """Source photo and model crop beside the interactive 3D groom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        images = QSplitter(Qt.Orientation.Vertical)
        self.photo = ImagePanel("source photo")
        self.crop = ImagePanel("crop the model saw")
        images.addWidget(self.photo)
        images.addWidget(self.crop)
        self.viewport = GroomViewport()
        splitter.addWidget(images)
        splitter.addWidget(self.viewport)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([280, 840])  # the groom gets most of the room
        layout.addWidget(splitter)
        self.info = QLabel("")


class GroomTile(QWidget):
    """One groom in the seed grid or compare view: a viewport, a caption and a pick button."""

    picked = Signal(str)

    def __init__(self, link: CameraLink, key: str, caption: str, pick: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.viewport = GroomViewport(link)
        self.caption = QLabel(caption)
        layout.addWidget(self.viewport, 1)
        row = QHBoxLayout()
        row.addWidget(self.caption, 1)
        if pick:
            self.pick_button = QPushButton("Pick")
            self.pick_button.clicked.connect(lambda: self.picked.emit(self.key))
            row.addWidget(self.pick_button)
        layout.addLayout(row)


class MainWindow(QMainWindow):
    """Tressel Review: queue, parameters, viewer, seed variants and compare."""

    def __init__(self, controller: ReviewController, settings: QSettings | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings or QSettings("Tressel", "Review")
        self.setWindowTitle("Tressel Review")
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self.view_state = ViewState()
        self.current: LoadedGroom | None = None
        self.current_key: str | None = None
        self.loaded: dict[str, LoadedGroom] = {}
        self.picked_key: str | None = None
        self.seed_group: str | None = None
        self.seed_tiles: dict[str, GroomTile] = {}
        self._history_error = ""

        self.queue_panel = QueuePanel()
        self.parameters = ParameterPanel()
        self.viewer = ViewerTab()
        self.seeds_tab = QWidget()
        self.seed_grid = QGridLayout(self.seeds_tab)
        self.seed_link = CameraLink()
        self.compare_tab = self._build_compare()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.viewer, "Viewer")
        self.tabs.addTab(self.seeds_tab, "Seeds")
        self.tabs.addTab(self.compare_tab, "Compare")
        self.setCentralWidget(self.tabs)
        docks = (("Queue", self.queue_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
                 ("Parameters", self.parameters, Qt.DockWidgetArea.RightDockWidgetArea))
        for title, widget, area in docks:
            dock = QDockWidget(title, self)
            dock.setObjectName(f"{title.lower()}Dock")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)
        self._build_toolbar()
        self._build_actions()
        self._connect()
        self.restore_settings()
        self.statusBar().showMessage("drop photos or folders to make grooms; open .usd grooms "
                                     "to look at them")

    # -- construction ------------------------------------------------------------------------

    def _build_compare(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        pickers = QHBoxLayout()
        self.compare_left = QComboBox()
        self.compare_right = QComboBox()
        pickers.addWidget(QLabel("Left"))
        pickers.addWidget(self.compare_left, 1)
        pickers.addWidget(QLabel("Right"))
        pickers.addWidget(self.compare_right, 1)
        layout.addLayout(pickers)
        self.compare_link = CameraLink()  # one camera: the two views move together
        views = QHBoxLayout()
        self.compare_views = (GroomViewport(self.compare_link), GroomViewport(self.compare_link))
        for view in self.compare_views:
            views.addWidget(view, 1)
        layout.addLayout(views, 1)
        self.compare_left.activated.connect(lambda: self._compare_pick(0))
        self.compare_right.activated.connect(lambda: self._compare_pick(1))
        return tab

    def _build_toolbar(self) -> None:
        bar = QToolBar("View")
        bar.setObjectName("viewToolbar")
        self.addToolBar(bar)
        self.lod_box = QComboBox()
        self.lod_box.addItems(list(drawing.LODS))
        self.shading_box = QComboBox()
        self.shading_box.addItem("hair colour", "colour")
        self.shading_box.addItem("direction", "direction")
        self.head_box = QCheckBox("head")
        self.head_box.setChecked(True)
        bar.addWidget(QLabel(" LOD "))
        bar.addWidget(self.lod_box)
        bar.addWidget(QLabel(" Shade "))
        bar.addWidget(self.shading_box)
        bar.addWidget(self.head_box)
        self.frame_action = QAction("Frame", self)
        bar.addAction(self.frame_action)
        self.export_action = QAction("Export…", self)
        bar.addAction(self.export_action)
        self.groom_info = QLabel("")
        bar.addWidget(self.groom_info)

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        view_menu = self.menuBar().addMenu("&View")
        job_menu = self.menuBar().addMenu("&Jobs")

        def action(menu, text, shortcut, slot) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            self.addAction(act)  # shortcuts work while the menu bar is hidden too
            return act

        action(menu, "Open photos or grooms…", "Ctrl+O", self.open_files)
        action(menu, "Open folder of photos…", "Ctrl+Shift+O", self.open_folder)
        menu.addAction(self.export_action)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self.export_current)
        action(menu, "Quit", "Ctrl+Q", self.close)
        view_menu.addAction(self.frame_action)
        self.frame_action.setShortcut(QKeySequence("F"))
        self.frame_action.triggered.connect(self.frame_all)
        action(view_menu, "Full detail", "1", lambda: self.lod_box.setCurrentText("full"))
        action(view_menu, "Preview", "2", lambda: self.lod_box.setCurrentText("preview"))
        action(view_menu, "Guides", "3", lambda: self.lod_box.setCurrentText("guides"))
        action(view_menu, "Toggle shading", "S", self.toggle_shading)
        action(view_menu, "Toggle head", "H", lambda: self.head_box.toggle())
        action(job_menu, "Cancel selected job", "Ctrl+.", self.cancel_selected)
        action(job_menu, "Retry selected job", "Ctrl+R", self.retry_selected)
        action(job_menu, "Seed variants of selected photo…", "Ctrl+G", self.seed_variants)
        action(job_menu, "Refresh history", "F5", self.controller.refresh_history)

    def _connect(self) -> None:
        c = self.controller
        c.entry_added.connect(self._entry_added)
        c.entry_changed.connect(self._entry_changed)
        c.groom_loaded.connect(self._groom_loaded)
        c.load_failed.connect(lambda key, msg: self.statusBar().showMessage(msg))
        c.exported.connect(self._exported)
        c.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        c.models_listed.connect(self.parameters.set_models)
        c.history_failed.connect(self._history_failed)
        c.history_ok.connect(lambda: setattr(self, "_history_error", ""))
        q = self.queue_panel
        q.open_button.clicked.connect(self.open_files)
        q.cancel_button.clicked.connect(self.cancel_selected)
        q.retry_button.clicked.connect(self.retry_selected)
        q.seeds_button.clicked.connect(self.seed_variants)
        q.table.itemSelectionChanged.connect(self._selection_changed)
        self.lod_box.currentTextChanged.connect(self._view_changed)
        self.shading_box.currentIndexChanged.connect(self._view_changed)
        self.head_box.toggled.connect(self._view_changed)

    def _history_failed(self, message: str) -> None:
        # Polled every few seconds: say it once, not over every other message.
        if message != self._history_error:
            self._history_error = message
            self.statusBar().showMessage(f"daemon: {message}", 10_000)

    # -- settings ----------------------------------------------------------------------------

    def restore_settings(self) -> None:
        import json

        raw = self.settings.value(SETTINGS_OPTIONS, "")
        if raw:
            try:
                self.parameters.set_options(ReviewOptions.from_dict(json.loads(raw)))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring saved options: %s", exc)
        self.parameters.variants.setValue(int(self.settings.value("options/variants", 4)))
        for key, box in (("view/lod", self.lod_box), ("view/shading", self.shading_box)):
            value = self.settings.value(key, "")
            index = box.findData(value) if box is self.shading_box else box.findText(value)
            if index >= 0:
                box.setCurrentIndex(index)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def save_settings(self) -> None:
        import json

        try:
            options = self.parameters.options()
        except (TresselError, ValueError):  # an invalid field is not saved; the rest is
            options = None
        if options is not None:
            self.settings.setValue(SETTINGS_OPTIONS, json.dumps(options.to_dict()))
        self.settings.setValue("options/variants", self.parameters.variants.value())
        self.settings.setValue("view/lod", self.lod_box.currentText())
        self.settings.setValue("view/shading", self.shading_box.currentData())
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.controller.shutdown()
        super().closeEvent(event)

    # -- opening photos ----------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def open_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in PHOTO_SUFFIXES + (".usd", ".usdc", ".usda"))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open photos or grooms", "",
                                                f"Photos and grooms ({patterns})")
        self.open_paths(paths)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of photos")
        if folder:
            self.open_paths([folder])

    def open_paths(self, paths: list[str]) -> list[QueueEntry]:
        """Photos (and folders of them) become jobs; grooms open in the viewer."""
        photos, grooms, problems = expand_inputs(paths)
        entries: list[QueueEntry] = []
        if photos:
            try:
                options = self.parameters.options()
            except (TresselError, ValueError) as exc:
                QMessageBox.warning(self, "Tressel Review", str(exc))
                return []
            self.save_settings()
            entries = self.controller.submit_photos(photos, options)
        for groom in grooms:
            self.controller.load_file(groom)
        if problems:
            self.statusBar().showMessage("; ".join(problems), 15_000)
        return entries

    # -- queue -------------------------------------------------------------------------------

    def _entry_added(self, key: str) -> None:
        entry = self.controller.queue.get(key)
        self.queue_panel.add_row(entry, self.controller.queue.row(key))
        self._refresh_summary()
        self._refresh_compare_choices()

    def _entry_changed(self, key: str) -> None:
        entry = self.controller.queue.get(key)
        self.queue_panel.update_row(entry)
        self._refresh_summary()
        if entry.state == "succeeded":
            self._refresh_compare_choices()
            if entry.group and entry.group == self.seed_group:
                self.controller.load_entry(key, lods=("preview", "full"))
            elif self.current_key is None or self.queue_panel.selected_key() == key:
                self.queue_panel.select(key)

    def _refresh_summary(self) -> None:
        self.queue_panel.summary.setText(self.controller.queue.summary())

    def _selection_changed(self) -> None:
        key = self.queue_panel.selected_key()
        if key is None:
            return
        entry = self.controller.queue.get(key)
        if entry.state == "succeeded":
            self.current_key = key
            self.controller.load_entry(key)
        elif entry.state == "failed":
            self.statusBar().showMessage(f"{entry.name}: {entry.message}")

    def cancel_selected(self) -> None:
        key = self.queue_panel.selected_key()
        if key:
            self.controller.cancel(key)

    def retry_selected(self) -> None:
        key = self.queue_panel.selected_key()
        if key:
            try:
                self.controller.retry(key)
            except TresselError as exc:
                self.statusBar().showMessage(str(exc), 10_000)

    def seed_variants(self, photo: str | None = None, count: int | None = None
                      ) -> list[QueueEntry]:
        """Run the selected photo (or `photo`) with N consecutive seeds from the panel's seed."""
        if not photo:
            key = self.queue_panel.selected_key()
            entry = self.controller.queue.get(key) if key else None
            if entry is None or entry.origin != "local":
                QMessageBox.information(self, "Tressel Review",
                                        "Select a photo you ran here to try other seeds.")
                return []
            photo = entry.photo
        options = self.parameters.options()
        count = count or self.parameters.variants.value()
        seeds = list(range(options.seed, options.seed + count))
        entries = self.controller.submit_seed_variants(Path(photo), options, seeds)
        self._show_seed_group(entries)
        return entries

    def _show_seed_group(self, entries: list[QueueEntry]) -> None:
        while self.seed_grid.count():
            widget = self.seed_grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.seed_tiles = {}
        self.seed_group = entries[0].group
        columns = max(1, int(np.ceil(np.sqrt(len(entries)))))
        for index, entry in enumerate(entries):
            tile = GroomTile(self.seed_link, entry.key, f"seed {entry.seed}: running")
            tile.picked.connect(self.pick)
            self.seed_tiles[entry.key] = tile
            self.seed_grid.addWidget(tile, index // columns, index % columns)
        self.tabs.setCurrentWidget(self.seeds_tab)

    def pick(self, key: str) -> None:
        """The chosen variant: it becomes the viewer's groom and the one Export writes."""
        self.picked_key = key
        entry = self.controller.queue.get(key)
        self.parameters.seed.setValue(entry.seed)
        for tile_key, tile in self.seed_tiles.items():
            tile.caption.setText(tile.caption.text().replace("  ✓ picked", "")
                                 + ("  ✓ picked" if tile_key == key else ""))
        self.queue_panel.select(key)
        self.current_key = key
        self.controller.load_entry(key)
        self.tabs.setCurrentWidget(self.viewer)

    # -- viewing -----------------------------------------------------------------------------

    def _groom_loaded(self, loaded: LoadedGroom) -> None:
        key = loaded.entry_key
        if key is not None:
            self.loaded[key] = loaded
        if key in self.seed_tiles:
            tile = self.seed_tiles[key]
            lod = "preview" if "preview" in loaded.buffers else next(iter(loaded.buffers))
            first = not any(t.viewport._buffers is not None for t in self.seed_tiles.values())
            tile.viewport.set_groom(loaded.buffers[lod], loaded.head, frame=first)
            tile.viewport.set_state(self.view_state)
            entry = self.controller.queue.get(key)
            tile.caption.setText(f"seed {entry.seed}: {loaded.scene.describe()}")
            if key != self.current_key:
                return
        for side, view in enumerate(self.compare_views):
            if getattr(view, "entry_key", None) == key and key is not None:
                view.set_groom(loaded.buffers.get("full"), loaded.head, frame=side == 0)
        # Only the groom asked for last: an earlier, slower load must not replace it.
        if key is None or key == self.current_key:
            self.show_groom(loaded)

    def show_groom(self, loaded: LoadedGroom) -> None:
        self.current = loaded
        self.current_key = loaded.entry_key
        self._apply_view()
        self.viewer.viewport.frame()
        self.viewer.photo.set_image(numpy_to_pixmap(loaded.photo), loaded.crop_note)
        self.viewer.crop.set_image(numpy_to_pixmap(loaded.crop), loaded.crop_note)
        name = loaded.scene.path.name if loaded.scene.path else ""
        self.groom_info.setText(f"  {name}: {loaded.scene.describe()}")
        view = self.viewer.viewport.view
        note = ""
        budget = view.segment_budget() if hasattr(view, "segment_budget") else None
        buffers = loaded.buffers.get(self.view_state.lod)
        if budget is not None and buffers is not None and buffers.num_segments > budget:
            shown = buffers.index_count(budget) // 2
            note = (f" (software OpenGL: an even {100 * shown / buffers.num_segments:.0f}% of "
                    "the strands; a GPU draws them all)")
        self.statusBar().showMessage(f"{name}: {loaded.scene.describe()} — drawn with "
                                     f"{view.renderer or 'OpenGL'}{note}")

    def _view_changed(self, *args) -> None:
        self.view_state = ViewState(lod=self.lod_box.currentText(),
                                    shading=self.shading_box.currentData(),
                                    show_head=self.head_box.isChecked())
        self._apply_view()
        for tile in self.seed_tiles.values():
            tile.viewport.set_state(self.view_state)
        for view in self.compare_views:
            view.set_state(self.view_state)

    def _apply_view(self) -> None:
        viewport = self.viewer.viewport
        viewport.set_state(self.view_state)
        if self.current is not None:
            buffers = self.current.buffers.get(self.view_state.lod) or \
                next(iter(self.current.buffers.values()))
            viewport.set_groom(buffers, self.current.head, frame=False)

    def toggle_shading(self) -> None:
        self.shading_box.setCurrentIndex(1 - self.shading_box.currentIndex())

    def frame_all(self) -> None:
        self.viewer.viewport.frame()
        if self.compare_views[0]._buffers is not None:
            self.compare_views[0].frame()
        for tile in list(self.seed_tiles.values())[:1]:
            tile.viewport.frame()

    # -- compare -----------------------------------------------------------------------------

    def _refresh_compare_choices(self) -> None:
        done = [e for e in self.controller.queue if e.state == "succeeded"]
        for box in (self.compare_left, self.compare_right):
            current = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem("choose a groom", "")
            for entry in done:
                box.addItem(f"{entry.name} · seed {entry.seed}", entry.key)
            box.setCurrentIndex(max(box.findData(current), 0))
            box.blockSignals(False)

    def _compare_pick(self, side: int) -> None:
        box = (self.compare_left, self.compare_right)[side]
        self.compare(box.currentData() or None, side)

    def compare(self, key: str | None, side: int) -> None:
        """Show `key` on the left (0) or right (1) of the compare tab; both share one camera."""
        view = self.compare_views[side]
        view.entry_key = key
        box = (self.compare_left, self.compare_right)[side]
        box.setCurrentIndex(max(box.findData(key or ""), 0))
        if key is None:
            view.set_groom(None, None)
            return
        if key in self.loaded:
            loaded = self.loaded[key]
            view.set_groom(loaded.buffers.get("full"), loaded.head, frame=side == 0)
            view.set_state(self.view_state)
        else:
            self.controller.load_entry(key)

    # -- export ------------------------------------------------------------------------------

    def export_current(self, folder: str | None = None) -> None:
        key = self.current_key or self.queue_panel.selected_key()
        layer = self.current.scene.path if self.current is not None else None
        if key is None and layer is None:
            self.statusBar().showMessage("select a finished groom to export", 10_000)
            return
        if not folder:
            start = self.settings.value("export/folder", str(Path.home()))
            folder = QFileDialog.getExistingDirectory(self, "Export the groom to", start)
            if not folder:
                return
        self.settings.setValue("export/folder", folder)
        if key is not None:
            self.controller.export(key, Path(folder))
        else:  # a groom opened from a file: no photo to cut the crop from
            self.controller.export_file(layer, Path(folder))

    def _exported(self, report) -> None:
        text = "exported " + ", ".join(p.name for p in report.written)
        if report.skipped:
            text += " (" + "; ".join(report.skipped) + ")"
        self.statusBar().showMessage(text, 20_000)
