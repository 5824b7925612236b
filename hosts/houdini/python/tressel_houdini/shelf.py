"""What the Tressel shelf tools do (`toolbar/tressel.shelf` calls these)."""

from __future__ import annotations

from typing import Any

from tressel.hosting import node_name

from tressel_houdini import ui
from tressel_houdini.nodetype import NODE_TYPE, ensure_node_type

PHOTO_PATTERN = "*.jpg, *.jpeg, *.png, *.tif, *.tiff, *.exr"


def _sop_network(hou: Any) -> Any:
    """The SOP network the artist is looking at, else a new geometry object in /obj."""
    if hou.isUIAvailable():
        editor = hou.ui.paneTabOfType(hou.paneTabType.NetworkEditor)
        network = editor.pwd() if editor is not None else None
        if network is not None and network.childTypeCategory() == hou.sopNodeTypeCategory():
            return network
    return hou.node("/obj").createNode("geo", "tressel_groom")


def create_groom(photo: str | None = None, ask: bool = True, parent: Any = None) -> Any:
    """Build the node type if needed, put a Tressel Groom node down and select it.

    With `ask` (the shelf tool) and no `photo`, a file dialog asks for the portrait; the node
    is named after it.
    """
    hou = ui.hou_module()
    ensure_node_type(hou)
    if photo is None and ask and hou.isUIAvailable():
        chosen = hou.ui.selectFile(title="Tressel: pick a portrait", pattern=PHOTO_PATTERN,
                                   chooser_mode=hou.fileChooserMode.Read)
        photo = chosen or None
    network = parent if parent is not None else _sop_network(hou)
    node = network.createNode(NODE_TYPE, node_name(photo) if photo else "tressel_groom")
    if photo:
        node.parm("photo").set(photo)
    node.setDisplayFlag(True)
    node.setRenderFlag(True)
    node.moveToGoodPosition()
    node.setSelected(True, clear_all_selected=True)
    return node


def stage_selected() -> list[Any]:
    """A Sublayer LOP in /stage for each selected Tressel Groom node."""
    from tressel_houdini.stage import add_to_stage

    hou = ui.hou_module()
    grooms = [n for n in hou.selectedNodes() if n.type().name() == NODE_TYPE]
    if not grooms:
        ui.show_status(None, "Tressel: select a Tressel Groom node first", "Warning")
        return []
    return [add_to_stage(node) for node in grooms]
