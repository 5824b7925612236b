"""The few calls into `hou` that the node's buttons and job callbacks make (status, parameters).

`hou` is imported on first use, so the rest of the package imports in any Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def hou_module() -> Any:
    import hou

    return hou


def read_parms(node: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Evaluated parameter values by name (menus as their token, files expanded)."""
    values = {}
    for name in names:
        parm = node.parm(name)
        values[name] = parm.evalAsString() if name == "load" else parm.eval()
    return values


def set_parm(node: Any, name: str, value: Any) -> None:
    node.parm(name).set(value)


def show_status(node: Any | None, text: str, severity: str = "Message") -> None:
    """Show `text` on the node (its comment, displayed in the network) and in the status bar."""
    hou = hou_module()
    if node is not None:
        node.setComment(text)
        node.setGenericFlag(hou.nodeFlag.DisplayComment, True)
    if hou.isUIAvailable():
        hou.ui.setStatusMessage(text, severity=getattr(hou.severityType, severity))


def node_by_session_id(session_id: int) -> Any | None:
    """The node, or None when it was deleted while its job ran."""
    return hou_module().nodeBySessionId(session_id)


def recook(node: Any) -> None:
    """Cook now; a cook that ends in the node's error state is not an exception here."""
    hou = hou_module()
    try:
        node.cook(force=True)
    except hou.OperationFailed:
        pass  # the node shows its error; the caller already reported it


def expand(text: str) -> str:
    """Houdini variables (`$HIP`, `$JOB`) expanded."""
    hou = hou_module()
    text_module = getattr(hou, "text", None)
    expand_string = getattr(text_module, "expandString", None) or hou.expandString
    return expand_string(text)


def ui_available() -> bool:
    return bool(hou_module().isUIAvailable())


def add_event_loop_callback(callback: Callable[[], None]) -> None:
    hou = hou_module()
    if callback not in hou.ui.eventLoopCallbacks():
        hou.ui.addEventLoopCallback(callback)


def remove_event_loop_callback(callback: Callable[[], None]) -> None:
    hou = hou_module()
    if callback in hou.ui.eventLoopCallbacks():
        hou.ui.removeEventLoopCallback(callback)
