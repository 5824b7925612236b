"""The keyword arguments for `bpy.ops.wm.usd_import`, fitted to the running Blender's operator.

Blender renames importer options between releases: the custom-property option is
`attr_import_mode` in Blender 4.2's io_usd.cc and `property_import_mode` in 5.0, and an operator given a keyword it does not have raises TypeError. So the options are
chosen from the names the operator itself declares (its RNA properties), never assumed.
No `bpy` import here: the choice is plain data, testable without Blender.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

# The custom-property option, newest name first: every name Blender has used for it.
CUSTOM_PROPERTY_OPTIONS = ("property_import_mode", "attr_import_mode")

# Present with these names in every Blender the extension supports (4.2 and later).
REQUIRED = ("filepath", "import_guide", "import_proxy", "import_render", "import_cameras",
            "import_lights", "import_materials", "import_all_materials", "set_frame_range",
            "create_world_material", "import_visible_only")


def usd_import_options(available: Collection[str], filepath: str,
                       import_guides: bool) -> dict[str, Any]:
    """Only what the layer holds, nothing that changes the scene beyond the new objects
    (no frame range, no world material, no custom properties), in `available`'s names."""
    missing = [name for name in REQUIRED if name not in available]
    if missing:
        raise RuntimeError(f"this Blender's USD importer has no option {', '.join(missing)}: "
                           "Tressel needs Blender 4.2 or later")
    options: dict[str, Any] = {
        "filepath": filepath, "import_guide": import_guides, "import_proxy": False,
        "import_render": True, "import_cameras": False, "import_lights": False,
        "import_materials": False, "import_all_materials": False, "set_frame_range": False,
        "create_world_material": False, "import_visible_only": True,
    }
    name = next((n for n in CUSTOM_PROPERTY_OPTIONS if n in available), None)
    if name is not None:  # without it, Blender's default applies: harmless, only slower
        options[name] = "NONE"
    return options
