"""Check a groom layer with OpenUSD's own validators (`pxr.UsdValidation`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pxr import Sdr, Usd, UsdShade, UsdValidation
from tressel.usd.material import MTLX_CHIANG_BSDF, MTLX_MELANIN_ABSORPTION, MTLX_SURFACE

MTLX_DEFINITIONS = (
    Path(__file__).resolve().parents[1] / "data" / "usd_shaders" / "mtlx_hair_nodes.usda"
)


SEVERITY = {"Error": "error", "Warn": "warning", "Info": "info"}


@dataclass
class ValidationIssue:
    """One finding of a USD validator."""

    severity: str  # "error", "warning" or "info"
    name: str  # validator and error name, e.g. usdGeomValidators:StageMetadataChecker.…
    message: str
    sites: list[str] = field(default_factory=list)  # prim or property paths


def register_materialx_definitions() -> list[str]:
    """Give Sdr the MaterialX nodes of the hair material where USD lacks MaterialX support.

    The usd-core wheel has no MaterialX plugin, so its shader registry knows no `ND_*` node
    and the validator's ShaderSdrCompliance check would flag every MaterialX shader. Tressel
    ships the interfaces of its three nodes (mtlx_hair_nodes.usda) and registers those that
    USD does not know, so the check still compares every authored input with its node.
    Returns the ids it registered.
    """
    registry = Sdr.Registry()
    missing = [node for node in (MTLX_MELANIN_ABSORPTION, MTLX_CHIANG_BSDF, MTLX_SURFACE)
               if registry.GetShaderNodeByIdentifier(node) is None]
    if missing:
        stage = Usd.Stage.Open(str(MTLX_DEFINITIONS))
        for node in missing:
            shader = UsdShade.Shader(stage.GetPrimAtPath(f"/{node}"))
            for result in UsdShade.ShaderDefUtils.GetDiscoveryResults(
                shader, stage.GetRootLayer().realPath
            ):
                registry.AddDiscoveryResult(result)
    return missing


def validate_stage(stage: Usd.Stage) -> list[ValidationIssue]:
    """Run every registered UsdValidation validator on `stage` (all its loaded prims)."""
    register_materialx_definitions()
    registry = UsdValidation.ValidationRegistry()
    context = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
    issues = []
    for error in context.Validate(stage):
        if error.HasNoError():
            continue
        sites = []
        for site in error.GetSites():
            if site.IsProperty():
                sites.append(str(site.GetProperty().GetPath()))
            elif site.IsPrim():
                sites.append(str(site.GetPrim().GetPath()))
        issues.append(ValidationIssue(
            severity=SEVERITY.get(error.GetType().displayName, "info"),
            name=error.GetIdentifier(),
            message=error.GetMessage(),
            sites=sites,
        ))
    return issues


def validate_layer(path: str | os.PathLike, lod: str | None = None) -> list[ValidationIssue]:
    """Validate a groom layer with its payloads loaded (and `lod` chosen, if given)."""
    from tressel.usd.reader import open_groom_stage

    return validate_stage(open_groom_stage(path, lod))
