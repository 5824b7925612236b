"""Attention kernels for the HDiT: 2-D neighborhood attention in plain PyTorch (tiled, bounded
memory) with NATTEN as an optional backend, and global/cross attention through SDPA.

Every function takes q, k, v already cosine-normalised and rotated, so the softmax scale is 1.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Query tile of the plain-PyTorch neighborhood attention. An 8×8 tile attends to a 14×14 key
# region (kernel 7): 4× the 49 keys a query needs, but dense and batched over tiles and heads.
# Larger tiles copy fewer overlapping keys but waste more attention work; 8×8 measured best.
DEFAULT_BLOCK = (8, 8)
# Upper bound on the logits held at once (elements); bounds memory at any grid size.
DEFAULT_MAX_LOGITS = 1 << 23

BACKENDS = ("auto", "torch", "natten")


def _at_least_fp32(x: Tensor) -> Tensor:
    # softmax statistics in fp32 even when the matmuls run in bf16
    return x.to(torch.promote_types(x.dtype, torch.float32))


def window_starts(n: int, kernel_size: int, device: torch.device | None = None) -> Tensor:
    """First key index of each query's window: `clamp(i − k//2, 0, n − k)` (SPEC §2.5).

    The window is shifted to stay inside the grid, so every query sees exactly k keys.
    """
    i = torch.arange(n, device=device)
    return (i - kernel_size // 2).clamp(0, n - kernel_size)


def _check_na_args(q: Tensor, k: Tensor, v: Tensor, kernel_size: int) -> None:
    if q.ndim != 5 or q.shape != k.shape or q.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"neighborhood attention wants q, k, v as [B, H, W, heads, d]; got {list(q.shape)}, "
            f"{list(k.shape)}, {list(v.shape)}")
    if kernel_size % 2 == 0:
        raise ValueError(f"neighborhood attention needs an odd kernel size, got {kernel_size}")
    _, h, w, _, _ = q.shape
    if h < kernel_size or w < kernel_size:
        raise ValueError(
            f"neighborhood attention with kernel {kernel_size} needs a token grid of at least "
            f"{kernel_size}x{kernel_size}, got {h}x{w}: use a larger input or a global level")


def _tile_layout(n: int, block: int, kernel_size: int, device: torch.device
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Query-tile and key-region indices along one axis, and the additive window mask.

    Returns `q_idx [T, b]`, `k_idx [T, r]` and `bias [T, b, r]` (0 inside the query's window,
    −inf outside). The last tile is shifted back to end at the border; rows it shares with its
    neighbour are computed twice and written with identical values.
    """
    b = min(block, n)
    r = min(b + kernel_size - 1, n)
    n_tiles = math.ceil(n / b)
    q_start = torch.clamp(torch.arange(n_tiles, device=device) * b, max=n - b)
    starts = window_starts(n, kernel_size, device)
    k_start = torch.clamp(starts[q_start], max=n - r)
    q_idx = q_start[:, None] + torch.arange(b, device=device)
    k_idx = k_start[:, None] + torch.arange(r, device=device)
    w0 = starts[q_idx]  # [T, b]
    inside = (k_idx[:, None, :] >= w0[:, :, None]) & (k_idx[:, None, :] < w0[:, :, None]
                                                       + kernel_size)
    bias = torch.zeros(inside.shape, device=device).masked_fill_(~inside, float("-inf"))
    return q_idx, k_idx, bias


def na2d_torch(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, *,
               block: tuple[int, int] = DEFAULT_BLOCK,
               max_logits: int = DEFAULT_MAX_LOGITS) -> Tensor:
    """2-D neighborhood attention in plain PyTorch; q, k, v, out are `[B, H, W, heads, d]`.

    Queries are tiled into `block` tiles. Each tile takes the union of its queries' windows
    (a (b+k−1)² key region) once and runs one dense attention over it with an additive window
    mask, batched over tiles and heads. Rows of tiles are processed in chunks so that no more
    than `max_logits` logits (and their key regions) exist at a time: memory stays bounded at
    any grid size.
    """
    _check_na_args(q, k, v, kernel_size)
    _, h, w, _, _ = q.shape
    bh, bw = block
    radius = kernel_size // 2
    if h % bh == 0 and w % bw == 0 and min(bh, bw) > radius:
        return _na2d_padded_tiles(q, k, v, kernel_size, bh, bw, max_logits)
    return _na2d_gathered_tiles(q, k, v, kernel_size, block=block, max_logits=max_logits)


@functools.lru_cache(maxsize=16)
def _padded_tile_bias(h: int, w: int, kernel_size: int, bh: int, bw: int, dtype: torch.dtype,
                      device: torch.device) -> Tensor:
    """Additive window mask `[h/bh, w/bw, bh*bw, kh*kw]` of the padded-tile layout.

    Cached: the same few grids recur at every sampling step. Built outside inference mode so
    that a mask first made while sampling can still be used by training in the same process
    (inference tensors cannot be saved for backward).
    """
    with torch.inference_mode(False), torch.no_grad():
        return _build_padded_tile_bias(h, w, kernel_size, bh, bw, dtype, device)


def _build_padded_tile_bias(h: int, w: int, kernel_size: int, bh: int, bw: int,
                            dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = kernel_size // 2

    def axis(n: int, b: int) -> Tensor:  # [tiles, b, b + 2·radius]: key inside query's window
        starts = window_starts(n, kernel_size, device) + radius  # in padded coordinates
        first_key = torch.arange(n // b, device=device)[:, None] * b
        keys = first_key + torch.arange(b + 2 * radius, device=device)
        w0 = starts.view(n // b, b)
        return (keys[:, None, :] >= w0[:, :, None]) & (keys[:, None, :] < w0[:, :, None]
                                                        + kernel_size)

    rows, cols = axis(h, bh), axis(w, bw)
    inside = rows[:, None, :, None, :, None] & cols[None, :, None, :, None, :]
    bias = torch.zeros(inside.shape, dtype=dtype, device=device)
    bias.masked_fill_(~inside, float("-inf"))
    return bias.reshape(h // bh, w // bw, bh * bw, (bh + 2 * radius) * (bw + 2 * radius))


def _pad_heads_first(x: Tensor, radius: int) -> Tensor:
    """`[B, H, W, heads, d]` → zero-padded `[B, heads, H+2r, W+2r, d]` (borders zeroed only)."""
    b, h, w, heads, d = x.shape
    out = x.new_empty(b, heads, h + 2 * radius, w + 2 * radius, d)
    # padded keys are masked out, but must be finite: 0 · NaN would poison the weighted sum
    out[:, :, :radius].zero_()
    out[:, :, h + radius:].zero_()
    out[:, :, :, :radius].zero_()
    out[:, :, :, w + radius:].zero_()
    out[:, :, radius:h + radius, radius:w + radius] = x.permute(0, 3, 1, 2, 4)
    return out


def _na2d_padded_tiles(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, bh: int, bw: int,
                       max_logits: int) -> Tensor:
    """Grids that the tiles divide: with k//2 zero rows/columns around K and V, every tile's
    key region starts at the tile's own corner, so all regions are one strided `unfold` view
    (copied once per chunk) instead of an index gather; the mask hides the padding and
    reproduces the shifted border windows."""
    bsz, h, w, heads, d = q.shape
    dv = v.shape[-1]
    radius = kernel_size // 2
    kh, kw = bh + 2 * radius, bw + 2 * radius
    n_rows, n_cols = h // bh, w // bw
    k_pad = _pad_heads_first(k, radius)
    v_pad = _pad_heads_first(v, radius)
    bias = _padded_tile_bias(h, w, kernel_size, bh, bw, q.dtype, q.device)
    q_tiles_all = q.view(bsz, n_rows, bh, n_cols, bw, heads, d)
    out = torch.empty(bsz, n_rows, bh, n_cols, bw, heads, dv, dtype=v.dtype, device=q.device)
    per_row = bsz * heads * n_cols * bh * bw * kh * kw
    step = max(1, max_logits // per_row)
    for r0 in range(0, n_rows, step):
        r1 = min(r0 + step, n_rows)
        n = r1 - r0
        q_tiles = q_tiles_all[:, r0:r1].permute(0, 5, 1, 3, 2, 4, 6).reshape(
            bsz * heads, n * n_cols, bh * bw, d)
        rows = slice(r0 * bh, r1 * bh + 2 * radius)
        # unfold → [B, heads, n, n_cols, d, kh, kw]; one copy into [.., kh*kw, d] per tile
        k_tiles = k_pad[:, :, rows].unfold(2, kh, bh).unfold(3, kw, bw).permute(
            0, 1, 2, 3, 5, 6, 4).reshape(bsz * heads, n * n_cols, kh * kw, d)
        v_tiles = v_pad[:, :, rows].unfold(2, kh, bh).unfold(3, kw, bw).permute(
            0, 1, 2, 3, 5, 6, 4).reshape(bsz * heads, n * n_cols, kh * kw, dv)
        tile_bias = bias[r0:r1].reshape(1, n * n_cols, bh * bw, kh * kw)
        # fused masked attention per tile (flash kernel on CPU): no logits tensor at all
        tile_out = F.scaled_dot_product_attention(q_tiles, k_tiles, v_tiles,
                                                  attn_mask=tile_bias, scale=1.0)
        out[:, r0:r1] = tile_out.view(bsz, heads, n, n_cols, bh, bw, dv).permute(
            0, 2, 4, 3, 5, 1, 6)
    return out.view(bsz, h, w, heads, dv)


def _na2d_gathered_tiles(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, *,
               block: tuple[int, int] = DEFAULT_BLOCK,
               max_logits: int = DEFAULT_MAX_LOGITS) -> Tensor:
    """Any grid size: tiles and key regions gathered by index (the last tile overlaps)."""
    bsz, h, w, heads, d = q.shape
    dv = v.shape[-1]
    device = q.device
    rq, rk, row_bias = _tile_layout(h, block[0], kernel_size, device)
    cq, ck, col_bias = _tile_layout(w, block[1], kernel_size, device)
    bh, kh = rq.shape[1], rk.shape[1]
    bw, kw = cq.shape[1], ck.shape[1]
    n_col_tiles = cq.shape[0]

    # heads before the grid so that a gathered tile is one contiguous [tokens, d] matrix
    qh, kh_, vh = (t.permute(0, 3, 1, 2, 4) for t in (q, k, v))
    out = torch.empty(bsz, heads, h, w, dv, dtype=v.dtype, device=device)
    col_q = cq[None, :, None, :]  # [1, Tc, 1, bw]
    col_k = ck[None, :, None, :]
    cbias = col_bias[None, :, None, :, None, :]  # [1, Tc, 1, bw, 1, kw]

    per_row_tile = bsz * heads * n_col_tiles * bh * bw * kh * kw
    rows_per_chunk = max(1, max_logits // max(per_row_tile, 1))
    for r0 in range(0, rq.shape[0], rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, rq.shape[0])
        n_rows = r1 - r0
        row_q = rq[r0:r1, None, :, None]  # [Tr, 1, bh, 1]
        row_k = rk[r0:r1, None, :, None]
        q_tiles = qh[:, :, row_q, col_q]  # [B, heads, Tr, Tc, bh, bw, d]
        k_tiles = kh_[:, :, row_k, col_k]  # [B, heads, Tr, Tc, kh, kw, d]
        v_tiles = vh[:, :, row_k, col_k]
        q_tiles = q_tiles.reshape(bsz, heads, n_rows, n_col_tiles, bh * bw, d)
        k_tiles = k_tiles.reshape(bsz, heads, n_rows, n_col_tiles, kh * kw, d)
        v_tiles = v_tiles.reshape(bsz, heads, n_rows, n_col_tiles, kh * kw, dv)
        logits = q_tiles @ k_tiles.transpose(-1, -2)
        # the window mask is separable: a row term plus a column term
        mask = (row_bias[r0:r1, None, :, None, :, None] + cbias).reshape(
            n_rows, n_col_tiles, bh * bw, kh * kw)
        logits = _at_least_fp32(logits).add_(mask)
        probs = torch.softmax(logits, dim=-1).to(v_tiles.dtype)
        tile_out = (probs @ v_tiles).view(bsz, heads, n_rows, n_col_tiles, bh, bw, dv)
        out[:, :, row_q, col_q] = tile_out
    return out.permute(0, 2, 3, 1, 4)


@functools.cache
def _natten_na2d():
    try:
        import natten.functional as natten_functional
    except ImportError:
        return None
    return getattr(natten_functional, "na2d", None)


def natten_available() -> bool:
    """Whether an importable NATTEN provides the fused `na2d` ([B, H, W, heads, d] layout)."""
    return _natten_na2d() is not None


def neighborhood_attention_2d(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, *,
                              backend: str = "auto") -> Tensor:
    """2-D neighborhood attention with shifted border windows; `[B, H, W, heads, d]` layout.

    backend "auto" uses NATTEN on CUDA when it is importable and the plain PyTorch kernel
    otherwise; "torch" and "natten" force one.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown neighborhood-attention backend {backend!r}: use {BACKENDS}")
    use_natten = backend == "natten" or (backend == "auto" and q.is_cuda and natten_available())
    if use_natten:
        na2d = _natten_na2d()
        if na2d is None:
            raise RuntimeError("NATTEN is not installed: install natten or use backend 'torch'")
        _check_na_args(q, k, v, kernel_size)
        return na2d(q, k, v, kernel_size=kernel_size, scale=1.0)
    return na2d_torch(q, k, v, kernel_size)


def global_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Full attention over tokens, `[B, heads, L, d]` layout, softmax scale 1."""
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


# --- references for tests and benchmarks ---------------------------------------------------


def na2d_mask(h: int, w: int, kernel_size: int, device: torch.device | None = None) -> Tensor:
    """Boolean `[h*w, h*w]` mask: True where a key lies inside a query's shifted window."""
    rs, cs = window_starts(h, kernel_size, device), window_starts(w, kernel_size, device)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    row_ok = (rows[None, :] >= rs[:, None]) & (rows[None, :] < rs[:, None] + kernel_size)
    col_ok = (cols[None, :] >= cs[:, None]) & (cols[None, :] < cs[:, None] + kernel_size)
    return (row_ok[:, None, :, None] & col_ok[None, :, None, :]).reshape(h * w, h * w)


def reference_na2d_masked(q: Tensor, k: Tensor, v: Tensor, kernel_size: int) -> Tensor:
    """Neighborhood attention as masked full attention (small grids only: O((HW)²) memory)."""
    _check_na_args(q, k, v, kernel_size)
    bsz, h, w, heads, _d = q.shape
    flat = [t.permute(0, 3, 1, 2, 4).reshape(bsz, heads, h * w, t.shape[-1]) for t in (q, k, v)]
    logits = _at_least_fp32(flat[0] @ flat[1].transpose(-1, -2))
    logits = logits.masked_fill(~na2d_mask(h, w, kernel_size, q.device), float("-inf"))
    out = torch.softmax(logits, dim=-1).to(v.dtype) @ flat[2]
    return out.view(bsz, heads, h, w, -1).permute(0, 2, 3, 1, 4)


def reference_na2d_gather(q: Tensor, k: Tensor, v: Tensor, kernel_size: int) -> Tensor:
    """Neighborhood attention by gathering each query's k² keys (one head at a time).

    The straightforward formulation: per query, an explicit copy of its window's keys and
    values. Used as the baseline the tiled kernel is measured against.
    """
    _check_na_args(q, k, v, kernel_size)
    bsz, h, w, heads, d = q.shape
    device = q.device
    offs = torch.arange(kernel_size, device=device)
    rows = window_starts(h, kernel_size, device)[:, None] + offs  # [H, k]
    cols = window_starts(w, kernel_size, device)[:, None] + offs  # [W, k]
    out = torch.empty(bsz, h, w, heads, v.shape[-1], dtype=v.dtype, device=device)
    r_idx = rows[:, None, :, None]  # [H, 1, k, 1]
    c_idx = cols[None, :, None, :]  # [1, W, 1, k]
    for head in range(heads):
        kw = k[:, r_idx, c_idx, head]  # [B, H, W, k, k, d]
        vw = v[:, r_idx, c_idx, head]
        kw = kw.reshape(bsz, h, w, kernel_size ** 2, d)
        vw = vw.reshape(bsz, h, w, kernel_size ** 2, -1)
        logits = _at_least_fp32(q[:, :, :, head, None, :] @ kw.transpose(-1, -2))
        probs = torch.softmax(logits, dim=-1).to(v.dtype)
        out[:, :, :, head] = (probs @ vw)[..., 0, :]
    return out
