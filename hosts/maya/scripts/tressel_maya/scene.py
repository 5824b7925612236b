"""Every call Tressel makes into Maya (`maya.cmds`, `maya.mel`, `maya.utils`), and nothing else.

The rest of the host is plain Python that tests run for real; these small functions are what a
recording fake of Maya stands in for. All of them run on Maya's main thread except `defer`,
which is `maya.utils.executeDeferred`: the one Maya call made for other threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

SHELF = "Tressel"
PROXY_PLUGIN = "mayaUsdPlugin"
GUIDE_PRIM = "/Groom/Guides"
_quit_job: int | None = None  # the scriptJob that removes the shelf before Maya saves shelves


def _cmds():  # imported late: the package itself imports in a bare Python without Maya
    from maya import cmds

    return cmds


def _mel():
    from maya import mel

    return mel


# -- threads -------------------------------------------------------------------------------------


def defer(fn: Callable[[], None]) -> None:
    """Run `fn` on Maya's main thread when it is next idle; safe to call from any thread."""
    import maya.utils

    maya.utils.executeDeferred(fn)


def is_batch() -> bool:
    """True in mayapy / `maya -batch`: no shelf, no progress bar, no dialogs."""
    return bool(_cmds().about(batch=True))


# -- shelf ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShelfButton:
    label: str
    command: str  # Python source run when clicked
    image: str  # icon file (absolute path, so it shows without XBMLANGPATH)
    annotation: str


def build_shelf(buttons: Sequence[ShelfButton], on_quit: Callable[[], None]) -> str:
    """Create the Tressel shelf, or refill it: running this twice leaves one shelf, same buttons.

    The shelf lives only in this session: `on_quit` (remove_shelf) runs on Maya's
    quitApplication event so that Maya never saves it into the user's shelf preferences.
    """
    global _quit_job
    cmds = _cmds()
    top = _mel().eval("$tmp=$gShelfTopLevel")
    if cmds.shelfLayout(SHELF, exists=True):
        for child in cmds.shelfLayout(SHELF, query=True, childArray=True) or []:
            cmds.deleteUI(child)
    else:
        cmds.shelfLayout(SHELF, parent=top)
    for button in buttons:
        cmds.shelfButton(parent=SHELF, label=button.label, annotation=button.annotation,
                         image=button.image, image1=button.image, command=button.command,
                         sourceType="python", imageOverlayLabel="")
    if _quit_job is None or not cmds.scriptJob(exists=_quit_job):
        _quit_job = cmds.scriptJob(event=["quitApplication", on_quit])
    return SHELF


def remove_shelf() -> None:
    cmds = _cmds()
    if cmds.shelfLayout(SHELF, exists=True):
        cmds.deleteUI(SHELF, layout=True)


# -- options and dialogs -------------------------------------------------------------------------


def read_option(name: str) -> str | None:
    cmds = _cmds()
    if not cmds.optionVar(exists=name):
        return None
    value = cmds.optionVar(query=name)
    return value if isinstance(value, str) else None


def write_option(name: str, value: str) -> None:
    _cmds().optionVar(stringValue=(name, value))


def show_message(title: str, message: str, error: bool = True) -> None:
    """A modal dialog (in mayapy: a log line, there is nobody to click OK)."""
    if is_batch():
        (log.error if error else log.info)("%s: %s", title, message)
        return
    _cmds().confirmDialog(title=title, message=message, button=["OK"], defaultButton="OK",
                          icon="critical" if error else "information")


def ask_yes_no(title: str, message: str, yes: str, no: str) -> bool:
    answer = _cmds().confirmDialog(title=title, message=message, button=[yes, no],
                                   defaultButton=no, cancelButton=no, dismissString=no)
    return answer == yes


def main_window_pointer() -> int | None:
    """Maya's main window as a pointer (Qt parent for the options dialog), None without UI."""
    try:
        from maya import OpenMayaUI
    except ImportError:
        return None
    pointer = OpenMayaUI.MQtUtil.mainWindow()
    return int(pointer) if pointer is not None else None


def workspace_root() -> str:
    return _cmds().workspace(query=True, rootDirectory=True)


# -- the main progress bar -----------------------------------------------------------------------


def _progress_bar() -> str:
    return _mel().eval("$tmp=$gMainProgressBar")


def progress_begin(status: str) -> None:
    if is_batch():
        return
    _cmds().progressBar(_progress_bar(), edit=True, beginProgress=True, isInterruptable=True,
                        status=status, minValue=0, maxValue=100, progress=0)


def progress_update(status: str, step: int, total: int) -> None:
    if is_batch():
        return
    # A phase of unknown length shows as an empty bar with its name, not as a wrong fraction.
    _cmds().progressBar(_progress_bar(), edit=True, status=status, maxValue=max(total, 1),
                        progress=min(step, total) if total else 0)


def progress_cancelled() -> bool:
    """True once the artist pressed Esc since `progress_begin`."""
    if is_batch():
        return False
    return bool(_cmds().progressBar(_progress_bar(), query=True, isCancelled=True))


def progress_end() -> None:
    if is_batch():
        return
    _cmds().progressBar(_progress_bar(), edit=True, endProgress=True)


# -- bringing a groom in ---------------------------------------------------------------------


class SceneError(Exception):
    """Maya refused to create the groom; the scene was rolled back."""


def bring_in_groom(layer: str, name: str, provenance: dict[str, str],
                   import_guides: bool) -> tuple[str, int]:
    """A mayaUsdProxyShape on `layer` under a transform `name`; returns (shape, guide curves).

    The transform carries `provenance` as string attributes. With `import_guides`, mayaUSD's
    importer brings only the guide prim in as native NURBS curves, grouped under the transform
    (it makes one curve per strand, so the full strand set is never imported natively).
    Everything is one undo step; if any part fails, whatever was created is deleted again and
    SceneError says what happened.
    """
    cmds = _cmds()
    if not cmds.pluginInfo(PROXY_PLUGIN, query=True, loaded=True):
        try:
            cmds.loadPlugin(PROXY_PLUGIN, quiet=True)
        except RuntimeError as exc:
            raise SceneError(
                f"Maya could not load {PROXY_PLUGIN} ({exc}): enable mayaUSD in the Plug-in "
                "Manager (Windows > Settings/Preferences > Plug-in Manager)"
            ) from exc
    created: list[str] = []
    cmds.undoInfo(openChunk=True, chunkName="Tressel groom")
    try:
        transform = cmds.createNode("transform", name=name, skipSelect=True)
        created.append(transform)
        shape = cmds.createNode("mayaUsdProxyShape", name=f"{transform}Shape", parent=transform,
                                skipSelect=True)
        cmds.setAttr(f"{shape}.filePath", layer, type="string")
        cmds.connectAttr("time1.outTime", f"{shape}.time")
        for key, value in provenance.items():
            cmds.addAttr(transform, longName=key, dataType="string")
            cmds.setAttr(f"{transform}.{key}", value, type="string")
        guides = 0
        if import_guides:
            group = cmds.createNode("transform", name=f"{transform}_guides", parent=transform,
                                    skipSelect=True)
            # shadingMode none: guides are for grooming; the look stays on the proxy.
            cmds.mayaUSDImport(file=layer, primPath=GUIDE_PRIM, parent=group,
                               readAnimData=False, shadingMode=[["none", "default"]])
            guides = len(cmds.listRelatives(group, allDescendents=True, type="nurbsCurve")
                         or [])
        shape_path = (cmds.ls(shape, long=True) or [shape])[0]
    except Exception as exc:
        for node in reversed(created):
            if cmds.objExists(node):
                cmds.delete(node)
        raise SceneError(f"Maya could not bring the groom in: {exc}") from exc
    finally:
        cmds.undoInfo(closeChunk=True)
    cmds.select(transform, replace=True)
    return shape_path, guides
