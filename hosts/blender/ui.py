"""The Tressel tab of the 3D view sidebar: the options, Generate and Cancel, and the job's state."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from . import groom_import, job_runner, tressel_path

DEFAULT_OUTPUT = "//tressel/"


def _is_mesh(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


class TresselSettings(bpy.types.PropertyGroup):
    """The panel's options, saved with the scene (what `GroomOptions` gets)."""

    photo: StringProperty(name="Photo", subtype="FILE_PATH",
                          description="Photo of a person (JPEG, PNG, TIFF or EXR)")
    seed: IntProperty(name="Seed", min=0, default=0,
                      description="Same photo, model and seed give the same groom")
    strands: StringProperty(
        name="Strands", default="",
        description="A maximum count like 20000, or a density scale like 0.5x; empty keeps the "
                    "model's predicted density")
    points_per_strand: IntProperty(name="Points per strand", min=2, max=256, default=32,
                                   description="Points of each imported strand")
    guides: IntProperty(name="Guides", min=0, default=2000,
                        description="Guide curves written to the layer (0: none)")
    import_guides: BoolProperty(name="Import guides", default=False,
                                description="Also bring the guide curves in as an object")
    bundle: StringProperty(name="Model bundle", default="",
                           description="Model bundle name or folder; empty: the daemon's "
                                       "default model")
    steps: IntProperty(name="Steps", min=0, max=1000, default=0,
                       description="Diffusion steps; 0: the bundle's default")
    crop: BoolProperty(name="Crop to face", default=True,
                       description="Crop the photo around the face first (off: use the whole "
                                   "image)")
    curl: BoolProperty(name="Curl from photo", default=True,
                       description="Curl strands as the photo reads (models with a style head, "
                                   "such as the demo); off keeps them as decoded")
    hair_reading: BoolProperty(
        name="Hair from photo", default=True,
        description="Measure the hair in the photo and take strand length and colour from it "
                    "(models with a style head, such as the demo); off keeps the model's own")
    head: PointerProperty(name="Head", type=bpy.types.Object, poll=_is_mesh,
                          description="Mesh the hair grows from; empty: the selected mesh, if any")
    attach: EnumProperty(name="Attach", items=groom_import.ATTACH_MODES, default="NEAREST",
                         description="How the roots find their place on the head")
    output_dir: StringProperty(
        name="Save to", subtype="DIR_PATH", default=DEFAULT_OUTPUT,
        description="Folder for the groom layers (// is the .blend file's folder); existing "
                    "files are never overwritten")

    def options(self):
        """These settings as a checked `tressel.hosting.GroomOptions`."""
        from tressel.hosting import GroomOptions

        options = GroomOptions(
            seed=int(self.seed), strands=self.strands.strip(),
            points_per_strand=int(self.points_per_strand), guides=int(self.guides),
            bundle=self.bundle.strip(), steps=int(self.steps) or None, crop=bool(self.crop),
            curl=bool(self.curl), hair_reading=bool(self.hair_reading),
            import_guides=bool(self.import_guides), units="cm",
        )
        options.check()
        return options


def output_folder(setting: str) -> Path:
    """Where layers are saved: `//` resolves beside the .blend, or Tressel's data folder for
    an unsaved file (whose `//` means nothing)."""
    setting = setting or DEFAULT_OUTPUT
    if setting.startswith("//") and not bpy.data.filepath:
        from tressel.paths import user_dir

        return user_dir("data", "grooms") / setting[2:]
    return Path(bpy.path.abspath(setting))


def head_for(context: bpy.types.Context, settings: TresselSettings) -> bpy.types.Object | None:
    if settings.head is not None:
        return settings.head
    obj = context.active_object
    if obj is not None and obj.type == "MESH" and obj.select_get():
        return obj
    return None


class TRESSEL_OT_generate(bpy.types.Operator):
    """Generate a groom from the photo; it is imported (and attached to the head) when ready"""

    bl_idname = "tressel.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not job_runner.STATE.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        problem = tressel_path.setup()
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        from tressel.errors import TresselError

        settings = context.scene.tressel
        photo = bpy.path.abspath(settings.photo) if settings.photo else ""
        if not photo or not os.path.isfile(photo):
            self.report({"ERROR"}, f"photo {photo or '(none)'} not found: pick an image file")
            return {"CANCELLED"}
        try:
            options = settings.options()
            head = head_for(context, settings)
            job_runner.start_job(photo, options, output_folder(settings.output_dir),
                                 scene_name=context.scene.name,
                                 head_name=head.name if head else "", attach=settings.attach)
        except (TresselError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Tressel: generating the groom of {Path(photo).name}")
        return {"FINISHED"}


class TRESSEL_OT_cancel(bpy.types.Operator):
    """Stop the running groom job (the daemon stops it too); nothing is imported"""

    bl_idname = "tressel.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return job_runner.STATE.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_runner.cancel_job()
        return {"FINISHED"}


class VIEW3D_PT_tressel(bpy.types.Panel):
    bl_label = "Tressel Groom"
    bl_idname = "VIEW3D_PT_tressel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Tressel"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.tressel
        state = job_runner.STATE
        layout.use_property_split = True
        layout.use_property_decorate = False

        column = layout.column(align=False)
        column.enabled = not state.running
        column.prop(settings, "photo")
        column.prop(settings, "seed")
        column.prop(settings, "strands")
        column.prop(settings, "points_per_strand")
        column.prop(settings, "guides")
        column.prop(settings, "import_guides")
        column.prop(settings, "bundle")
        column.prop(settings, "steps")
        column.prop(settings, "crop")
        column.prop(settings, "curl")
        column.prop(settings, "hair_reading")
        column.prop(settings, "head")
        column.prop(settings, "attach")
        column.prop(settings, "output_dir")

        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator(TRESSEL_OT_generate.bl_idname, icon="OUTLINER_OB_CURVES")
        row.operator(TRESSEL_OT_cancel.bl_idname, icon="CANCEL")

        if state.running:
            if hasattr(layout, "progress"):  # Blender 4.0+
                layout.progress(factor=state.fraction, type="BAR", text=state.progress_text)
            else:
                layout.label(text=state.progress_text, icon="TIME")
        elif state.message:
            box = layout.box()
            box.alert = state.failed
            for index, line in enumerate(_wrap(state.message)):
                icon = ("ERROR" if state.failed else "CHECKMARK") if index == 0 else "BLANK1"
                box.label(text=line, icon=icon)


def _wrap(text: str, width: int = 48) -> list[str]:
    import textwrap

    lines: list[str] = []
    for paragraph in text.splitlines():
        lines += textwrap.wrap(paragraph, width) or [""]
    return lines


CLASSES = (TresselSettings, TRESSEL_OT_generate, TRESSEL_OT_cancel, VIEW3D_PT_tressel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.tressel = PointerProperty(type=TresselSettings)


def unregister() -> None:
    if bpy.app.timers.is_registered(job_runner.poll_job):
        bpy.app.timers.unregister(job_runner.poll_job)
    job_runner.cancel_job()
    del bpy.types.Scene.tressel
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
