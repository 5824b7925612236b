"""The Tressel Groom node's cook: read the finished layer and build curves, never run a job.

Called by the Python SOP inside the asset (`hou.pwd()` is that SOP, its parent the Tressel
node). Houdini shows a raised `hou.NodeWarning` or `hou.NodeError` on the node: no layer yet is
a warning and empty geometry (a clean no-op), a failed job or an unreadable layer an error.
"""

from __future__ import annotations

from typing import Any

from tressel.errors import TresselError

from tressel_houdini import ui

NO_RESULT = "no groom yet: pick a photo and press Generate"


def cook(python_sop: Any) -> dict[str, int] | None:
    from tressel_houdini.geometry import build_geometry
    from tressel_houdini.layer import read_layer

    hou = ui.hou_module()
    node = python_sop.parent()
    error = node.parm("error").eval()
    if error:
        raise hou.NodeError(error)
    layer = str(node.parm("layer").eval()).strip()
    if not layer:
        raise hou.NodeWarning(NO_RESULT)
    try:
        groom = read_layer(layer, node.parm("load").evalAsString())
    except TresselError as exc:
        raise hou.NodeError(str(exc)) from None
    return build_geometry(hou, python_sop.geometry(), groom)
