"""The image-conditioned hourglass diffusion transformer of DiffLocks (SPEC §2), with the
released parameter names so that `ckpt['model_ema']` loads strictly; sizes come from the
resolved model config (`HDiTConfig.from_dict`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tressel.errors import ConfigError
from tressel.nn.attention import global_attention, neighborhood_attention_2d
from tressel.nn.layers import (
    AdaRMSNorm,
    AxialRoPE,
    FeedForwardBlock,
    FourierFeatures,
    MappingNetwork,
    MPFourier,
    RMSNorm,
    TokenMerge,
    TokenSplit,
    TokenSplitWithoutSkip,
    cosine_sim_rope,
    downscale_pos,
    linear_residual,
    make_axial_pos,
    make_context_pos,
    rope_cos_sin,
    zero_init,
)

MODEL_TYPE = "image_transformer_v2_conditional"
CROSS_D_HEAD = 64  # the cross layers' head size is fixed in the released architecture
SCALE_INIT = 10.0  # initial cosine-sim temperature per head
LOGVAR_CHANNELS = 128  # MPFourier width of the (training-only) logvar head
# The released model appends 16 learned "untied bias" channels to the input; the config JSON
# does not carry the number, so it is a config field with this default.
UNTIED_BIAS_CHANNELS = 16


@dataclass(frozen=True)
class LevelAttention:
    """Self-attention of one level: "neighborhood" (with a kernel) or "global"."""

    type: str
    d_head: int
    kernel_size: int = 7


@dataclass(frozen=True)
class HDiTConfig:
    """Every size of the conditional HDiT. Level 0 is the finest; the last level is the mid."""

    input_channels: int
    input_size: tuple[int, int]
    patch_size: tuple[int, int]
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    d_ffs: tuple[int, ...]
    self_attns: tuple[LevelAttention, ...]
    dropout_rates: tuple[float, ...]
    mapping_width: int
    mapping_depth: int
    mapping_d_ff: int
    mapping_dropout_rate: float
    global_cond_dim: int  # D of the CLS token
    local_cond_shape: tuple[int, int, int]  # (D, h, w) of the image-feature map
    cross_dim: int  # channels of the projected feature map (context of the cross layers)
    cross_self_attn: tuple[bool, ...]  # per level; the last entry is the mid level
    sigma_data: float = 0.3
    sigma_min: float = 0.01
    sigma_max: float = 160.0
    condition_dropout_rate: float = 0.0
    untied_bias_channels: int = UNTIED_BIAS_CHANNELS
    loss_weight_per_channel: tuple[float, ...] | None = None

    @property
    def n_levels(self) -> int:
        return len(self.widths)

    def __post_init__(self) -> None:
        n = len(self.widths)
        for name in ("depths", "d_ffs", "self_attns", "dropout_rates", "cross_self_attn"):
            if len(getattr(self, name)) != n:
                raise ConfigError(
                    f"model config: {name} has {len(getattr(self, name))} entries but widths has "
                    f"{n}; give one entry per level")
        if n < 1:
            raise ConfigError("model config: at least one level is needed")
        for i, (width, attn) in enumerate(zip(self.widths, self.self_attns)):
            if attn.type not in ("neighborhood", "global"):
                raise ConfigError(f"model config: level {i} attention type {attn.type!r} is not "
                                  "supported; use 'neighborhood' or 'global'")
            if width % attn.d_head or width % CROSS_D_HEAD:
                raise ConfigError(f"model config: level {i} width {width} is not a multiple of "
                                  f"the head size {attn.d_head} and {CROSS_D_HEAD}")
        scale = self.patch_size[0] * 2 ** (n - 1), self.patch_size[1] * 2 ** (n - 1)
        if self.input_size[0] % scale[0] or self.input_size[1] % scale[1]:
            raise ConfigError(f"model config: input size {list(self.input_size)} must be a "
                              f"multiple of {list(scale)} (patch size x 2^(levels-1))")
        for i, attn in enumerate(self.self_attns):
            grid = (self.input_size[0] // self.patch_size[0] // 2 ** i,
                    self.input_size[1] // self.patch_size[1] // 2 ** i)
            if attn.type == "neighborhood" and (min(grid) < attn.kernel_size
                                                or attn.kernel_size % 2 == 0):
                raise ConfigError(f"model config: level {i} has a {grid[0]}x{grid[1]} token "
                                  f"grid, which neighborhood attention with kernel "
                                  f"{attn.kernel_size} cannot use; use an odd kernel no larger "
                                  "than the grid, or global attention")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], **overrides: Any) -> HDiTConfig:
        """Build from the resolved DiffLocks model config (the official JSON merged with the
        library defaults, as in the conformance manifest)."""
        try:
            kind = config.get("type", MODEL_TYPE)
            if kind != MODEL_TYPE:
                raise ConfigError(f"model config: type {kind!r} is not supported; Tressel "
                                  f"implements {MODEL_TYPE!r}")
            if config.get("parametrization", "v") != "v":
                raise ConfigError("model config: only the 'v' parametrization is supported")
            n = len(config["widths"])
            rgb = config["rgb_condition"]
            local_shapes = [tuple(int(s) for s in _shape(entry))
                            for entry in rgb["local_condition_shapes"]]
            if len(set(local_shapes)) != 1:
                raise ConfigError("model config: the local condition maps must share one shape, "
                                  f"got {local_shapes}")
            cross_dims = {int(c) for c in rgb["cross_condition_dim"]}
            if len(cross_dims) != 1:
                raise ConfigError("model config: cross_condition_dim must be the same at every "
                                  f"level, got {rgb['cross_condition_dim']}")
            dropout = config.get("dropout_rate", 0.0)
            dropout = [float(dropout)] * n if isinstance(dropout, (int, float)) else dropout
            lw = config.get("loss_weight_per_channel")
            values: dict[str, Any] = {
                "input_channels": int(config["input_channels"]),
                "input_size": _pair(config["input_size"]),
                "patch_size": _pair(config["patch_size"]),
                "widths": tuple(int(w) for w in config["widths"]),
                "depths": tuple(int(d) for d in config["depths"]),
                "d_ffs": tuple(int(d) for d in config["d_ffs"]),
                "self_attns": tuple(
                    LevelAttention(a["type"], int(a["d_head"]), int(a.get("kernel_size", 7)))
                    for a in config["self_attns"]),
                "dropout_rates": tuple(float(d) for d in dropout),
                "mapping_width": int(config["mapping_width"]),
                "mapping_depth": int(config["mapping_depth"]),
                "mapping_d_ff": int(config["mapping_d_ff"]),
                "mapping_dropout_rate": float(config.get("mapping_dropout_rate", 0.0)),
                "global_cond_dim": int(_shape(rgb["global_condition_shape"])[-1]),
                "local_cond_shape": local_shapes[0][-3:],
                "cross_dim": cross_dims.pop(),
                "cross_self_attn": tuple(bool(s) for s in rgb["self_attn"]),
                "sigma_data": float(config.get("sigma_data", 0.3)),
                "sigma_min": float(config.get("sigma_min", 0.01)),
                "sigma_max": float(config.get("sigma_max", 160.0)),
                "condition_dropout_rate": float(config.get("condition_dropout_rate", 0.0)),
                "untied_bias_channels": int(config.get("untied_bias_channels",
                                                    UNTIED_BIAS_CHANNELS)),
                "loss_weight_per_channel": tuple(float(x) for x in lw) if lw else None,
            }
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"model config is incomplete or malformed ({type(exc).__name__}: "
                              f"{exc}); pass the resolved DiffLocks diffusion config") from exc
        values.update(overrides)
        return cls(**values)


def _shape(entry: Any) -> Sequence[int]:
    return entry["shape"] if isinstance(entry, Mapping) else entry


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return int(value), int(value)
    return int(value[0]), int(value[1])


# --- self-attention levels -----------------------------------------------------------------


class SelfAttentionBlock(nn.Module):
    """`x + out_proj(attn(AdaRMSNorm(x, cond)))` with cosine-sim attention and axial RoPE.

    "neighborhood" attends to a k×k window around each token; "global" to every token.
    """

    def __init__(self, d_model: int, d_head: int, cond_features: int, attn: LevelAttention,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.d_head = d_head
        self.n_heads = d_model // d_head
        self.attn_type = attn.type
        self.kernel_size = attn.kernel_size
        self.norm = AdaRMSNorm(d_model, cond_features)
        self.qkv_proj = nn.Linear(d_model, d_model * 3, bias=False)
        self.scale = nn.Parameter(torch.full([self.n_heads], SCALE_INIT))
        self.pos_emb = AxialRoPE(d_head // 2, self.n_heads)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = zero_init(nn.Linear(d_model, d_model, bias=False))
        self.na_backend = "auto"

    def forward(self, x: Tensor, pos: Tensor, cond: Tensor) -> Tensor:
        skip = x
        b, h, w, d = x.shape
        qkv = self.qkv_proj(self.norm(x, cond)).view(b, h, w, 3, self.n_heads, self.d_head)
        q, k, v = qkv.unbind(3)  # [B, h, w, heads, e]
        cos, sin = rope_cos_sin(self.pos_emb(pos))  # [h, w, heads, e/4]
        scale = self.scale[:, None]
        q = cosine_sim_rope(q, scale, cos, sin, out_dtype=v.dtype)
        k = cosine_sim_rope(k, scale, cos, sin, out_dtype=v.dtype)
        if self.attn_type == "neighborhood":
            out = neighborhood_attention_2d(q, k, v, self.kernel_size, backend=self.na_backend)
        else:
            q, k, v = (t.reshape(b, h * w, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
            out = global_attention(q, k, v).transpose(1, 2)
        out = self.dropout(out.reshape(b, h, w, d))
        return linear_residual(out, self.out_proj, skip)


class TransformerLayer(nn.Module):
    """A self-attention block followed by a feed-forward block, both AdaRMSNorm-conditioned."""

    def __init__(self, d_model: int, d_ff: int, cond_features: int, attn: LevelAttention,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = SelfAttentionBlock(d_model, attn.d_head, cond_features, attn, dropout)
        self.ff = FeedForwardBlock(d_model, d_ff, cond_features, dropout)

    def forward(self, x: Tensor, pos: Tensor, cond: Tensor) -> Tensor:
        return self.ff(self.self_attn(x, pos, cond), cond)


class Level(nn.ModuleList):
    """The transformer layers of one resolution, applied in order."""

    def forward(self, x: Tensor, pos: Tensor, cond: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, pos, cond)
        return x


# --- image cross attention -----------------------------------------------------------------


class SpatialTransformerSimpleV2(nn.Module):
    """Image cross layer (SPEC §2.5): image tokens attend to the projected DINO map, and with
    `do_self_attention` also to themselves, through one softmax over both key sets."""

    def __init__(self, d_model: int, context_dim: int, cond_features: int,
                 do_self_attention: bool, d_head: int = CROSS_D_HEAD) -> None:
        super().__init__()
        self.d_head = d_head
        self.n_heads = d_model // d_head
        self.do_self_attention = do_self_attention
        self.x_scale = nn.Parameter(torch.full([self.n_heads], SCALE_INIT))
        self.cond_scale = nn.Parameter(torch.full([self.n_heads], SCALE_INIT))
        self.x_in_norm = AdaRMSNorm(d_model, cond_features)
        if do_self_attention:
            self.x_qkv_proj = nn.Linear(d_model, d_model * 3, bias=False)
        else:
            self.x_q_proj = nn.Linear(d_model, d_model, bias=False)
        self.x_pos_emb = AxialRoPE(d_head // 2, self.n_heads)
        self.cond_kv_proj = nn.Linear(context_dim, d_model * 2, bias=False)
        self.cond_pos_emb = AxialRoPE(d_head // 2, self.n_heads)
        self.ff = FeedForwardBlock(d_model, 2 * d_model, cond_features)
        self.proj_out = zero_init(nn.Linear(d_model, d_model, bias=True))

    def forward(self, x: Tensor, pos: Tensor, cond: Tensor, context: Tensor,
                context_pos: Tensor) -> Tensor:
        """x `[B,h,w,d]`, pos `[h,w,2]`, context `[B,L,c]` (channels-last tokens),
        context_pos `[L,2]`."""
        b, h, w, d = x.shape
        heads, e = self.n_heads, self.d_head
        x_n = self.x_in_norm(x, cond).reshape(b, h * w, d)
        x_scale = self.x_scale[:, None]
        cos, sin = rope_cos_sin(self.x_pos_emb(pos.reshape(h * w, 2)))  # [L, heads, e/4]
        if self.do_self_attention:
            q, k, v = self.x_qkv_proj(x_n).view(b, h * w, 3, heads, e).unbind(2)
            k = cosine_sim_rope(k, x_scale, cos, sin, out_dtype=v.dtype)
        else:
            q = self.x_q_proj(x_n).view(b, h * w, heads, e)
        q = cosine_sim_rope(q, x_scale, cos, sin, out_dtype=x_n.dtype)
        k_c, v_c = self.cond_kv_proj(context).view(b, -1, 2, heads, e).unbind(2)
        cos_c, sin_c = rope_cos_sin(self.cond_pos_emb(context_pos))
        k_c = cosine_sim_rope(k_c, self.cond_scale[:, None], cos_c, sin_c, out_dtype=v_c.dtype)
        if self.do_self_attention:
            k_c = torch.cat([k, k_c], dim=1)
            v_c = torch.cat([v, v_c], dim=1)
        out = global_attention(q.transpose(1, 2), k_c.transpose(1, 2), v_c.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, d)
        return self.ff(linear_residual(out, self.proj_out, x), cond)


class LocalCondProj(nn.Module):
    """Project the DINO patch map to the cross-attention width: `ff(proj_in(map), noise_cond)`."""

    def __init__(self, in_features: int, out_features: int, cond_features: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(in_features, out_features, bias=False)
        self.ff = FeedForwardBlock(out_features, out_features, cond_features)

    def forward(self, patch_map: Tensor, noise_cond: Tensor) -> Tensor:
        """patch_map `[B, D, h, w]` (channels-first) → `[B, h, w, out]` (channels-last)."""
        return self.ff(self.proj_in(patch_map.movedim(1, -1)), noise_cond)


# --- the model -----------------------------------------------------------------------------


class HDiT(nn.Module):
    """ImageTransformerDenoiserModelV2Conditional: F(c_in·x, σ, image features) (SPEC §2)."""

    def __init__(self, config: HDiTConfig) -> None:
        super().__init__()
        self.config = c = config
        mw = c.mapping_width
        n = c.n_levels
        feat_dim, _, _ = c.local_cond_shape
        self.condition_dropout_rate = c.condition_dropout_rate

        self.untied_bias = nn.Parameter(
            torch.zeros(1, c.untied_bias_channels, *c.input_size))
        in_channels = c.input_channels + c.untied_bias_channels
        self.patch_in = TokenMerge(in_channels, c.widths[0], c.patch_size)

        self.time_emb = FourierFeatures(1, mw)
        self.time_in_proj = nn.Linear(mw, mw, bias=False)
        self.time_in_proj_only_t = nn.Linear(mw, mw, bias=False)
        self.mapping = MappingNetwork(c.mapping_depth, mw, c.mapping_d_ff,
                                      c.mapping_dropout_rate)
        self.mapping_only_t = MappingNetwork(c.mapping_depth, mw, c.mapping_d_ff,
                                             c.mapping_dropout_rate)
        self.global_latent_encoder = nn.Sequential(
            nn.Linear(feat_dim + c.global_cond_dim, mw, bias=True))
        self.local_proj = LocalCondProj(feat_dim, c.cross_dim, mw)

        def level(i: int) -> Level:
            return Level([TransformerLayer(c.widths[i], c.d_ffs[i], mw, c.self_attns[i],
                                           c.dropout_rates[i]) for _ in range(c.depths[i])])

        def cross(i: int) -> SpatialTransformerSimpleV2:
            return SpatialTransformerSimpleV2(c.widths[i], c.cross_dim, mw, c.cross_self_attn[i])

        self.down_levels = nn.ModuleList([level(i) for i in range(n - 1)])
        self.up_levels = nn.ModuleList([level(i) for i in range(n - 1)])
        self.mid_level = level(n - 1)
        self.cross_down_layer = nn.ModuleList([cross(i) for i in range(n - 1)])
        self.cross_mid_layer = nn.ModuleList([cross(n - 1)])
        self.cross_up_layer = nn.ModuleList([cross(i) for i in range(n - 1)])
        self.merges = nn.ModuleList(
            [TokenMerge(c.widths[i], c.widths[i + 1]) for i in range(n - 1)])
        self.splits = nn.ModuleList(
            [TokenSplit(c.widths[i + 1], c.widths[i]) for i in range(n - 1)])
        self.out_norm = RMSNorm(c.widths[0])
        self.patch_out = zero_init_split(
            TokenSplitWithoutSkip(c.widths[0], c.input_channels, c.patch_size))
        self.logvar_fourier = MPFourier(LOGVAR_CHANNELS)
        self.logvar_linear = nn.Linear(LOGVAR_CHANNELS, 1, bias=False)

    def set_na_backend(self, backend: str) -> None:
        """Choose the neighborhood-attention backend ("auto", "torch", "natten") for all levels."""
        for module in self.modules():
            if isinstance(module, SelfAttentionBlock):
                module.na_backend = backend

    def forward(self, x: Tensor, sigma: Tensor, cls_token: Tensor | None = None,
                patch_map: Tensor | None = None, *, return_logvar: bool = False,
                generator: torch.Generator | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x `[B,C,H,W]` (already scaled by c_in), sigma `[B]`; cls_token `[B,D]` and patch_map
        `[B,D,h,w]` (channels-first) or both None for the unconditional model (SPEC §2.8).

        Condition dropout (`condition_dropout_rate`) applies in training mode only and draws
        from `generator`, which is then required; unlike the released code, eval-mode inference
        never drops the image conditioning (SPEC §2.9), so results depend only on the inputs.
        """
        c = self.config
        if (cls_token is None) != (patch_map is None):
            raise ValueError("give both cls_token and patch_map, or neither (unconditional)")
        if tuple(x.shape[-2:]) != c.input_size:
            raise ValueError(f"the model is built for {list(c.input_size)} inputs (its untied "
                             f"bias is that size); got {list(x.shape[-2:])}")
        dtype = self.patch_in.proj.weight.dtype
        bsz = x.shape[0]
        device = x.device

        # conditioning (SPEC §2.7)
        c_noise = sigma.to(torch.float32).log() / 4
        time_features = self.time_emb(c_noise[:, None]).to(dtype)
        noise_cond = self.mapping_only_t(self.time_in_proj_only_t(time_features))
        if patch_map is None:
            feat_dim, fh, fw = c.local_cond_shape
            patch_map = torch.zeros(bsz, feat_dim, fh, fw, dtype=dtype, device=device)
            global_cond = torch.zeros(bsz, feat_dim + c.global_cond_dim, dtype=dtype,
                                      device=device)
        else:
            patch_map = patch_map.to(dtype)
            global_cond = torch.cat([patch_map.mean(dim=(2, 3)), cls_token.to(dtype)], dim=-1)
        if self.training and self.condition_dropout_rate > 0:
            if generator is None:
                raise ValueError("condition dropout in training needs an explicit "
                                 "torch.Generator: pass generator=")
            keep = torch.rand(bsz, generator=generator, device=generator.device)
            keep = (keep >= self.condition_dropout_rate).to(device=device, dtype=dtype)
            global_cond = global_cond * keep[:, None]
            patch_map = patch_map * keep[:, None, None, None]
        cond = self.mapping(self.time_in_proj(time_features)
                            + self.global_latent_encoder(global_cond))
        context = self.local_proj(patch_map, noise_cond)  # [B, h, w, cross_dim]
        fh, fw = context.shape[1:3]
        context = context.reshape(bsz, fh * fw, -1)
        context_pos = make_context_pos(fh, fw, device=device)

        # trunk (SPEC §2.6)
        x = torch.cat([x.to(dtype), self.untied_bias.to(dtype).expand(bsz, -1, -1, -1)], dim=1)
        x = self.patch_in(x.movedim(1, -1))
        pos = make_axial_pos(x.shape[1], x.shape[2], device=device)
        skips, poses = [], []
        for down_level, cross, merge in zip(self.down_levels, self.cross_down_layer,
                                            self.merges):
            x = down_level(x, pos, cond)
            x = cross(x, pos, cond, context, context_pos)
            skips.append(x)
            poses.append(pos)
            x = merge(x)
            pos = downscale_pos(pos)
        x = self.mid_level(x, pos, cond)
        x = self.cross_mid_layer[0](x, pos, cond, context, context_pos)
        for i in reversed(range(len(self.up_levels))):
            x = self.splits[i](x, skips[i])
            pos = poses[i]
            x = self.up_levels[i](x, pos, cond)
            x = self.cross_up_layer[i](x, pos, cond, context, context_pos)
        x = self.patch_out(self.out_norm(x)).movedim(-1, 1)
        if not return_logvar:
            return x
        return x, self.logvar(c_noise)

    def logvar(self, c_noise: Tensor) -> Tensor:
        """Learned per-σ log-variance `[B,1,1,1]` of the training loss (unused at inference)."""
        features = self.logvar_fourier(c_noise).to(self.logvar_linear.weight.dtype)
        return (1 + self.logvar_linear(features)).view(-1, 1, 1, 1)


def zero_init_split(split: TokenSplitWithoutSkip) -> TokenSplitWithoutSkip:
    zero_init(split.proj)
    return split


def count_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
