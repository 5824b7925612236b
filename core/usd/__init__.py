"""USD groom layers: `write_groom` turns a HairResult into a layer, `read_groom` loads one back.

Importing `tressel.usd` imports pxr and registers Tressel's USD schema (TresselGroomAPI) with
USD, before any stage exists, which is when USD reads its schema plugins. `import tressel`
alone never imports pxr.
"""

from __future__ import annotations

from tressel.usd.schema import register_schemas

register_schemas()

__all__ = ["WriteOptions", "WriteReport", "read_groom", "register_schemas", "validate_layer",
           "write_groom"]

_LAZY = {
    "write_groom": "tressel.usd.writer",
    "WriteOptions": "tressel.usd.writer",
    "WriteReport": "tressel.usd.writer",
    "read_groom": "tressel.usd.reader",
    "validate_layer": "tressel.usd.validate",
}


def __getattr__(name: str):
    # The writer and reader pull in numpy; load them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tressel.usd' has no attribute {name!r}")
