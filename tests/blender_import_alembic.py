"""Import an Alembic groom with Blender's own Alembic importer and print what it made, as JSON.

Runs inside a Python that has the `bpy` module (the `.venv-blender` environment), not in
Tressel's environment:

    .venv-blender/bin/python tests/blender_import_alembic.py GROOM.abc

It prints one JSON line: for every object, its name, type and, for curve objects (Blender
makes hair Curves from Alembic curves), the curve and point counts, the attributes
(name -> [domain, type]) and the values of `position`, `radius` and any UV attribute, so a
test can compare them with what was written.
"""

import json
import sys

import bpy


def attribute_values(attribute) -> list:
    if attribute.data_type in ("FLOAT_VECTOR", "FLOAT2"):
        return [list(item.vector) for item in attribute.data]
    return [item.value for item in attribute.data]


def main() -> None:
    path = sys.argv[1]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.wm.alembic_import(filepath=path, as_background_job=False)
    objects = []
    for obj in bpy.data.objects:
        facts = {"name": obj.name, "type": obj.type}
        if obj.type == "CURVES":
            curves = obj.data
            facts["curves"] = len(curves.curves)
            facts["points"] = len(curves.points)
            facts["attributes"] = {a.name: [a.domain, a.data_type] for a in curves.attributes}
            for attribute in curves.attributes:
                if attribute.name in ("position", "radius") or attribute.data_type == "FLOAT2":
                    facts[attribute.name] = attribute_values(attribute)
        objects.append(facts)
    print(json.dumps({"blender": bpy.app.version_string, "result": sorted(result),
                      "objects": objects}))


if __name__ == "__main__":
    main()
