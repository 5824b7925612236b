"""The groom's hair material: a MaterialX Chiang hair network, a preview colour, raw parameters.

The MaterialX network is `deon_hair_absorption_from_melanin -> chiang_hair_bsdf -> surface`
on the `mtlx` render context, for Karma, RenderMan and other MaterialX renderers. A
UsdPreviewSurface with a matching diffuse colour is the universal fallback (usdview's Storm,
Blender, Maya viewport). The predicted values are the Material's interface inputs, named as
Arnold's `standard_hair` names them, so one edit drives the network and a TD can rebind them to
any other hair shader.
"""

from __future__ import annotations

import numpy as np
from pxr import Gf, Sdf, Usd, UsdShade
from tressel.result import HairMaterial

# MaterialX nodedef ids (libraries/pbrlib/pbrlib_defs.mtlx, MaterialX 1.39). Input and output
# types follow UsdMtlx's mapping: vector3 -> float3, BSDF and surfaceshader -> token.
MTLX_MELANIN_ABSORPTION = "ND_deon_hair_absorption_from_melanin"
MTLX_CHIANG_BSDF = "ND_chiang_hair_bsdf"
MTLX_SURFACE = "ND_surface"

# Eumelanin and pheomelanin absorption (d'Eon et al. 2011) as MaterialX stores them, colours
# exp(-sigma); the defaults of deon_hair_absorption_from_melanin.
EUMELANIN_COLOR = (0.657704, 0.498077, 0.254107)
PHEOMELANIN_COLOR = (0.829444, 0.67032, 0.349938)

# Material interface inputs: (name, predicted field). Names follow Arnold standard_hair where
# it has the parameter; root darkness has no standard_hair input and keeps a descriptive name.
INTERFACE_INPUTS = (
    ("melanin", "melanin"),
    ("melanin_redness", "redness"),
    ("root_darkness_start", "root_darkness_start"),
    ("root_darkness_end", "root_darkness_end"),
    ("root_darkness_strength", "root_darkness_strength"),
)


def melanin_absorption(melanin: float, redness: float) -> np.ndarray:
    """Absorption coefficient sigma_a (RGB) for a melanin concentration and redness in [0, 1].

    The mapping of deon_hair_absorption_from_melanin (and Blender's Principled Hair): the
    concentration maps to a pigment amount -ln(1 - melanin), split into eumelanin and
    pheomelanin by the redness.
    """
    amount = -np.log(max(1.0 - float(melanin), 1e-4))
    eumelanin = amount * (1.0 - float(redness))
    pheomelanin = amount * float(redness)
    sigma = eumelanin * -np.log(EUMELANIN_COLOR) + pheomelanin * -np.log(PHEOMELANIN_COLOR)
    return np.maximum(sigma, 0.0)


def absorption_to_color(sigma: np.ndarray, azimuthal_roughness: float = 0.3) -> np.ndarray:
    """Approximate diffuse colour of hair with absorption sigma_a: the inverse of Chiang et al.
    2016 (section 4.2), sigma_a = (ln(color) / f(beta_n))^2."""
    b = azimuthal_roughness
    f = 5.969 - 0.215 * b + 2.532 * b**2 - 10.73 * b**3 + 5.574 * b**4 + 0.245 * b**5
    return np.exp(-np.sqrt(np.asarray(sigma, dtype=np.float64)) * f)


def preview_color(material: HairMaterial) -> Gf.Vec3f:
    """Linear RGB colour standing in for the hair shader where only UsdPreviewSurface runs."""
    rgb = absorption_to_color(melanin_absorption(material.melanin, material.redness))
    return Gf.Vec3f(*(float(c) for c in rgb))


def author_hair_material(
    stage: Usd.Stage, path: Sdf.Path, material: HairMaterial
) -> UsdShade.Material:
    """Define the hair Material at `path` with its MaterialX and preview networks."""
    mat = UsdShade.Material.Define(stage, path)
    interface = {}
    for name, field in INTERFACE_INPUTS:
        interface[name] = mat.CreateInput(name, Sdf.ValueTypeNames.Float)
        interface[name].Set(float(getattr(material, field)))

    absorption = UsdShade.Shader.Define(stage, path.AppendChild("MelaninAbsorption"))
    absorption.SetShaderId(MTLX_MELANIN_ABSORPTION)
    absorption.CreateInput("melanin_concentration", Sdf.ValueTypeNames.Float).ConnectToSource(
        interface["melanin"]
    )
    absorption.CreateInput("melanin_redness", Sdf.ValueTypeNames.Float).ConnectToSource(
        interface["melanin_redness"]
    )
    absorption_out = absorption.CreateOutput("absorption", Sdf.ValueTypeNames.Float3)

    bsdf = UsdShade.Shader.Define(stage, path.AppendChild("ChiangHairBsdf"))
    bsdf.SetShaderId(MTLX_CHIANG_BSDF)
    bsdf.CreateInput("absorption_coefficient", Sdf.ValueTypeNames.Float3).ConnectToSource(
        absorption_out
    )
    bsdf_out = bsdf.CreateOutput("out", Sdf.ValueTypeNames.Token)

    surface = UsdShade.Shader.Define(stage, path.AppendChild("HairSurface"))
    surface.SetShaderId(MTLX_SURFACE)
    surface.CreateInput("bsdf", Sdf.ValueTypeNames.Token).ConnectToSource(bsdf_out)
    surface_out = surface.CreateOutput("out", Sdf.ValueTypeNames.Token)
    mat.CreateSurfaceOutput("mtlx").ConnectToSource(surface_out)

    preview = UsdShade.Shader.Define(stage, path.AppendChild("PreviewSurface"))
    preview.SetShaderId("UsdPreviewSurface")
    preview.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(preview_color(material))
    preview.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.4)
    preview.CreateInput("specularColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.04))
    preview.CreateInput("useSpecularWorkflow", Sdf.ValueTypeNames.Int).Set(1)
    preview_out = preview.CreateOutput("surface", Sdf.ValueTypeNames.Token)
    mat.CreateSurfaceOutput().ConnectToSource(preview_out)
    return mat


def read_interface(mat: UsdShade.Material) -> dict[str, float]:
    """The Material's predicted-parameter inputs that are authored, by interface name."""
    values = {}
    for name, _ in INTERFACE_INPUTS:
        value = mat.GetInput(name).Get() if mat.GetInput(name) else None
        if value is not None:
            values[name] = float(value)
    return values
