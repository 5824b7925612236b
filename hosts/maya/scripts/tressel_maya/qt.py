"""The options dialog, on whatever Qt Maya ships (PySide6 in 2025+, PySide2 before).

`load_qt()` is the whole shim; `build_options_dialog` is the one function that builds the
dialog. The dialog is non-modal (Maya stays usable while it is open) and never talks to the
daemon: the controller fills its model menu from a thread through `set_bundles`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from tressel.errors import TresselError
from tressel.hosting import GroomOptions

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.tif *.tiff *.exr);;All files (*)"
DEFAULT_BUNDLE = "(daemon default)"


def load_qt() -> SimpleNamespace:
    """QtCore, QtGui, QtWidgets and wrapInstance from PySide6, else PySide2."""
    try:
        import shiboken6 as shiboken
        from PySide6 import QtCore, QtGui, QtWidgets
    except ImportError:
        import shiboken2 as shiboken
        from PySide2 import QtCore, QtGui, QtWidgets
    return SimpleNamespace(QtCore=QtCore, QtGui=QtGui, QtWidgets=QtWidgets,
                           wrapInstance=shiboken.wrapInstance)


class OptionsDialogHandle:
    """What the controller holds: the Qt dialog and its fields."""

    def __init__(self, dialog: Any, fields: SimpleNamespace,
                 on_accept: Callable[[str, GroomOptions], None]) -> None:
        self.dialog = dialog
        self.fields = fields
        self._on_accept = on_accept

    def set_bundles(self, names: list[str], default: str, note: str) -> None:
        combo = self.fields.bundle
        try:
            current = combo.currentText()
        except RuntimeError:  # the dialog was closed (and deleted) before the daemon answered
            return
        combo.clear()
        combo.addItem(DEFAULT_BUNDLE if not default else f"{DEFAULT_BUNDLE}: {default}")
        combo.addItems(names)
        if current and current in names:
            combo.setCurrentText(current)
        self.fields.bundle_note.setText(note)

    def values(self) -> tuple[str, GroomOptions]:
        """The photo and options the fields hold; raises ConfigError for a bad entry."""
        f = self.fields
        bundle = f.bundle.currentText().strip()
        options = GroomOptions(
            seed=f.seed.value(), strands=f.strands.text().strip(),
            points_per_strand=f.points.value(), units=f.units.currentText(),
            guides=f.guides.value(), lod=f.lod.isChecked(),
            bundle="" if bundle.startswith(DEFAULT_BUNDLE) else bundle,
            steps=f.steps.value() or None, crop=f.crop.isChecked(), curl=f.curl.isChecked(),
            hair_reading=f.hair_reading.isChecked(), import_guides=f.import_guides.isChecked(),
        )
        options.check()
        return f.photo.text().strip(), options

    def generate(self) -> None:
        try:
            photo, options = self.values()
        except TresselError as exc:
            self.fields.error.setText(str(exc))  # stays open: the artist fixes the field
            return
        self.fields.error.setText("")
        self.dialog.close()
        self._on_accept(photo, options)


def build_options_dialog(photo: str, options: GroomOptions,
                         on_accept: Callable[[str, GroomOptions], None],
                         parent_pointer: int | None = None) -> OptionsDialogHandle:
    """The Tressel options dialog, filled with `photo` and `options`; not shown yet."""
    qt = load_qt()
    QtCore, QtWidgets = qt.QtCore, qt.QtWidgets
    parent = (qt.wrapInstance(int(parent_pointer), QtWidgets.QWidget)
              if parent_pointer else None)

    class PhotoField(QtWidgets.QLineEdit):
        """A path field that also takes an image dropped from a file browser."""

        def dragEnterEvent(self, event: Any) -> None:
            if event.mimeData().hasUrls():
                event.acceptProposedAction()

        def dropEvent(self, event: Any) -> None:
            urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
            if urls:
                self.setText(urls[0].toLocalFile())
                event.acceptProposedAction()

    dialog = QtWidgets.QDialog(parent)
    dialog.setObjectName("tresselOptionsDialog")
    dialog.setWindowTitle("Tressel: groom from a photo")
    dialog.setAttribute(QtCore.Qt.WA_DeleteOnClose)
    form = QtWidgets.QFormLayout()
    f = SimpleNamespace()

    f.photo = PhotoField(photo)
    f.photo.setAcceptDrops(True)
    f.photo.setPlaceholderText("portrait image (browse, or drop a file here)")
    browse = QtWidgets.QPushButton("Browse...")
    row = QtWidgets.QHBoxLayout()
    row.addWidget(f.photo)
    row.addWidget(browse)
    form.addRow("Photo", row)

    def pick_photo() -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(dialog, "Portrait photo",
                                                        f.photo.text(), IMAGE_FILTER)
        if path:
            f.photo.setText(path)

    browse.clicked.connect(pick_photo)

    f.seed = QtWidgets.QSpinBox()
    f.seed.setRange(0, 2**31 - 1)
    f.seed.setValue(options.seed)
    form.addRow("Seed", f.seed)
    f.strands = QtWidgets.QLineEdit(str(options.strands))
    f.strands.setPlaceholderText("model density; or a count (20000) or a scale (0.5x)")
    form.addRow("Strands", f.strands)
    f.points = QtWidgets.QSpinBox()
    f.points.setRange(2, 256)
    f.points.setValue(int(options.points_per_strand))
    form.addRow("Points per strand", f.points)
    f.units = QtWidgets.QComboBox()
    f.units.addItems(["cm", "m"])
    f.units.setCurrentText(options.units)
    form.addRow("Units", f.units)
    f.guides = QtWidgets.QSpinBox()
    f.guides.setRange(0, 100_000)
    f.guides.setValue(int(options.guides))
    form.addRow("Guide strands", f.guides)
    f.lod = QtWidgets.QCheckBox("preview and guides-only variants (LOD)")
    f.lod.setChecked(bool(options.lod))
    form.addRow("", f.lod)
    f.bundle = QtWidgets.QComboBox()
    f.bundle.setEditable(True)  # a bundle name can be typed before the daemon runs
    f.bundle.addItem(DEFAULT_BUNDLE)
    if options.bundle:
        f.bundle.addItem(options.bundle)
        f.bundle.setCurrentText(options.bundle)
    f.bundle_note = QtWidgets.QLabel("asking the daemon for its models...")
    f.bundle_note.setWordWrap(True)
    form.addRow("Model", f.bundle)
    form.addRow("", f.bundle_note)
    f.steps = QtWidgets.QSpinBox()
    f.steps.setRange(0, 1000)
    f.steps.setSpecialValueText("model default")
    f.steps.setValue(int(options.steps or 0))
    form.addRow("Diffusion steps", f.steps)
    f.crop = QtWidgets.QCheckBox("find the face and crop to it (off: use the whole image)")
    f.crop.setChecked(bool(options.crop))
    form.addRow("", f.crop)
    f.curl = QtWidgets.QCheckBox("curl strands as the photo reads (the demo model; off: as decoded)")
    f.curl.setChecked(bool(options.curl))
    form.addRow("", f.curl)
    f.hair_reading = QtWidgets.QCheckBox(
        "measure the hair in the photo (the demo model: length and colour; off: the model's own)")
    f.hair_reading.setChecked(bool(options.hair_reading))
    form.addRow("", f.hair_reading)
    f.import_guides = QtWidgets.QCheckBox("also import the guides as NURBS curves")
    f.import_guides.setChecked(bool(options.import_guides))
    form.addRow("", f.import_guides)
    f.error = QtWidgets.QLabel("")
    f.error.setWordWrap(True)
    f.error.setStyleSheet("color: #e06060")

    buttons = QtWidgets.QDialogButtonBox()
    f.generate = buttons.addButton("Generate", QtWidgets.QDialogButtonBox.AcceptRole)
    f.close = buttons.addButton("Close", QtWidgets.QDialogButtonBox.RejectRole)
    layout = QtWidgets.QVBoxLayout(dialog)
    layout.addLayout(form)
    layout.addWidget(f.error)
    layout.addWidget(buttons)

    handle = OptionsDialogHandle(dialog, f, on_accept)
    f.generate.clicked.connect(handle.generate)
    f.close.clicked.connect(dialog.close)
    dialog._tressel_handle = handle  # the dialog keeps its handle (and callbacks) alive
    return handle


def open_options_dialog(photo: str, options: GroomOptions,
                        on_accept: Callable[[str, GroomOptions], None],
                        parent_pointer: int | None = None) -> OptionsDialogHandle:
    """Build the dialog and show it, non-modal, over Maya's main window."""
    handle = build_options_dialog(photo, options, on_accept, parent_pointer)
    handle.dialog.show()
    handle.dialog.raise_()
    return handle
