"""Put a Tressel groom layer on the Solaris stage (`/stage`) with a Sublayer LOP.

The LOP's file is an expression on the SOP's Groom Layer parameter, so the stage follows every
new Generate; the layer's default prim (`/Groom`) comes in with its material and provenance.
"""

from __future__ import annotations

from typing import Any

from tressel.hosting import node_name

from tressel_houdini import ui

LOP_TYPE = "sublayer"
LOP_FILE_PARM = "filepath1"  # the Sublayer LOP's first file (a multiparm, one by default)


def layer_expression(sop_node: Any) -> str:
    """A string-parameter expression that evaluates to the SOP's current layer path."""
    return f'`chs("{sop_node.path()}/layer")`'


def add_to_stage(sop_node: Any, stage_path: str = "/stage") -> Any:
    """A Sublayer LOP in `stage_path` reading the SOP's layer; returns the LOP node."""
    hou = ui.hou_module()
    stage = hou.node(stage_path)
    if stage is None:
        raise ValueError(f"no {stage_path} network in this scene: create a LOP network first")
    photo = sop_node.parm("photo").eval() or sop_node.name()
    lop = stage.createNode(LOP_TYPE, node_name(str(photo), prefix="tressel_stage"))
    lop.parm(LOP_FILE_PARM).set(layer_expression(sop_node))
    lop.setComment(f"Tressel groom layer of {sop_node.path()}")
    lop.moveToGoodPosition()
    return lop
