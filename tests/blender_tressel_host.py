"""Drive the installed Tressel Blender extension against a real daemon; write what happened as JSON.

Runs inside the `bpy` venv (`.venv-blender/bin/python tests/blender_tressel_host.py SPEC.json`),
started by tests/test_blender_host.py with `BLENDER_USER_EXTENSIONS` pointing at the repository
the extension was installed into and `TRESSEL_DAEMON_DIR` at the test daemon. Timers never fire
in background Blender, so this script calls the extension's poll step (`job_runner.poll_job`)
itself, as Blender's timer would. Scenarios, in order:

1. enable the extension: its panel, operators and scene settings register;
2. Generate on a corrupt photo: the daemon's message, an unchanged scene;
3. Generate (Hair from photo off), then Cancel during diffusion: cancelled, an unchanged scene;
4. Generate with a UV sphere head selected (attach by layer root UV): hair curves, surface,
   material;
5. the import step called directly again (attach to nearest surface), and the hair following
   a deformation of the head through the Surface Deform modifier;
6. Generate on a real portrait with the shipped demo model (the panel's bundle field) on a
   second head, then two small Cycles renders of it (hair hidden / shown), saved as PNG.
"""

import importlib
import json
import math
import sys
import time
from pathlib import Path

import bpy
from mathutils import Matrix, Vector

MODULE = "bl_ext.user_default.tressel"


def scene_state() -> dict:
    """What a failed job must leave exactly as it was."""
    data = bpy.data
    return {
        "objects": sorted(obj.name for obj in data.objects),
        "curves": sorted(c.name for c in data.hair_curves),
        "materials": sorted(m.name for m in data.materials),
        "node_groups": sorted(g.name for g in data.node_groups),
        "meshes": sorted(m.name for m in data.meshes),
        "frame_range": [bpy.context.scene.frame_start, bpy.context.scene.frame_end],
        "world": bpy.context.scene.world.name if bpy.context.scene.world else None,
    }


class RecordingLayout:
    """Stands in for a panel's UILayout (background Blender draws no UI): records what the
    panel's draw() asks for, and checks every property it shows exists."""

    def __init__(self, record: list) -> None:
        self.record = record
        self.enabled = self.alert = True
        self.use_property_split = self.use_property_decorate = False
        self.scale_y = 1.0

    def prop(self, data, name, **_):
        assert name in data.bl_rna.properties, name
        self.record.append(("prop", name, self.enabled))

    def operator(self, idname, **_):
        self.record.append(("operator", idname))

    def label(self, text="", **_):
        self.record.append(("label", text, self.alert))

    def progress(self, factor=0.0, text="", **_):
        self.record.append(("progress", factor, text))

    def row(self, **_):
        return self

    def column(self, **_):
        return self

    def box(self):
        return self


def draw_panel(extension) -> list:
    record: list = []
    panel = type("PanelSelf", (), {"layout": RecordingLayout(record)})()
    extension.ui.VIEW3D_PT_tressel.draw(panel, bpy.context)
    return record


def run_until_done(runner, timeout: float = 120.0, on_tick=None) -> dict:
    """Be Blender's timer: call the poll step until it stops asking to be called again."""
    deadline = time.monotonic() + timeout
    phases, drawn_progress = [], []
    extension = sys.modules[MODULE]
    while True:
        interval = runner.poll_job()
        state = runner.STATE
        if state.phase and (not phases or phases[-1] != state.phase):
            phases.append(state.phase)
        drawn_progress += [item[2] for item in draw_panel(extension) if item[0] == "progress"]
        if on_tick:
            on_tick(state)
        if interval is None:
            break
        if time.monotonic() > deadline:
            raise SystemExit("the job did not finish in time")
        time.sleep(0.02)
    state = runner.STATE
    return {"state": state.job.state, "message": state.message, "failed": state.failed,
            "phases": phases, "drawn_progress": sorted(set(drawn_progress)),
            "drawn_after": draw_panel(extension)}


def generate(settings, photo: str, **options) -> None:
    settings.photo = photo
    for name, value in options.items():
        setattr(settings, name, value)
    result = bpy.ops.tressel.generate()
    assert result == {"FINISHED"}, result


def make_head(center, axes, name: str = "TestHead", color=(0.75, 0.55, 0.45)):
    """A UV-mapped ellipsoid (a UV sphere, scaled), selected and active."""
    if isinstance(axes, (int, float)):
        axes = (axes, axes, axes)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=1.0,
                                         location=center)
    head = bpy.context.active_object
    head.name = name
    head.data.transform(Matrix.Diagonal((*axes, 1.0)))
    bpy.ops.object.shade_smooth()
    skin = bpy.data.materials.new(f"{name}Skin")
    if not skin.node_tree:
        skin.use_nodes = True
    principled = next(n for n in skin.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    principled.inputs["Base Color"].default_value = (*color, 1.0)
    head.data.materials.append(skin)
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    return head


def curve_facts(obj) -> dict:
    curves = obj.data
    roots = [curves.points[c.first_point_index].position for c in curves.curves]
    world = obj.matrix_world
    uv = curves.attributes.get("surface_uv_coordinate")
    st = curves.attributes.get("st")
    return {
        "name": obj.name, "curves": len(curves.curves), "points": len(curves.points),
        "surface": curves.surface.name if curves.surface else None,
        "surface_uv_map": curves.surface_uv_map,
        "surface_uv": [list(d.vector) for d in uv.data] if uv else None,
        "st": [list(d.vector) for d in st.data] if st else None,
        "roots_world": [list(world @ p) for p in roots],
        "materials": [m.name for m in curves.materials if m],
        "modifiers": [(m.name, m.type, m.node_group.name if m.node_group else None)
                      for m in obj.modifiers],
        "top_parent": top_parent(obj).name,
    }


def top_parent(obj):
    while obj.parent is not None:
        obj = obj.parent
    return obj


def material_facts(material) -> dict:
    nodes = [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfHairPrincipled"]
    output = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    linked = output.inputs["Surface"].links[0].from_node if output.inputs["Surface"].links else None
    hair = nodes[0]
    return {"name": material.name, "hair_nodes": len(nodes), "model": hair.model,
            "parametrization": hair.parametrization,
            "melanin": hair.inputs["Melanin"].default_value,
            "redness": hair.inputs["Melanin Redness"].default_value,
            "output_from": linked.bl_idname if linked else None}


def evaluated_roots(obj) -> list:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    curves = evaluated.data
    world = evaluated.matrix_world
    return [list(world @ curves.points[c.first_point_index].position) for c in curves.curves]


def render(path: Path, hide_hair: list) -> None:
    scene = bpy.context.scene
    for obj in hide_hair:
        obj.hide_render = True
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    for obj in hide_hair:
        obj.hide_render = False


def setup_render(center: Vector, extent: float, size: int, samples: int) -> None:
    """Cycles on the CPU, a grey world, a sun, and a camera that frames `extent` metres."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.seed = 1
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 2
    world = bpy.data.worlds.new("TestWorld")
    world.color = (0.35, 0.38, 0.42)
    if world.node_tree is None:
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (0.35, 0.38, 0.42, 1.0)
    scene.world = world
    camera_data = bpy.data.cameras.new("TestCamera")
    camera_data.lens = 60
    camera = bpy.data.objects.new("TestCamera", camera_data)
    scene.collection.objects.link(camera)
    # Face towards -Y (the USD layer's +Z): look from the front, a little left and above.
    half_view = 18.0 / camera_data.lens
    distance = 0.6 * extent / half_view
    camera.location = center + Vector((0.35, -1.0, 0.25)).normalized() * distance
    camera.rotation_euler = (center - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    sun_data = bpy.data.lights.new("TestSun", "SUN")
    sun_data.energy = 4.0
    sun = bpy.data.objects.new("TestSun", sun_data)
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(30))
    scene.collection.objects.link(sun)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    facts: dict = {"blender": bpy.app.version_string}
    bpy.ops.wm.read_factory_settings(use_empty=True)

    # 1. Enabling the extension registers its UI.
    result = bpy.ops.preferences.addon_enable(module=MODULE)
    extension = importlib.import_module(MODULE)
    runner = extension.job_runner
    panel = getattr(bpy.types, "VIEW3D_PT_tressel", None)
    facts["enable"] = {
        "result": sorted(result),
        "panel": None if panel is None else [panel.bl_space_type, panel.bl_region_type,
                                             panel.bl_category],
        "operators": [name for name in ("generate", "cancel")
                      if hasattr(bpy.types, f"TRESSEL_OT_{name}")],
        "settings": hasattr(bpy.types.Scene, "tressel"),
        "tressel_from": sys.modules["tressel"].__file__,
        "daemon_command_set": bool(__import__("os").environ.get("TRESSEL_DAEMON_COMMAND")),
    }
    settings = bpy.context.scene.tressel
    hair_reading = settings.bl_rna.properties["hair_reading"]
    facts["enable"]["hair_reading"] = [hair_reading.name, hair_reading.default,
                                       hair_reading.description, settings.hair_reading]
    settings.output_dir = spec["output_dir"]
    for name, value in spec["options"].items():
        setattr(settings, name, value)

    # 2. A corrupt photo: the daemon's message, nothing changed.
    before = scene_state()
    generate(settings, spec["corrupt_photo"])
    outcome = run_until_done(runner)
    outcome["unchanged"] = scene_state() == before
    facts["corrupt"] = outcome

    # 2b. The import step itself failing half-way (a USD file that is not a groom): everything
    # it had made is removed again.
    not_a_groom = Path(spec["output_dir"]).parent / "not_a_groom.usda"
    not_a_groom.write_text('#usda 1.0\n(\n    defaultPrim = "Groom"\n)\n\n'
                           'def Xform "Groom"\n{\n    def Sphere "Ball"\n    {\n'
                           '        double radius = 0.1\n    }\n}\n')
    try:
        extension.groom_import.import_groom(not_a_groom, "broken")
        facts["bad_layer"] = {"raised": None}
    except RuntimeError as exc:
        facts["bad_layer"] = {"raised": str(exc)}
    facts["bad_layer"]["unchanged"] = scene_state() == before

    # 3. Cancel while the daemon is in diffusion.
    def cancel_in_diffusion(state):
        if state.phase == "diffusion" and bpy.ops.tressel.cancel.poll():
            bpy.ops.tressel.cancel()

    generate(settings, spec["slow_photo"], steps=spec["slow_steps"], hair_reading=False)
    outcome = run_until_done(runner, on_tick=cancel_in_diffusion)
    outcome["unchanged"] = scene_state() == before
    outcome["job_id"] = runner.STATE.job.job_id
    facts["cancel"] = outcome
    settings.steps = spec["options"]["steps"]
    settings.hair_reading = True

    # 4. Generate with the head selected: imported, attached by the layer's root UV.
    center, radius = Vector(spec["head_center"]), spec["head_radius"]
    head = make_head(center, radius)
    settings.attach = "ROOT_UV"
    generate(settings, spec["photo"])
    facts["generate"] = run_until_done(runner)
    facts["generate"]["job_id"] = runner.STATE.job.job_id
    imported = runner.STATE.imported
    facts["groom"] = curve_facts(imported.strands)
    facts["groom"]["layer"] = str(runner.STATE.job.result.path)
    facts["groom"]["guides"] = imported.guides.name if imported.guides else None
    facts["material"] = material_facts(imported.material)
    facts["head_uv_maps"] = [uv.name for uv in head.data.uv_layers]

    # 5. The import step directly, attaching to the nearest surface; then deform the head.
    again = extension.groom_import.import_groom(runner.STATE.job.result.path, "nearest",
                                                head=head, attach="NEAREST")
    facts["nearest"] = curve_facts(again.strands)
    facts["nearest"]["evaluated_rest"] = evaluated_roots(again.strands)
    displace = head.modifiers.new("Grow", "DISPLACE")
    displace.strength, displace.mid_level = spec["displace"], 0.0
    facts["nearest"]["evaluated_displaced"] = evaluated_roots(again.strands)
    head.modifiers.remove(displace)
    for name in [obj.name for obj in [*again.root.children_recursive, again.root]]:
        bpy.data.objects.remove(bpy.data.objects[name])

    # 6. The demo model on a portrait, on its own head, rendered in Cycles without and with hair.
    if spec.get("render"):
        render_spec = spec["render"]
        for obj in [imported.root, *imported.root.children_recursive, head]:
            obj.hide_render = True
        # Tressel's procedural head: the cranium (the hair's surface) and the other parts.
        for part in render_spec["parts"][1:]:
            make_head(part["center"], part["axes"], part["name"], part["color"])
        bpy.ops.object.select_all(action="DESELECT")
        cranium = render_spec["parts"][0]
        demo_head = make_head(cranium["center"], cranium["axes"], "DemoHead", cranium["color"])
        settings.attach = "NEAREST"
        generate(settings, render_spec["photo"], bundle=render_spec["bundle"], crop=True,
                 strands=render_spec["strands"], seed=0)
        facts["demo"] = run_until_done(runner)
        demo = runner.STATE.imported
        facts["demo"]["curves"] = len(demo.strands.data.curves)
        facts["demo"]["surface"] = demo.strands.data.surface.name
        facts["demo"]["material"] = material_facts(demo.material)
        setup_render(Vector(render_spec["view_center"]), render_spec["view_size"],
                     render_spec["size"], render_spec["samples"])
        start = time.perf_counter()
        render(Path(render_spec["bald"]), [demo.strands])
        render(Path(render_spec["hair"]), [])
        facts["render_seconds"] = time.perf_counter() - start
        facts["demo"]["head"] = demo_head.name

    Path(spec["facts"]).write_text(json.dumps(facts))


if __name__ == "__main__":
    main()
