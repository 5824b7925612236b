"""Tressel for Blender: a 3D view sidebar tab that turns a photo into hair curves on the head.

A Blender extension (see blender_manifest.toml). The daemon does the work; this add-on collects
options, follows the job from a timer, and imports the USD layer with Blender's own importer.
Tressel's standard-library client is found through `tressel_path` (install config or env vars).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register() -> None:
    from . import tressel_path, ui

    problem = tressel_path.setup()
    if problem:  # the panel still registers: Generate says what to do
        log.warning("Tressel: %s", problem)
    ui.register()


def unregister() -> None:
    from . import tressel_path, ui

    ui.unregister()
    tressel_path.teardown()
