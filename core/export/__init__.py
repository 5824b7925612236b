"""Groom formats besides USD: `write_alembic` writes a HairResult as an Ogawa .abc for Unreal's
groom importer, Maya (XGen interactive groom) and Blender.

Importing `tressel.export` imports nothing heavy; the writer loads numpy and the Alembic
binding (the `alembic3d` package, the `alembic` extra) on first use.
"""

from __future__ import annotations

__all__ = ["AlembicOptions", "AlembicReport", "write_alembic"]


def __getattr__(name: str):
    if name in __all__:
        from tressel.export import alembic

        return getattr(alembic, name)
    raise AttributeError(f"module 'tressel.export' has no attribute {name!r}")
