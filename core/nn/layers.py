"""Small building blocks of the DiffLocks HDiT: norms, GEGLU, feed-forwards, Fourier features,
axial positions, axial RoPE, cosine-sim scaling and token merge/split (SPEC §2.1–§2.5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPS = 1e-6  # SPEC §2.1: RMSNorm / AdaRMSNorm epsilon
COSINE_SIM_EPS = 1e-6  # SPEC §2.4: on the *sum* of squares over the head dimension


def _at_least_fp32(*tensors: Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd records these tensors: the in-place fast paths below are then replaced by
    their out-of-place twins (backward needs the intermediates they would overwrite)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def zero_init(layer: nn.Linear) -> nn.Linear:
    """Zero a layer's parameters: residual branches start as the identity (trained weights load)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def linear_residual(x: Tensor, layer: nn.Linear, skip: Tensor) -> Tensor:
    """`skip + layer(x)` with the residual added inside the matrix multiply (no extra pass)."""
    if (torch.is_autocast_enabled(x.device.type) or x.dtype != layer.weight.dtype
            or _needs_grad(x, skip, layer.weight)):
        return skip + layer(x)
    out = torch.addmm(skip.reshape(-1, skip.shape[-1]), x.reshape(-1, x.shape[-1]),
                      layer.weight.t())
    if layer.bias is not None:
        out += layer.bias
    return out.view(skip.shape)


def rms_norm(x: Tensor, scale: Tensor, eps: float = NORM_EPS) -> Tensor:
    """`x * scale / sqrt(mean(x², -1) + eps)` computed in at least fp32, returned in x's dtype."""
    dtype = _at_least_fp32(x, scale)
    if _needs_grad(x, scale):
        xf = x.to(dtype)
        mean_sq = xf.pow(2).mean(dim=-1, keepdim=True)
        return (xf * (scale.to(dtype) * torch.rsqrt(mean_sq + eps))).to(x.dtype)
    # vector_norm accumulates in `dtype` without materialising x² (these passes are
    # memory-bound on the 128×128-token level)
    sum_sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=dtype).square_()
    inv_rms = torch.rsqrt(sum_sq.div_(x.shape[-1]).add_(eps))
    return (x.to(dtype) * inv_rms).mul_(scale.to(dtype)).to(x.dtype)


class RMSNorm(nn.Module):
    """RMS normalisation over the last dimension with a learned per-channel `scale`."""

    def __init__(self, features: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.scale, self.eps)


class AdaRMSNorm(nn.Module):
    """RMSNorm whose per-sample scale is `1 + linear(cond)`, broadcast over the token grid."""

    def __init__(self, features: int, cond_features: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.linear = zero_init(nn.Linear(cond_features, features, bias=False))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale = self.linear(cond) + 1
        # cond is [B, c]; x is [B, ..., features]: insert the token axes between batch and channel
        scale = scale.view(scale.shape[0], *([1] * (x.ndim - 2)), scale.shape[-1])
        return rms_norm(x, scale, self.eps)


class LinearGEGLU(nn.Linear):
    """Linear to `2*out` channels; the first half is the value, the second half the (erf) gate."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features * 2, bias=bias)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        value, gate = super().forward(x).chunk(2, dim=-1)
        if _needs_grad(value):
            return value * F.gelu(gate)
        return F.gelu(gate).mul_(value)


class FeedForwardBlock(nn.Module):
    """`x + down(GEGLU(AdaRMSNorm(x, cond)))` with a zero-initialised down projection."""

    def __init__(self, d_model: int, d_ff: int, cond_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = AdaRMSNorm(d_model, cond_features)
        self.up_proj = LinearGEGLU(d_model, d_ff, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.down_proj = zero_init(nn.Linear(d_ff, d_model, bias=False))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        skip = x
        x = self.up_proj(self.norm(x, cond))
        return linear_residual(self.dropout(x), self.down_proj, skip)


class MappingFeedForwardBlock(nn.Module):
    """The mapping network's feed-forward block: as FeedForwardBlock with a plain RMSNorm."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.up_proj = LinearGEGLU(d_model, d_ff, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.down_proj = zero_init(nn.Linear(d_ff, d_model, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        skip = x
        x = self.up_proj(self.norm(x))
        x = self.down_proj(self.dropout(x))
        return x + skip


class MappingNetwork(nn.Module):
    """`out_norm(blocks(in_norm(x)))`: turns the noise/image embedding into the AdaRMSNorm cond."""

    def __init__(self, n_layers: int, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_norm = RMSNorm(d_model)
        self.blocks = nn.ModuleList(
            [MappingFeedForwardBlock(d_model, d_ff, dropout) for _ in range(n_layers)]
        )
        self.out_norm = RMSNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_norm(x)
        for block in self.blocks:
            x = block(x)
        return self.out_norm(x)


class FourierFeatures(nn.Module):
    """Random Fourier features `cat(cos f, sin f)`, `f = 2π·x @ weightᵀ` (cos first).

    `weight` is a random buffer drawn at construction, so a checkpoint must supply it.
    """

    def __init__(self, in_features: int, out_features: int, std: float = 1.0) -> None:
        super().__init__()
        if out_features % 2:
            raise ValueError(f"FourierFeatures needs an even out_features, got {out_features}")
        self.register_buffer("weight", torch.randn(out_features // 2, in_features) * std)

    def forward(self, x: Tensor) -> Tensor:
        # fp32 at least: the noise embedding is a high-frequency function of log σ
        dtype = _at_least_fp32(x, self.weight)
        f = 2 * math.pi * x.to(dtype) @ self.weight.to(dtype).T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class MPFourier(nn.Module):
    """EDM2 magnitude-preserving Fourier embedding `√2·cos(x ⊗ freqs + phases)` in fp32."""

    def __init__(self, num_channels: int, bandwidth: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32))
        y = y + self.phases.to(torch.float32)
        return (y.cos() * math.sqrt(2)).to(x.dtype)


# --- positions -----------------------------------------------------------------------------


def _cell_centres(lo: float, hi: float, n: int, device: torch.device | None) -> Tensor:
    edges = torch.linspace(lo, hi, n + 1, device=device)
    return (edges[:-1] + edges[1:]) / 2


def make_axial_pos(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Cell-centre positions `[h, w, 2]` of an h×w grid with square pixels, (y, x) order.

    The longer side spans [-1, 1]; the shorter one is shrunk by the aspect ratio.
    """
    y_extent = min(1.0, h / w)
    x_extent = min(1.0, w / h)
    y = _cell_centres(-y_extent, y_extent, h, device)
    x = _cell_centres(-x_extent, x_extent, w, device)
    return torch.stack(torch.meshgrid(y, x, indexing="ij"), dim=-1)


def downscale_pos(pos: Tensor) -> Tensor:
    """Positions of the next-coarser level: the mean of each 2×2 block of `pos [h, w, 2]`."""
    h, w, e = pos.shape
    blocks = pos.view(h // 2, 2, w // 2, 2, e).permute(0, 2, 1, 3, 4)
    return blocks.reshape(h // 2, w // 2, 4, e).mean(dim=-2)


def make_context_pos(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Positions `[h*w, 2]` of the row-major tokens of an h×w image-feature (DINO) map.

    The released model builds this grid with height and width swapped (SPEC §2.2); for square
    maps that is the ordinary grid, for other maps the pairing below reproduces it.
    """
    return make_axial_pos(w, h, device=device).reshape(h * w, 2)


# --- attention helpers ---------------------------------------------------------------------


class AxialRoPE(nn.Module):
    """Axial rotary embedding angles per token and head (SPEC §2.3).

    `dim` is the rotated part of a head (half of d_head). Frequencies are log-spaced in
    [π, 10π) and interleaved across heads: head h gets F[h], F[h+n_heads], ...
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"AxialRoPE needs dim divisible by 4, got {dim}")
        n_freqs = dim // 4
        log_freqs = torch.linspace(math.log(math.pi), math.log(10 * math.pi),
                                   n_heads * n_freqs + 1)[:-1]
        self.register_buffer("freqs", log_freqs.exp().view(n_freqs, n_heads).T.contiguous())

    def forward(self, pos: Tensor) -> Tensor:
        """`pos [..., 2]` (y, x) → angles `[..., n_heads, dim/2]`, y angles first."""
        freqs = self.freqs.to(_at_least_fp32(pos, self.freqs))
        pos = pos.to(freqs.dtype)
        theta_y = pos[..., None, 0:1] * freqs
        theta_x = pos[..., None, 1:2] * freqs
        return torch.cat([theta_y, theta_x], dim=-1)


def apply_rotary_emb(x: Tensor, theta: Tensor) -> Tensor:
    """Rotate the first `2*theta.shape[-1]` channels of x by theta (half-split pairs i, i+d).

    Computed in at least fp32; the result has the promoted dtype so callers can keep fp32 q/k
    until the attention matmul.
    """
    d = theta.shape[-1]
    if 2 * d > x.shape[-1]:
        raise ValueError(f"RoPE needs {2 * d} channels, head has {x.shape[-1]}")
    dtype = _at_least_fp32(x, theta)
    theta = theta.to(dtype)
    return _rotate_half_split(x.to(dtype), theta.cos(), theta.sin())


def _rotate_half_split(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    d = cos.shape[-1]
    x1, x2, rest = x[..., :d], x[..., d:2 * d], x[..., 2 * d:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def rope_cos_sin(theta: Tensor) -> tuple[Tensor, Tensor]:
    """cos and sin of RoPE angles in at least fp32 (computed once, used for q and k)."""
    theta = theta.to(_at_least_fp32(theta))
    return theta.cos(), theta.sin()


def cosine_sim_rope(x: Tensor, scale: Tensor, cos: Tensor, sin: Tensor,
                    eps: float = COSINE_SIM_EPS, out_dtype: torch.dtype | None = None) -> Tensor:
    """`apply_rotary_emb(cosine_sim_scale(x, scale), θ)` in one pass over x.

    The per-(token, head) normalisation factor is folded into cos/sin (a quarter of x's size)
    so x is read once and the result written once, without the concatenation.
    """
    dtype = _at_least_fp32(x, scale, cos)
    if _needs_grad(x, scale):
        rotated = _rotate_half_split(cosine_sim_scale(x, scale, eps), cos.to(dtype), sin.to(dtype))
        return rotated.to(out_dtype or dtype)
    d = cos.shape[-1]
    sum_sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=dtype).square_()
    factor = torch.rsqrt(sum_sq.add_(eps)).mul_(scale.to(dtype).sqrt())
    f_cos, f_sin = factor * cos, factor * sin
    x1, x2, rest = x[..., :d], x[..., d:2 * d], x[..., 2 * d:]
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    torch.mul(x1, f_cos, out=out[..., :d]).sub_(x2 * f_sin)
    torch.mul(x2, f_cos, out=out[..., d:2 * d]).addcmul_(x1, f_sin)
    torch.mul(rest, factor, out=out[..., 2 * d:])
    return out if out_dtype is None else out.to(out_dtype)


def cosine_sim_scale(x: Tensor, scale: Tensor, eps: float = COSINE_SIM_EPS) -> Tensor:
    """`x · sqrt(scale_h) / sqrt(Σ_e x² + eps)` per head, in at least fp32 (SPEC §2.4).

    `scale` must broadcast against x's leading dimensions with a trailing 1 for the head axis
    (callers pass it shaped for their layout).
    """
    dtype = _at_least_fp32(x, scale)
    x = x.to(dtype)
    sum_sq = x.pow(2).sum(dim=-1, keepdim=True)
    return x * (scale.to(dtype).sqrt() * torch.rsqrt(sum_sq + eps))


# --- token merge / split -------------------------------------------------------------------


class TokenMerge(nn.Module):
    """Merge each 2×2 (patch) block of a channels-last grid into one token, then project.

    Feature index inside the merged token is `(dy*pw + dx)*C + c`.
    """

    def __init__(self, in_features: int, out_features: int,
                 patch_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.h, self.w = patch_size
        self.proj = nn.Linear(in_features * self.h * self.w, out_features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        x = x.reshape(b, h // self.h, self.h, w // self.w, self.w, c).permute(0, 1, 3, 2, 4, 5)
        return self.proj(x.reshape(b, h // self.h, w // self.w, self.h * self.w * c))


def _split_tokens(x: Tensor, ph: int, pw: int) -> Tensor:
    b, h, w, _ = x.shape
    x = x.reshape(b, h, w, ph, pw, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * ph, w * pw, -1)


class TokenSplitWithoutSkip(nn.Module):
    """Project each token to a 2×2 (patch) block of tokens: the inverse layout of TokenMerge."""

    def __init__(self, in_features: int, out_features: int,
                 patch_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.h, self.w = patch_size
        self.proj = nn.Linear(in_features, out_features * self.h * self.w, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return _split_tokens(self.proj(x), self.h, self.w)


class TokenSplit(nn.Module):
    """TokenSplitWithoutSkip followed by a learned lerp with the skip: `skip + fac·(x − skip)`."""

    def __init__(self, in_features: int, out_features: int,
                 patch_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.h, self.w = patch_size
        self.proj = nn.Linear(in_features, out_features * self.h * self.w, bias=False)
        self.fac = nn.Parameter(torch.ones(1) * 0.5)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = _split_tokens(self.proj(x), self.h, self.w)
        return torch.lerp(skip, x, self.fac.to(x.dtype))
