"""Tressel in Houdini: a SOP node that turns a portrait into hair curves, a LOP, and `generate`.

Only the standard library and `tressel.client`/`tressel.hosting` are used; `hou` and `pxr`
are imported where they are needed, so this package imports in any Python.

    import tressel_houdini
    result = tressel_houdini.generate("/shots/portrait.jpg", seed=3, strands="20000")
    result.path        # $HIP/tressel/portrait_s3.usdc (hython) or ./tressel/... (plain Python)
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tressel.hosting import GroomOptions, HostResult, run_groom_job

log = logging.getLogger(__name__)

__all__ = ["create_groom", "ensure_node_type", "generate"]


def _hou() -> Any | None:
    try:
        import hou
    except ImportError:
        return None
    return hou


def generate(photo: str | os.PathLike[str], *, node: Any = None,
             output_dir: str | os.PathLike[str] | None = None, quiet: bool = False,
             **options: Any) -> HostResult:
    """Blocking: groom `photo` through the daemon and return the result (`.path` is the layer).

    For hython scripts and farm jobs. `options` are `GroomOptions` fields (seed, strands,
    points_per_strand, guides, bundle, steps, crop, curl, hair_reading, units: metres by
    default, Houdini's unit). The layer goes to `output_dir`, by default `$HIP/tressel` (in
    hython) or `./tressel`. With `node`, a Tressel Groom node is pointed at the new layer and
    recooked.
    """
    hou = _hou()
    settings = GroomOptions(**{"units": "m", **options})
    if output_dir is None:
        if hou is not None:
            from tressel_houdini import ui
            from tressel_houdini.node import OUTPUT_DIR

            output_dir = ui.expand(OUTPUT_DIR)
        else:
            output_dir = "tressel"

    def progress(phase: str, step: int, total: int) -> None:
        if not quiet:
            print(f"tressel: {phase} {step}/{total}" if total else f"tressel: {phase}",
                  flush=True)

    result = run_groom_job(photo, settings, output_dir, progress=progress)
    if node is not None:
        from tressel_houdini import ui
        from tressel_houdini.node import hip_relative

        ui.set_parm(node, "layer", hip_relative(result.path, ui.expand("$HIP")))
        ui.set_parm(node, "error", "")
        ui.recook(node)
    log.info("tressel: wrote %s", result.path)
    return result


def create_groom(photo: str | None = None, **kwargs: Any) -> Any:
    """Put a Tressel Groom node down (see `tressel_houdini.shelf.create_groom`)."""
    from tressel_houdini.shelf import create_groom as create

    return create(photo, **kwargs)


def ensure_node_type() -> Any:
    """Build (or load) the Tressel Groom node type in this Houdini session."""
    from tressel_houdini.nodetype import ensure_node_type as ensure

    return ensure(_hou())
