"""Tressel in Maya: a shelf button that turns a portrait into a live USD groom in the scene.

    import tressel_maya
    tressel_maya.show()                                  # what the shelf button runs
    shape = tressel_maya.generate("face.jpg", seed=3)    # scripts and mayapy: blocks

Runs in Maya's own Python with the standard library and `tressel.client`/`tressel.hosting`
only (from the folder `tressel hosts install maya` puts on PYTHONPATH); everything that needs
more is imported when first used, so importing this package never fails for lack of Maya or Qt.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODULE_ROOT = Path(__file__).resolve().parents[2]  # the Maya module folder (hosts/maya)
ICON = MODULE_ROOT / "icons" / "tressel.png"
BUTTON_COMMAND = "import tressel_maya; tressel_maya.show()"

__all__ = ["BUTTON_COMMAND", "ICON", "MODULE_ROOT", "build_shelf", "generate", "show",
           "startup"]


def show() -> Any:
    """The shelf button: the options dialog (or, while a groom runs, the offer to cancel it)."""
    from tressel_maya import controller

    return controller.show()


def generate(photo: str, **options: Any) -> str:
    """Blocking groom of `photo` brought into the scene; returns the mayaUsdProxyShape path.

    See `tressel_maya.controller.generate` for the options.
    """
    from tressel_maya import controller

    return controller.generate(photo, **options)


def build_shelf() -> str:
    """Create (or refill) the Tressel shelf for this session only."""
    from tressel_maya import scene

    button = scene.ShelfButton(
        label="Groom", command=BUTTON_COMMAND, image=ICON.as_posix(),
        annotation="Tressel: make a USD hair groom from a portrait photo",
    )
    return scene.build_shelf([button], on_quit=scene.remove_shelf)


def startup() -> None:
    """What the module's userSetup.py runs once Maya is idle: the shelf, in an interactive UI."""
    try:
        import tressel.hosting  # noqa: F401  (the button needs it: fail here, with advice)

        from tressel_maya import scene

        if scene.is_batch():
            return
        build_shelf()
    except ImportError as exc:
        # The .mod is there but Tressel's Python folder is gone (Tressel uninstalled or moved).
        log.warning("Tressel: the shelf was not built (%s): run `tressel hosts install maya` "
                    "again, or remove the Tressel .mod from your modules folder", exc)
