"""The Tressel Groom SOP as reviewable data (parameters, cook code) and the function that builds it.

The node is a digital asset built from code where Houdini runs (by the shelf tool, or
`tressel_houdini.ensure_node_type()`), so its definition lives here, in review, rather than
in a binary `.hda`: a subnet holding one Python SOP whose code calls `tressel_houdini.cook`,
with the parameters below on the asset. The asset is saved to the per-user folder that the
package puts on `HOUDINI_PATH` (`$TRESSEL_HOUDINI_USER/otls`), so Houdini loads it at every
later start and the node is in the Tab menu. `SPEC_VERSION` (a hash of this data) is stored as
the asset's version: a changed definition is rebuilt on first use.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_TYPE = "tressel_groom"
LABEL = "Tressel Groom"
ICON = "SOP_curve"
HDA_FILE = "tressel_groom.hda"
ENV_USER_DIR = "TRESSEL_HOUDINI_USER"  # set by the package file (tressel.hosting.install_houdini)

LOAD_CHOICES = (("strands", "Strands"), ("guides", "Guides"), ("both", "Strands and Guides"))

# Button callbacks run in Houdini's Python with `kwargs["node"]` the asset node.
_CALLBACK = "import tressel_houdini.node as tressel_node; tressel_node.{}(kwargs['node'])"

# The inner Python SOP's code: `hou.pwd()` is that SOP, its parent the asset.
COOK_CODE = "import tressel_houdini.cook\ntressel_houdini.cook.cook(hou.pwd())\n"


@dataclass(frozen=True)
class ParmSpec:
    """One parameter of the node; `kind` is file, int, string, menu, toggle, button, separator."""

    kind: str
    name: str
    label: str = ""
    default: Any = None
    help: str = ""
    minimum: int = 0
    maximum: int = 0
    menu: tuple[tuple[str, str], ...] = ()
    callback: str = ""
    file_pattern: str = ""
    hidden: bool = False
    join_with_next: bool = False


PARMS: tuple[ParmSpec, ...] = (
    ParmSpec("file", "photo", "Photo", "", file_pattern="*.jpg, *.jpeg, *.png, *.tif, *.tiff, *.exr",
             help="The portrait to groom (JPEG, PNG, TIFF or EXR)."),
    ParmSpec("int", "seed", "Seed", 0, minimum=0, maximum=9999,
             help="Same photo, model, options and seed: the same groom."),
    ParmSpec("string", "strands", "Strands", "",
             help="A maximum count such as 20000, a density scale such as 0.5x, or empty for "
                  "the model's own density."),
    ParmSpec("int", "points", "Points per Strand", 32, minimum=2, maximum=256),
    ParmSpec("int", "guides", "Guide Strands", 2000, minimum=0, maximum=20000,
             help="Sparse guide curves written beside the strands (0: none)."),
    ParmSpec("menu", "load", "Load", "strands", menu=LOAD_CHOICES,
             help="What the node outputs from the layer; switching needs no new job."),
    ParmSpec("string", "bundle", "Model Bundle", "",
             help="A model bundle name or folder; empty: the daemon's default model."),
    ParmSpec("toggle", "crop", "Crop to Face", True,
             help="Find the face and crop to it; off uses the whole image."),
    ParmSpec("toggle", "curl", "Curl from Photo", True,
             help="Curl strands as the photo reads (models with a style head, such as the "
                  "demo); off keeps them as decoded."),
    ParmSpec("toggle", "hair_reading", "Hair from Photo", True,
             help="Measure the hair in the photo and take strand length and colour from it "
                  "(models with a style head, such as the demo); off keeps the model's own."),
    ParmSpec("int", "steps", "Diffusion Steps", 0, minimum=0, maximum=1000,
             help="0: the model's default."),
    ParmSpec("separator", "sep_actions"),
    ParmSpec("button", "generate", "Generate", callback=_CALLBACK.format("on_generate"),
             join_with_next=True,
             help="Send the photo to the Tressel daemon; Houdini stays usable meanwhile."),
    ParmSpec("button", "cancel", "Cancel", callback=_CALLBACK.format("on_cancel")),
    ParmSpec("file", "layer", "Groom Layer", "", file_pattern="*.usd, *.usdc, *.usda",
             help="The finished USD layer the node reads; Generate fills it in "
                  "($HIP/tressel/...)."),
    ParmSpec("string", "error", "Last Error", "", hidden=True),
)

SPEC_VERSION = hashlib.sha256(
    (repr(PARMS) + COOK_CODE + NODE_TYPE).encode("utf-8")).hexdigest()[:12]


def hda_path() -> Path:
    """Where the asset is saved: `$TRESSEL_HOUDINI_USER/otls/tressel_groom.hda`."""
    configured = os.environ.get(ENV_USER_DIR)
    if configured:
        base = Path(configured).expanduser()
    else:
        from tressel.paths import user_dir

        base = user_dir("data", "houdini")
    return base / "otls" / HDA_FILE


# -- the calls into hou ------------------------------------------------------------------------


def parm_template(hou: Any, spec: ParmSpec) -> Any:
    """The `hou.ParmTemplate` for one `ParmSpec`."""
    if spec.kind == "file":
        template = hou.StringParmTemplate(
            spec.name, spec.label, 1, default_value=(spec.default,),
            string_type=hou.stringParmType.FileReference, file_type=hou.fileType.Any)
        # As Houdini writes these tags for its own nodes: comma-separated patterns, and a
        # chooser that only opens files (both parameters name existing files to read).
        template.setTags({"filechooser_pattern": spec.file_pattern, "filechooser_mode": "read"})
    elif spec.kind == "string":
        template = hou.StringParmTemplate(spec.name, spec.label, 1, default_value=(spec.default,))
    elif spec.kind == "int":
        template = hou.IntParmTemplate(spec.name, spec.label, 1, default_value=(spec.default,),
                                       min=spec.minimum, max=spec.maximum)
    elif spec.kind == "menu":
        names = tuple(name for name, _ in spec.menu)
        template = hou.MenuParmTemplate(spec.name, spec.label, names,
                                        tuple(label for _, label in spec.menu),
                                        default_value=names.index(spec.default))
    elif spec.kind == "toggle":
        template = hou.ToggleParmTemplate(spec.name, spec.label, default_value=spec.default)
    elif spec.kind == "button":
        template = hou.ButtonParmTemplate(spec.name, spec.label)
        template.setScriptCallback(spec.callback)
        template.setScriptCallbackLanguage(hou.scriptLanguage.Python)
    elif spec.kind == "separator":
        template = hou.SeparatorParmTemplate(spec.name)
    else:
        raise ValueError(f"unknown parameter kind {spec.kind!r} for {spec.name}")
    if spec.help:
        template.setHelp(spec.help)
    if spec.hidden:
        template.hide(True)
    if spec.join_with_next:
        template.setJoinWithNext(True)
    return template


def build_node_type(hou: Any, path: Path) -> Any:
    """Build the asset into `path` and install it; returns its `hou.NodeType`.

    A subnet with one Python SOP (the cook) wired to the output becomes the asset; the
    scratch network it was built in is removed whatever happens.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = hou.node("/obj").createNode("geo", "tressel_asset_build")
    try:
        subnet = scratch.createNode("subnet", NODE_TYPE)
        cook = subnet.createNode("python", "cook")
        cook.parm("python").set(COOK_CODE)
        # Reuse an Output SOP the new subnet may already hold: a second one named output0
        # would be renamed, and two outputs for index 0 leave the asset's output ambiguous.
        output = subnet.node("output0") or subnet.createNode("output", "output0")
        output.setInput(0, cook)
        # Only the keywords public build scripts use with it; the version is set below through
        # HDADefinition.setVersion (the HOM replacement of otversion).
        asset = subnet.createDigitalAsset(
            name=NODE_TYPE, hda_file_name=str(path), description=LABEL,
            min_num_inputs=0, max_num_inputs=0)
        definition = asset.type().definition()
        group = hou.ParmTemplateGroup()
        for spec in PARMS:
            group.append(parm_template(hou, spec))
        definition.setParmTemplateGroup(group)
        definition.setIcon(ICON)
        definition.setVersion(SPEC_VERSION)
        definition.setComment("Tressel: a photo's hair groom as curves (built by tressel_houdini)")
    finally:
        scratch.destroy()
    hou.hda.installFile(str(path))
    return hou.nodeType(hou.sopNodeTypeCategory(), NODE_TYPE)


def ensure_node_type(hou: Any) -> Any:
    """The Tressel Groom node type, installed from its saved asset or built if missing or stale."""
    category = hou.sopNodeTypeCategory()

    def current() -> Any:
        node_type = hou.nodeType(category, NODE_TYPE)
        definition = node_type.definition() if node_type is not None else None
        return node_type if definition is not None and definition.version() == SPEC_VERSION \
            else None

    node_type = current()
    if node_type is not None:
        return node_type
    path = hda_path()
    if path.is_file():
        hou.hda.installFile(str(path))
        node_type = current()
        if node_type is not None:
            return node_type
    return build_node_type(hou, path)
