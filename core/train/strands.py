"""Strand codec training and scalp textures made from grooms (SPEC §6, §7.1, §7.2).

Strands are stored in world space; the codec works root-relative in the scalp's local frame
(local x -> -tangent, y -> normal, z -> bitangent, SPEC §10). `strands_to_local` is the exact
inverse of `tressel.geometry.placement.place_strands` with the same per-root frames, so a strand
encoded here and decoded at inference lands where it came from.

A scalp texture has `latent_dim + 1` channels at S x S: each texel holds the latent of the
strand whose root lies nearest the texel centre (texel `row = floor((1 - t) S)`,
`col = floor(s S)`), texels without a root are inpainted from the nearest filled texel, and
the last channel is the density in diffusion units, `(density - 0.5) * 2 * sigma_data`
(SPEC §7.1), where the density is the fraction of the texel inside the groom's hairline times
the groom's strand density.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tressel.nn.strand_codec import StrandCodec, StrandCodecConfig
from tressel.train.common import OptimConfig, TrainState, sample_indices, train_loop
from tressel.train.data import load_groom_strands, read_groom_meta

log = logging.getLogger(__name__)


def st_to_rowcol(root_uv: np.ndarray) -> np.ndarray:
    """Mesh (s, t) -> DiffLocks (row, col) = (1 - t, s)."""
    return np.stack([1.0 - root_uv[:, 1], root_uv[:, 0]], axis=1).astype(np.float32)


def strands_to_local(scalp: Mapping[str, np.ndarray], root_uv: np.ndarray,
                     positions: np.ndarray) -> np.ndarray:
    """World strands [N,V,3] with roots at (s, t) -> root-relative local strands [N,V,3]."""
    from tressel.geometry.placement import root_frames

    *_, tangent, bitangent, normal = root_frames(scalp, st_to_rowcol(root_uv))
    frame = np.stack([-tangent, normal, bitangent], axis=1).astype(np.float32)  # [N,3,3]
    rel = positions - positions[:, :1]
    # place_strands computes world = local @ frame; frames are orthonormal, so invert with .T
    return np.matmul(rel, np.transpose(frame, (0, 2, 1))).astype(np.float32)


def collect_codec_strands(folders: list[Path], scalp: Mapping[str, np.ndarray],
                          per_groom: int, seed: int, progress=None) -> np.ndarray:
    """Local strands sampled from every groom and its mirror: [2 * len * per_groom, V, 3]."""
    rng = np.random.default_rng(seed)
    out = []
    for i, folder in enumerate(folders):
        for mirrored in (False, True):
            positions, root_uv = load_groom_strands(folder, mirrored)
            pick = rng.choice(len(positions), min(per_groom, len(positions)), replace=False)
            out.append(strands_to_local(scalp, root_uv[pick], positions[pick]))
        if progress is not None:
            progress("strands", i + 1, len(folders))
    return np.concatenate(out)


def normalization_from(strands: np.ndarray) -> dict[str, list[float]]:
    """Per-axis mean/std of points and steps: the codec's normalisation (SPEC §6.4)."""
    steps = np.diff(strands, axis=1)
    return {"xyz_mean": strands.mean((0, 1)).tolist(), "xyz_std": strands.std((0, 1)).tolist(),
            "dir_mean": steps.mean((0, 1)).tolist(), "dir_std": steps.std((0, 1)).tolist()}


def train_strand_codec(strands: np.ndarray, config: dict, optim: OptimConfig, out_dir: Path,
                       seed: int, resume: bool = False, progress=None, cancel=None
                       ) -> tuple[StrandCodec, dict]:
    """Train encoder + decoder to reproduce local strands; returns the EMA codec and metrics."""
    torch.manual_seed(seed)
    codec = StrandCodec(StrandCodecConfig.from_dict(config))
    data = torch.from_numpy(strands)
    dir_std = torch.tensor(config["normalization"]["dir_std"])
    xyz_std = torch.tensor(config["normalization"]["xyz_std"])
    held = max(1, len(data) // 50)
    train, valid = data[held:], data[:held]

    def loss_fn(model: StrandCodec, step: int, generator: torch.Generator):
        batch = train[sample_indices(len(train), optim.batch_size, generator)]
        latents = model.encode(batch)
        out = model.decoder(latents)
        directions = (out["strand_directions"] - (batch[:, 1:] - batch[:, :-1])) / dir_std
        points = (out["strand_positions"] - batch) / xyz_std
        dir_loss = directions.abs().mean()
        pos_loss = points.abs().mean()
        return {"loss": dir_loss + pos_loss, "dir_l1": dir_loss, "pos_l1": pos_loss}

    state: TrainState = train_loop("strand-codec", codec, loss_fn, optim, out_dir, seed,
                                   resume=resume, progress=progress, cancel=cancel)
    codec = state.ema.eval()
    with torch.no_grad():
        recon = codec.decode(codec.encode(valid))
        err = (recon - valid).norm(dim=-1)
    metrics = {"valid_strands": int(held), "mean_point_error_mm": round(float(err.mean()) * 1e3, 3),
               "tip_error_mm": round(float(err[:, -1].mean()) * 1e3, 3),
               "seconds": round(state.seconds, 1)}
    return codec, metrics


def texel_density(style: dict, size: int, sub: int = 4) -> np.ndarray:
    """Fraction of each texel inside the style's hairline, times its strand density [S,S]."""
    from tressel.synth.groom import GroomStyle, hair_mask
    from tressel.synth.head import UV_HI, UV_LO

    n = size * sub
    centres = (np.arange(n) + 0.5) / n
    col_s, row_t = np.meshgrid(centres, 1.0 - centres, indexing="xy")  # row 0 is t = 1
    uv = np.stack([col_s.ravel(), row_t.ravel()], 1)
    inside = (uv >= UV_LO).all(1) & (uv <= UV_HI).all(1)
    mask = hair_mask(uv, GroomStyle(**style)) & inside
    frac = mask.reshape(size, sub, size, sub).mean((1, 3))
    return (frac * float(style["density"])).astype(np.float32)


def groom_texture(codec: StrandCodec, scalp: Mapping[str, np.ndarray], positions: np.ndarray,
                  root_uv: np.ndarray, style: dict, size: int, sigma_data: float) -> np.ndarray:
    """The `[latent_dim + 1, S, S]` scalp texture of one groom (float32)."""
    from scipy.ndimage import distance_transform_edt

    row = np.clip(np.floor((1.0 - root_uv[:, 1]) * size), 0, size - 1).astype(np.int64)
    col = np.clip(np.floor(root_uv[:, 0] * size), 0, size - 1).astype(np.int64)
    centre_r = (row + 0.5) / size
    centre_c = (col + 0.5) / size
    dist = (1.0 - root_uv[:, 1] - centre_r) ** 2 + (root_uv[:, 0] - centre_c) ** 2
    texel = row * size + col
    order = np.lexsort((dist, texel))
    first = np.ones(len(order), bool)
    first[1:] = texel[order][1:] != texel[order][:-1]
    chosen = order[first]
    local = strands_to_local(scalp, root_uv[chosen], positions[chosen])
    with torch.no_grad():
        latents = codec.encode(torch.from_numpy(local)).numpy()
    latent_dim = latents.shape[1]
    grid = np.zeros((size * size, latent_dim), np.float32)
    filled = np.zeros(size * size, bool)
    grid[texel[chosen]] = latents
    filled[texel[chosen]] = True
    if not filled.all():
        _, (ri, ci) = distance_transform_edt(~filled.reshape(size, size), return_indices=True)
        grid = grid.reshape(size, size, -1)[ri, ci].reshape(size * size, -1)
    density = texel_density(style, size)
    texture = np.concatenate([grid.T.reshape(latent_dim, size, size),
                              ((density - 0.5) * 2 * sigma_data)[None]], 0)
    return texture.astype(np.float32)


def build_textures(codec: StrandCodec, folders: list[Path], scalp: Mapping[str, np.ndarray],
                   size: int, sigma_data: float, progress=None, cancel=None) -> np.ndarray:
    """Textures of every groom and its mirror, interleaved: [2 * len, C, S, S] float32."""
    from tressel.progress import check_cancel

    textures = []
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        style = read_groom_meta(folder)["style"]
        for mirrored in (False, True):
            positions, root_uv = load_groom_strands(folder, mirrored)
            textures.append(groom_texture(codec, scalp, positions, root_uv, style, size,
                                          sigma_data))
        if progress is not None:
            progress("textures", i + 1, len(folders))
    return np.stack(textures)


def texture_to_density(texture: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return (texture[:, -1:] * (0.5 / sigma_data) + 0.5).clamp(0, 1)


def upsample_nearest(texture: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(texture, size=(size, size), mode="nearest")
