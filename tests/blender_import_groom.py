"""Import a USD groom layer with Blender's own USD importer and print what Blender made, as JSON.

Runs inside a Python that has the `bpy` module (Blender as a module, see README "USD groom
layers"), not in Tressel's environment:

    .venv-blender/bin/python tests/blender_import_groom.py LAYER.usdc [--guides]

It prints one JSON line: for every object, its name, type, world scale and, for hair Curves
objects, the curve and point counts, the attributes (name -> [domain, type]) and the values
of `position`, `radius`, `curve_type` and `st`, so a test can compare them with the layer.
"""

import json
import sys

import bpy


def attribute_values(attribute) -> list:
    if attribute.data_type in ("FLOAT_VECTOR", "FLOAT2"):
        return [list(item.vector) for item in attribute.data]
    return [item.value for item in attribute.data]


def curves_facts(curves) -> dict:
    facts = {
        "curves": len(curves.curves),
        "points": len(curves.points),
        "attributes": {a.name: [a.domain, a.data_type] for a in curves.attributes},
        "materials": [m.name for m in curves.materials if m is not None],
    }
    for name in ("position", "radius", "curve_type", "st"):
        if name in curves.attributes:
            facts[name] = attribute_values(curves.attributes[name])
    return facts


def main() -> None:
    path = sys.argv[1]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.wm.usd_import(filepath=path, import_guide="--guides" in sys.argv)
    objects = []
    for obj in bpy.data.objects:
        facts = {"name": obj.name, "type": obj.type, "scale": list(obj.matrix_world.to_scale())}
        if obj.type == "CURVES":
            facts.update(curves_facts(obj.data))
        objects.append(facts)
    print(json.dumps({"blender": bpy.app.version_string, "result": sorted(result),
                      "objects": objects}))


if __name__ == "__main__":
    main()
