"""From scalp texture to placed strands (SPEC §8): density, seeded root sampling, latent lookup.

Every random draw comes from an explicit `torch.Generator`, in the reference's order (r1, r2,
r3), so one seed gives one groom. The draws can also be injected (`RootDraws`) to reproduce a
recorded run, which is how the conformance vectors pin the sampler down.

Roots are (row, col) in [0, 1] of the texture, i.e. (1 - t, s) of the mesh UVs; `rowcol_to_st`
converts them for `HairResult.root_uv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tressel.errors import ConfigError
from tressel.progress import CancelFlag, ProgressFn, check_cancel

# Extra-root candidates are kept away from the exact texture border (reference constants).
_R2_MIN, _R2_MAX = 1e-5, 0.9999


def texture_density(scalp_texture: torch.Tensor, sigma_data: float = 0.3,
                    floor: float = 0.02) -> torch.Tensor:
    """Density [1,1,S,S] in [0,1] from the last texture channel (diffusion units, SPEC §7.1)."""
    density = (scalp_texture[:, -1:] * (0.5 / sigma_data) + 0.5).clamp(0.0, 1.0)
    return density.masked_fill(density < floor, 0.0)


@dataclass
class RootDraws:
    """The three uniform draws of the root sampler: r1 [1,1,S,S], r2 [M,2], r3 [M,1]."""

    r1: torch.Tensor
    r2: torch.Tensor
    r3: torch.Tensor


@dataclass
class RootSample:
    """Sampled roots and how the extra candidates fared."""

    root_uv: torch.Tensor  # [N,2] float32 (row, col): grid roots first, then kept extras
    num_grid: int
    extra_density: torch.Tensor  # [M,1] density at each extra candidate
    extra_accepted: torch.Tensor  # [M] bool


def _rowcol_grid(root_uv: torch.Tensor) -> torch.Tensor:
    # grid_sample wants (x, y) = (col, row) in [-1, 1].
    return torch.stack([2 * root_uv[:, 1] - 1, 2 * root_uv[:, 0] - 1], dim=-1).view(1, 1, -1, 2)


def sample_root_uv(density: torch.Tensor, generator: torch.Generator | None = None,
                   upsample_multiplier: int = 3, draws: RootDraws | None = None) -> RootSample:
    """Grid roots where r1 ≤ density, plus `upsample_multiplier`× extra candidates kept where
    r3 < bilinear density (SPEC §8 steps 2–4)."""
    if density.dim() != 4 or density.shape[:2] != (1, 1):
        raise ConfigError(f"density must be [1,1,S,S], got {list(density.shape)}")
    size_r, size_c = density.shape[-2:]
    kwargs = {"device": density.device, "dtype": density.dtype}
    r1 = torch.rand(density.shape, generator=generator, **kwargs) if draws is None else draws.r1
    if tuple(r1.shape) != tuple(density.shape):
        raise ConfigError(f"r1 must be shaped like the density {list(density.shape)}")
    rows, cols = torch.nonzero((r1 <= density)[0, 0], as_tuple=True)
    grid_uv = torch.stack([(rows.to(density.dtype) + 0.5) / size_r,
                           (cols.to(density.dtype) + 0.5) / size_c], dim=1)
    count = upsample_multiplier * grid_uv.shape[0]
    if draws is None:
        r2 = torch.rand((count, 2), generator=generator, **kwargs)
        r3 = torch.rand((count, 1), generator=generator, **kwargs)
    else:
        r2, r3 = draws.r2, draws.r3
        if tuple(r2.shape) != (count, 2) or tuple(r3.shape) != (count, 1):
            raise ConfigError(f"r2/r3 must be [{count},2]/[{count},1] for {grid_uv.shape[0]} "
                              f"grid roots, got {list(r2.shape)}/{list(r3.shape)}")
    r2 = r2.clamp(_R2_MIN, _R2_MAX)
    if count:
        extra_density = F.grid_sample(density, _rowcol_grid(r2), mode="bilinear",
                                      padding_mode="zeros", align_corners=False).view(count, 1)
    else:
        extra_density = density.new_zeros((0, 1))
    accepted = (r3 < extra_density)[:, 0]
    root_uv = torch.cat([grid_uv, r2[accepted]], dim=0)
    return RootSample(root_uv, int(grid_uv.shape[0]), extra_density, accepted)


def lookup_latents(latent_texture: torch.Tensor, root_uv: torch.Tensor) -> torch.Tensor:
    """The latent [N,L] of the texel each (row, col) root falls in (nearest, half to even)."""
    if root_uv.shape[0] == 0:
        return latent_texture.new_zeros((0, latent_texture.shape[1]))
    sampled = F.grid_sample(latent_texture, _rowcol_grid(root_uv.to(latent_texture.dtype)),
                            mode="nearest", padding_mode="zeros", align_corners=False)
    return sampled[0, :, 0, :].t().contiguous()


def sample_roots(latent_texture: torch.Tensor, density: torch.Tensor,
                 generator: torch.Generator | None = None, upsample_multiplier: int = 3,
                 draws: RootDraws | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(root_uv [N,2] (row, col), strand latents [N,L]) from latents [1,L,S,S] and density."""
    sample = sample_root_uv(density, generator, upsample_multiplier, draws)
    return sample.root_uv, lookup_latents(latent_texture, sample.root_uv)


def rowcol_to_st(root_uv: np.ndarray | torch.Tensor) -> np.ndarray:
    """DiffLocks (row, col) = (1 - t, s) → mesh (s, t), float32 [N,2]."""
    rc = np.asarray(root_uv, dtype=np.float32)
    return np.stack([rc[:, 1], 1.0 - rc[:, 0]], axis=1).astype(np.float32)


@dataclass
class GrownStrands:
    """Everything between the scalp texture and a `HairResult` (numpy, float32)."""

    root_uv: np.ndarray  # [N,2] (row, col) = (1 - t, s)
    latents: np.ndarray  # [N,L]
    strands_tbn: np.ndarray  # [N,V,3] root-relative, local frame
    strands_world: np.ndarray  # [N,V,3] metres
    root_positions: np.ndarray  # [N,3]
    root_normals: np.ndarray  # [N,3]
    density: np.ndarray  # [S,S]
    num_grid: int  # how many of the roots are grid roots (the rest are extras)


def grow_strands(scalp_texture: torch.Tensor, codec: torch.nn.Module,
                 scalp: Mapping[str, np.ndarray], generator: torch.Generator | None = None, *,
                 sigma_data: float = 0.3, density_floor: float = 0.02,
                 upsample_multiplier: int = 3, density_scale: float = 1.0,
                 max_strands: int | None = None, chunk_size: int = 16,
                 draws: RootDraws | None = None, progress: ProgressFn | None = None,
                 cancel: CancelFlag | None = None) -> GrownStrands:
    """Scalp texture [1,L+1,S,S] → sampled roots, decoded and placed strands (SPEC §8–10).

    `density_scale` multiplies the density before sampling (fewer or more strands);
    `max_strands` keeps a seeded random subset in sampler order. Both default to the
    released behaviour. Draw order on `generator`: r1, r2, r3, then the subset permutation.
    """
    from tressel.geometry.placement import place_strands
    from tressel.nn.strand_codec import decode_strands

    if scalp_texture.dim() != 4 or scalp_texture.shape[0] != 1:
        raise ConfigError(f"scalp texture must be [1,C,S,S], got {list(scalp_texture.shape)}")
    latent_dim = codec.config.latent_dim
    if scalp_texture.shape[1] != latent_dim + 1:
        raise ConfigError(f"scalp texture has {scalp_texture.shape[1]} channels but the strand "
                          f"codec needs {latent_dim} latents + 1 density")
    if density_scale < 0:
        raise ConfigError(f"density_scale must be >= 0, got {density_scale}")
    texture = scalp_texture.detach().float().cpu()
    report = progress or (lambda phase, step, total: None)
    report("roots", 0, 1)
    density = texture_density(texture, sigma_data=sigma_data, floor=density_floor)
    if density_scale != 1.0:
        density = (density * density_scale).clamp_(0.0, 1.0)
    sample = sample_root_uv(density, generator, upsample_multiplier, draws)
    root_uv, num_grid = sample.root_uv, sample.num_grid
    if max_strands is not None and root_uv.shape[0] > max_strands:
        keep = torch.randperm(root_uv.shape[0], generator=generator)[:max_strands].sort().values
        root_uv, num_grid = root_uv[keep], int((keep < num_grid).sum())
    latents = lookup_latents(texture[:, :latent_dim], root_uv)
    report("roots", 1, 1)
    check_cancel(cancel)
    strands_tbn = decode_strands(codec, latents, chunk_size=chunk_size, progress=progress,
                                 cancel=cancel).cpu().numpy()
    check_cancel(cancel)
    report("place", 0, 1)
    placed = place_strands(scalp, root_uv.numpy(), strands_tbn)
    report("place", 1, 1)
    return GrownStrands(root_uv.numpy(), latents.numpy(), strands_tbn, placed.strands_world,
                        placed.root_position, placed.root_normal,
                        density[0, 0].numpy(), num_grid)
