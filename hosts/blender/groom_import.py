"""Bring a Tressel groom layer into Blender: USD import, head attachment, Cycles hair material.

Every `bpy` call that changes the scene is here. `import_groom` is all-or-nothing: when any
step fails, the objects, curves, materials and node groups it made are removed again, so a
failed import leaves the scene as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .hair_color import melanin_from_preview_color
from .usd_options import usd_import_options

log = logging.getLogger(__name__)

# How roots get their place on the head (`surface_uv_coordinate`, what Blender's hair tools and
# the Deform Curves on Surface node read).
ATTACH_MODES = (
    ("NEAREST", "Nearest surface",
     ("Move each root to the nearest point of the head and take that point's UV "
      "(works with any head that has a UV map)")),
    ("ROOT_UV", "Layer root UV",
     ("Use the layer's root UV (primvars:st) as the surface UV: for heads whose UV layout "
      "is the model's scalp layout; roots stay where the model put them")),
)
DEFORM_GROUP = "Tressel Surface Deform"
DEFORM_MODIFIER = "Surface Deform"


@dataclass
class ImportedGroom:
    """What one import made, for the panel's message and for tests."""

    root: bpy.types.Object
    strands: bpy.types.Object
    guides: bpy.types.Object | None
    material: bpy.types.Material
    melanin: float
    redness: float
    head: bpy.types.Object | None = None
    uv_map: str = ""
    warnings: list[str] = field(default_factory=list)


def import_groom(
    path: str | Path,
    name: str,
    *,
    head: bpy.types.Object | None = None,
    attach: str = "NEAREST",
    import_guides: bool = False,
) -> ImportedGroom:
    """Import the layer at `path` as hair curves named after `name`; attach them to `head`.

    Raises RuntimeError (message for the artist) and leaves the scene untouched on failure.
    """
    before = _snapshot()
    try:
        return _import(Path(path), name, head, attach, import_guides)
    except Exception:
        _remove_new(before)
        raise


def _import(path: Path, name: str, head: bpy.types.Object | None, attach: str,
            import_guides: bool) -> ImportedGroom:
    if not path.is_file():
        raise RuntimeError(f"groom layer {path} is missing: generate the groom again")
    before = set(bpy.data.objects)
    # The operator's own option names: they differ between Blender releases (usd_options).
    available = bpy.ops.wm.usd_import.get_rna_type().properties.keys()
    result = bpy.ops.wm.usd_import(**usd_import_options(available, str(path), import_guides))
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender's USD importer could not read {path.name}")
    new = [obj for obj in bpy.data.objects if obj not in before]
    curves = [obj for obj in new if obj.type == "CURVES"]
    strands = next((obj for obj in curves if obj.name.startswith("Strands")), None)
    if strands is None:
        raise RuntimeError(f"{path.name} holds no Strands curves: is it a Tressel groom layer?")
    guides = next((obj for obj in curves if obj.name.startswith("Guides")), None)
    roots = [obj for obj in new if obj.parent not in new]
    root = roots[0] if len(roots) == 1 else strands

    # Material prims become empties that hold nothing: drop them.
    for obj in new:
        if obj.type == "EMPTY" and obj is not root and not obj.children:
            bpy.data.objects.remove(obj)
    root.name = name
    strands.name = f"{name}_strands"
    strands.data.name = f"{name}_strands"
    if guides is not None:
        guides.name = f"{name}_guides"
        guides.data.name = f"{name}_guides"

    melanin, redness = predicted_melanin(strands.data)
    material = hair_material(f"{name}_hair", melanin, redness)
    for obj in (strands, guides):
        if obj is not None:
            obj.data.materials.append(material)

    imported = ImportedGroom(root=root, strands=strands, guides=guides, material=material,
                             melanin=melanin, redness=redness)
    if head is not None:
        attach_to_head(imported, head, attach)
    return imported


def predicted_melanin(curves: bpy.types.Curves) -> tuple[float, float]:
    """The layer's (melanin, redness), from the preview colour every Tressel layer carries."""
    attribute = curves.attributes.get("displayColor")
    if attribute is None or not len(attribute.data):
        raise RuntimeError("the groom layer has no displayColor: write it with Tressel 0.1+")
    value = attribute.data[0]
    rgb = tuple(value.color)[:3] if hasattr(value, "color") else tuple(value.vector)[:3]
    return melanin_from_preview_color(rgb)


def hair_material(name: str, melanin: float, redness: float) -> bpy.types.Material:
    """A Principled Hair BSDF (Chiang, melanin parametrization) with the predicted pigments."""
    material = bpy.data.materials.new(name)
    if not material.node_tree:  # Blender before 5.0 creates the node tree on request
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (300, 0)
    bsdf = nodes.new("ShaderNodeBsdfHairPrincipled")
    bsdf.model = "CHIANG"
    bsdf.parametrization = "MELANIN"
    bsdf.inputs["Melanin"].default_value = melanin
    bsdf.inputs["Melanin Redness"].default_value = redness
    # Chiang's defaults for human hair; a little per-strand variation reads as real hair.
    bsdf.inputs["Roughness"].default_value = 0.3
    bsdf.inputs["Radial Roughness"].default_value = 0.3
    bsdf.inputs["Random Roughness"].default_value = 0.2
    material.node_tree.links.new(bsdf.outputs[0], output.inputs["Surface"])
    material["tressel_melanin"] = melanin
    material["tressel_melanin_redness"] = redness
    # Solid and Material Preview show the hair's colour, not white.
    material.diffuse_color = (*_approximate_color(melanin, redness), 1.0)
    return material


def _approximate_color(melanin: float, redness: float) -> tuple[float, float, float]:
    from .hair_color import preview_color

    return preview_color(melanin, redness)


def attach_to_head(imported: ImportedGroom, head: bpy.types.Object, attach: str) -> None:
    """Make `head` the strands' surface, with root UVs Blender's hair tools and deformation use.

    The groom root is parented to the head (keeping its place), so the hair follows the head's
    transform; a Deform Curves on Surface modifier makes it follow shape keys and modifiers.
    """
    if head.type != "MESH":
        raise RuntimeError(f"{head.name} is not a mesh: select the head mesh to attach the hair")
    curves = imported.strands.data
    curves.surface = head
    uv_layers = head.data.uv_layers
    if not uv_layers:
        imported.warnings.append(
            f"{head.name} has no UV map: the hair is attached without root UVs, so it will not "
            "follow deformation (add a UV map and attach again)")
    else:
        uv_map = (uv_layers.active or uv_layers[0]).name
        curves.surface_uv_map = uv_map
        imported.uv_map = uv_map
    imported.head = head

    root = imported.root
    world = root.matrix_world.copy()
    root.parent = head
    root.matrix_world = world
    bpy.context.view_layer.update()

    if not imported.uv_map:
        return
    if attach == "ROOT_UV":
        set_surface_uv_from_root_uv(curves)
    elif attach == "NEAREST":
        snap_to_nearest_surface(imported.strands)
    else:
        raise RuntimeError(f"unknown attach mode {attach!r}: use NEAREST or ROOT_UV")
    # Deform Curves on Surface compares the head before and after its shape keys and modifiers
    # through this attribute (Blender's own Empty Hair setup turns it on too).
    head.add_rest_position_attribute = True
    add_surface_deform(imported.strands)


def set_surface_uv_from_root_uv(curves: bpy.types.Curves) -> None:
    """Copy the layer's root UV (`st`, one per curve) into `surface_uv_coordinate`."""
    source = curves.attributes.get("st")
    if source is None:
        raise RuntimeError("the groom layer has no root UV (st): attach with Nearest surface")
    values = [0.0] * (2 * len(curves.curves))
    source.data.foreach_get("vector", values)
    target = curves.attributes.get("surface_uv_coordinate")
    if target is None:
        target = curves.attributes.new("surface_uv_coordinate", "FLOAT2", "CURVE")
    target.data.foreach_set("vector", values)
    curves.update_tag()


def snap_to_nearest_surface(strands: bpy.types.Object) -> None:
    """Blender's own Snap to Nearest Surface: moves roots onto the head, writes their UVs."""
    override = {"active_object": strands, "object": strands, "selected_objects": [strands],
                "selected_editable_objects": [strands]}
    with bpy.context.temp_override(**override):
        result = bpy.ops.curves.snap_curves_to_surface(attach_mode="NEAREST")
    if "FINISHED" not in result:
        raise RuntimeError("Blender could not snap the hair to the head's surface")


def add_surface_deform(strands: bpy.types.Object) -> None:
    """A Deform Curves on Surface modifier, as Blender's own hair setup has: the hair follows
    the head when it is posed or shape-keyed."""
    group = bpy.data.node_groups.get(DEFORM_GROUP)
    if group is None or group.bl_idname != "GeometryNodeTree":
        group = bpy.data.node_groups.new(DEFORM_GROUP, "GeometryNodeTree")
        group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        inputs = group.nodes.new("NodeGroupInput")
        outputs = group.nodes.new("NodeGroupOutput")
        deform = group.nodes.new("GeometryNodeDeformCurvesOnSurface")
        inputs.location, deform.location, outputs.location = (-300, 0), (0, 0), (300, 0)
        group.links.new(inputs.outputs[0], deform.inputs[0])
        group.links.new(deform.outputs[0], outputs.inputs[0])
    modifier = strands.modifiers.new(DEFORM_MODIFIER, "NODES")
    modifier.node_group = group


# -- all or nothing ----------------------------------------------------------------------------


def _collections() -> dict[str, bpy.types.bpy_prop_collection]:
    data = bpy.data
    return {"objects": data.objects, "curves": data.hair_curves, "materials": data.materials,
            "node_groups": data.node_groups, "meshes": data.meshes}


def _snapshot() -> dict[str, set]:
    return {kind: set(items) for kind, items in _collections().items()}


def _remove_new(before: dict[str, set]) -> None:
    """Remove every datablock made since `before` (objects first: they use the others)."""
    for kind, items in _collections().items():
        for item in [item for item in items if item not in before[kind]]:
            try:
                items.remove(item)
            except (ReferenceError, RuntimeError) as exc:
                log.warning("could not remove %s after a failed import: %s", kind, exc)
