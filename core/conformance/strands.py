"""Conformance handlers for the strand kinds: strand_decoder, strand_encoder, placement,
postprocess and rgb2material (vectors/README.md §4.1, 4.2, 4.5, 4.6, 4.7).

Every size comes from the case's config, params and arrays; the handlers go through the same
public functions the pipeline uses.
"""

from __future__ import annotations

import numpy as np
import torch
from tressel.conformance import Case, handler


def _tensor(case: Case, name: str) -> torch.Tensor:
    array = case.input(name)
    if array is None:
        raise ValueError(f"case {case.name} has no input {name!r}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _codec(case: Case, config: dict):
    from tressel.nn.strand_codec import StrandCodecConfig, load_strand_codec

    state_dict = case.state_dict()
    if state_dict is None:
        raise ValueError(f"case {case.name} has no weights")
    return load_strand_codec(state_dict, StrandCodecConfig.from_dict(config))


def _scalp(case: Case, uv_map_size: int) -> dict[str, np.ndarray]:
    from tressel.geometry.scalp import compute_scalp_maps
    from tressel.result import ScalpMesh

    mesh = ScalpMesh(vertices=case.input("mesh_verts"), faces=case.input("mesh_faces"),
                     uv=case.input("mesh_uv"))
    scalp = {"vertices": mesh.vertices, "faces": mesh.faces, "uv": mesh.uv}
    scalp.update(compute_scalp_maps(mesh, uv_map_size))
    return scalp


def _numpy(values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in values.items()}


@handler("strand_decoder")
def run_strand_decoder(case: Case) -> dict[str, np.ndarray]:
    """Latents → positions and directions through the fast decoder, plus its intermediates."""
    from tressel.nn.strand_codec import decode_strands, positions_from_directions

    codec = _codec(case, case.config)
    latents = _tensor(case, "latents")
    decoder = codec.decoder
    with torch.no_grad():
        plan = decoder.plan()
        directions = decoder.unnormalize(decoder.decode_chunk(latents, plan))
        record: dict[str, torch.Tensor] = {}
        decoder.decode_chunk(latents[:2], plan, record)  # debug arrays cover a prefix only
    out = _numpy(record)
    out["t"] = plan.t.numpy()
    out["directions"] = directions.numpy()
    out["positions"] = positions_from_directions(directions).numpy()
    # The chunked pipeline path must agree with the one-call result.
    chunked = decode_strands(codec, latents, chunk_size=max(1, latents.shape[0] // 3))
    if not torch.allclose(chunked, torch.from_numpy(out["positions"]), atol=1e-6, rtol=0):
        raise AssertionError("decode_strands in chunks differs from the one-call decode")
    return out


@handler("strand_encoder")
def run_strand_encoder(case: Case) -> dict[str, np.ndarray]:
    """Positions and directions → latents; the normalised inputs and a decode round trip."""
    codec = _codec(case, case.config)
    positions = _tensor(case, "positions")
    directions = _tensor(case, "directions")
    with torch.no_grad():
        latents = codec.encoder(positions, directions)
        pos_n, dir_n = codec.encoder.normalize(positions, directions)
        roundtrip = codec.decode(latents)
    return _numpy({"latents": latents, "positions_normalized": pos_n,
                   "directions_normalized": dir_n, "roundtrip_positions": roundtrip})


@handler("placement")
def run_placement(case: Case) -> dict[str, np.ndarray]:
    """Scalp maps from the mesh, then roots (row, col) + TBN-space strands → world."""
    from tressel.geometry.placement import place_strands

    size = int(case.config.get("uv_map_size", 512))
    if not case.config.get("uv_map_t_flip", True):
        raise ValueError("only t-flipped UV maps (the DiffLocks convention) are implemented")
    scalp = _scalp(case, size)
    placed = place_strands(scalp, case.input("root_uv"), case.input("strands_tbn"),
                           uv_map_size=size)
    return {
        "strands_world": placed.strands_world,
        "v_tangents": scalp["vertex_tangents"], "v_bitangents": scalp["vertex_bitangents"],
        "v_normals": scalp["vertex_normals"], "index_map": scalp["face_map"],
        "bary_map": scalp["bary_map"], "root_pixel": placed.root_pixel,
        "root_face": placed.root_face, "root_bary": placed.root_bary,
        "root_tangent": placed.root_tangent, "root_bitangent": placed.root_bitangent,
        "root_normal": placed.root_normal, "root_position": placed.root_position,
    }


@handler("postprocess")
def run_postprocess(case: Case) -> dict[str, np.ndarray]:
    """Texture + injected draws → roots, latents, decoded and placed strands."""
    from tressel.roots import RootDraws, grow_strands, sample_root_uv, texture_density

    config, params = case.config, case.params
    codec = _codec(case, config["strand_codec"])
    texture = _tensor(case, "texture")
    channels = int(config.get("texture_channels", texture.shape[1]))
    if texture.shape[1] != channels:
        raise ValueError(f"texture has {texture.shape[1]} channels, config says {channels}")
    draws = RootDraws(_tensor(case, "r1"), _tensor(case, "r2"), _tensor(case, "r3"))
    scalp = _scalp(case, int(config.get("uv_map_size", 512)))
    sigma_data = float(config.get("sigma_data", 0.3))
    floor = float(params.get("density_floor", 0.02))
    multiplier = int(params.get("upsample_multiplier", 3))
    grown = grow_strands(texture, codec, scalp, None, sigma_data=sigma_data, density_floor=floor,
                         upsample_multiplier=multiplier, draws=draws)
    # params.decode_chunks has no numerical effect (README §4.6); decode_strands chunks itself.
    density = texture_density(texture, sigma_data=sigma_data, floor=floor)
    sample = sample_root_uv(density, None, multiplier, draws)
    return {
        "root_uv": grown.root_uv, "latents": grown.latents, "strands_tbn": grown.strands_tbn,
        "strands_world": grown.strands_world, "density": density.numpy(),
        "root_uv_grid": sample.root_uv[:sample.num_grid].numpy(),
        "extra_density": sample.extra_density.numpy(),
        "extra_accepted": sample.extra_accepted.numpy().astype(np.uint8),
    }


@handler("rgb2material")
def run_rgb2material(case: Case) -> dict[str, np.ndarray]:
    """DINOv2 patch map → 11 material values, with the confidence and material maps."""
    from tressel.nn.rgb2material import RGB2Material, RGB2MaterialConfig
    from tressel.nn.strand_codec import check_state_dict

    model = RGB2Material(RGB2MaterialConfig.from_dict(case.config))
    state_dict = case.state_dict()
    if state_dict is None:
        raise ValueError(f"case {case.name} has no weights")
    check_state_dict(model, state_dict, "rgb2material")
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        prediction = model.eval().predict(_tensor(case, "patch_map"))
    return _numpy({"material": prediction.material, "conf_map": prediction.conf_map,
                   "mat_map": prediction.mat_map})
