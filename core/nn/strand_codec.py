"""DiffLocks strand codec (SPEC §6): weight-normalised layers, SIREN decoder, 1D-CNN encoder.

Parameter names and shapes are the released ones (`strand_codec.pt`), including the keys the
forward pass never reads, so an official state dict loads with `strict=True`. Sizes come from
`StrandCodecConfig`; its defaults are the released configuration.

The decoder evaluates the SPEC §6.2 maths in a rearranged but equivalent form: everything that
depends only on the latent (the `zs` columns of each modulation layer) is computed once per
strand, everything that depends only on `t` (the first SIREN layer, the `t` column) once per
call, and the constant factors (`z_scaling`, the per-layer gains, the ×30 SIREN scale) are folded
into the weights once. `decode_strands` runs it chunk by chunk so memory stays bounded.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tressel.checkpoints import compare_shapes, module_shapes
from tressel.cpu_threads import torch_threads
from tressel.errors import BundleError, ConfigError
from tressel.progress import CancelFlag, ProgressFn, check_cancel


@dataclass
class StrandNormalization:
    """Per-axis constants that map strand points and steps to unit scale (SPEC §6.4)."""

    xyz_mean: tuple[float, float, float] = (-0.0001, -0.0080, -0.0602)
    xyz_std: tuple[float, float, float] = (0.0600, 0.0564, 0.0562)
    dir_mean: tuple[float, float, float] = (-8.7517e-07, -9.2789e-05, -4.3253e-04)
    dir_std: tuple[float, float, float] = (0.0005, 0.0005, 0.0004)


@dataclass
class StrandCodecConfig:
    """Sizes of a strand codec; the defaults are the released DiffLocks codec."""

    latent_dim: int = 64
    modulation_hidden_dim: int = 128
    siren_hidden_dim: int = 128
    nr_layers: int = 3
    nr_verts_per_strand: int = 256
    dim_per_value_decoded: int = 3
    scale_init: float = 30.0
    decode_type: str = "dir"
    do_vae: bool = False
    encoder_input_verts: int = 256
    encoder_channels: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    encoder_hidden_dim: int = 512
    normalization: StrandNormalization = field(default_factory=StrandNormalization)

    def __post_init__(self) -> None:
        if self.decode_type != "dir":
            raise ConfigError(f"strand codec decode_type {self.decode_type!r} is not supported: "
                              "only 'dir' (the released DiffLocks codec) is implemented")
        if self.do_vae:
            raise ConfigError("strand codec do_vae=true is not supported: use a codec trained "
                              "with do_vae=false (the released DiffLocks codec)")
        if self.modulation_hidden_dim != self.siren_hidden_dim:
            raise ConfigError("strand codec modulation_hidden_dim must equal siren_hidden_dim "
                              f"({self.modulation_hidden_dim} != {self.siren_hidden_dim})")
        if self.nr_layers < 1 or self.nr_verts_per_strand < 2:
            raise ConfigError("strand codec needs nr_layers >= 1 and nr_verts_per_strand >= 2")
        steps = 2 ** len(self.encoder_channels)
        if self.encoder_input_verts % steps:
            raise ConfigError(f"strand encoder input length {self.encoder_input_verts} must be "
                              f"divisible by {steps} (one halving per conv layer)")
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        if isinstance(self.normalization, Mapping):
            known = {f.name for f in fields(StrandNormalization)}
            extra = set(self.normalization) - known
            if extra:
                raise ConfigError(f"unknown strand normalization keys {sorted(extra)}")
            self.normalization = StrandNormalization(
                **{k: tuple(float(x) for x in v) for k, v in self.normalization.items()})

    @property
    def nr_values_to_decode(self) -> int:
        return self.nr_verts_per_strand - 1

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> StrandCodecConfig:
        """Build from a bundle manifest or a conformance case config (official key names)."""
        config = dict(config)
        known = {f.name for f in fields(cls)}
        decoded = config.pop("nr_values_to_decode", None)
        extra = set(config) - known
        if extra:
            raise ConfigError(f"unknown strand codec config keys {sorted(extra)}: check the "
                              "bundle manifest")
        out = cls(**config)
        if decoded is not None and int(decoded) != out.nr_values_to_decode:
            raise ConfigError(f"nr_values_to_decode {decoded} must be nr_verts_per_strand - 1 "
                              f"= {out.nr_values_to_decode} for decode_type 'dir'")
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["encoder_channels"] = list(self.encoder_channels)
        out["normalization"] = {k: list(v) for k, v in out["normalization"].items()}
        out["nr_values_to_decode"] = self.nr_values_to_decode
        return out


# ------------------------------------------------------------------------------------------
# layers (SPEC §6.1)


class LinearWN(nn.Linear):
    """Linear layer with weight normalisation per output row; `g` is stored as [out, 1]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        # The released init assigns a keep-dim norm, hence the [out, 1] shape of g.
        self.g = nn.Parameter(self.weight.detach().norm(dim=1, keepdim=True).clone())

    def effective_weight(self) -> torch.Tensor:
        # No epsilon, as in torch._weight_norm: a zero row gives NaN, like the reference.
        return self.weight * (self.g / self.weight.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class Conv1dWN(nn.Conv1d):
    """Conv1d with weight normalisation per output channel; `g` is stored as [out, 1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, padding_mode: str = "zeros", bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         padding_mode=padding_mode, bias=bias)
        self.g = nn.Parameter(self.weight.detach().norm(dim=(1, 2), keepdim=True).clone())

    def effective_weight(self) -> torch.Tensor:
        norm = self.weight.flatten(1).norm(dim=1).view(-1, 1, 1)
        return self.weight * (self.g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class BlockSiren(nn.Module):
    """`sin(scale · (W x + b))`; the Linear is named `conv` as in the released checkpoint."""

    def __init__(self, in_features: int, out_features: int, scale_init: float = 30.0,
                 is_first: bool = False) -> None:
        super().__init__()
        self.scale = float(scale_init)
        self.conv = nn.Linear(in_features, out_features)
        # SIREN initialisation (Sitzmann et al. 2020): keeps sin arguments in a useful range.
        bound = 1.0 / in_features if is_first else math.sqrt(6.0 / in_features) / self.scale
        nn.init.uniform_(self.conv.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.scale * self.conv(x))


# ------------------------------------------------------------------------------------------
# decoder (SPEC §6.2)


@dataclass
class _DecoderPlan:
    """Weights of one decoder, rearranged once so each chunk does only per-vertex work."""

    t: torch.Tensor  # [T]
    latent_weight: list[torch.Tensor]  # per layer [Hm, L], z_scaling folded in
    latent_bias: list[torch.Tensor]  # per layer [Hm]
    hidden_weight_t: list[torch.Tensor | None]  # per layer [Hm, Hm] transposed; None at layer 0
    t_term: list[torch.Tensor]  # per layer [T, Hm]: the t column times t
    siren0: torch.Tensor  # [T, Hs]: the first SIREN layer depends on t only
    siren_weight_t: list[torch.Tensor | None]  # per layer [Hs, Hs] transposed, scale/gain folded
    siren_bias: list[torch.Tensor | None]  # per layer [Hs], scale folded
    gain: list[torch.Tensor]  # per layer scalar: z_scaling · gain_per_layer[i]
    decode_weight_t: torch.Tensor  # [Hs, 3], last gain folded in
    decode_bias: torch.Tensor  # [3]


class StrandDecoder(nn.Module):
    """SIREN strand generator (released class StrandGeneratorSiren, decode_type "dir")."""

    def __init__(self, config: StrandCodecConfig) -> None:
        super().__init__()
        self.config = config
        latent, hidden = config.latent_dim, config.modulation_hidden_dim
        siren = config.siren_hidden_dim
        self.z_scaling = nn.Parameter(torch.tensor(0.2))
        # Present in the released checkpoint but unused by the "dir" forward pass.
        self.hsiren_scaling = nn.Parameter(torch.tensor(1.0))
        self.gain_val = nn.Parameter(torch.ones(siren))
        self.gain_per_layer = nn.ParameterList(
            [nn.Parameter(torch.tensor(1.0)) for _ in range(config.nr_layers)])
        self.modulation_layers = nn.ModuleList(
            [LinearWN(latent + 1 if i == 0 else latent + hidden + 1, hidden)
             for i in range(config.nr_layers)])
        self.second_modulation_layers = nn.ModuleList(
            [nn.Linear(hidden, hidden) for _ in range(config.nr_layers)])
        self.siren_layers = nn.ModuleList(
            [BlockSiren(1 if i == 0 else siren, siren, config.scale_init, is_first=i == 0)
             for i in range(config.nr_layers)])
        self.decode_val = LinearWN(siren, config.dim_per_value_decoded)
        norm = config.normalization
        self.register_buffer("dir_mean", torch.tensor(norm.dir_mean, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("dir_std", torch.tensor(norm.dir_std, dtype=torch.float32),
                             persistent=False)

    def sample_positions(self, device: torch.device | str | None = None) -> torch.Tensor:
        """`t = linspace(-1, 1, V-1)`, the SIREN input along the strand."""
        return torch.linspace(-1.0, 1.0, self.config.nr_values_to_decode, dtype=torch.float32,
                              device=device if device is not None else self.z_scaling.device)

    def plan(self) -> _DecoderPlan:
        """Rearrange the weights for `decode_chunk`; cheap (a few 128×193 matrices)."""
        latent = self.config.latent_dim
        scale = self.config.scale_init
        t = self.sample_positions()
        latent_weight, latent_bias, hidden_weight_t, t_term = [], [], [], []
        siren_weight_t, siren_bias, gain = [], [], []
        for i, (mod, block) in enumerate(zip(self.modulation_layers, self.siren_layers)):
            w = mod.effective_weight()
            latent_weight.append(w[:, :latent] * self.z_scaling)
            latent_bias.append(mod.bias)
            hidden_weight_t.append(None if i == 0 else w[:, latent:-1].t().contiguous())
            t_term.append(t[:, None] * w[:, -1][None, :])
            gain.append(self.z_scaling * self.gain_per_layer[i])
            if i == 0:
                siren_weight_t.append(None)
                siren_bias.append(None)
            else:
                # h_{i-1} reaches this layer undivided, so its gain moves into the weight.
                siren_weight_t.append((block.conv.weight * (scale / gain[i - 1])).t().contiguous())
                siren_bias.append(block.conv.bias * scale)
        first = self.siren_layers[0]
        siren0 = torch.sin(first.scale * F.linear(t[:, None], first.conv.weight, first.conv.bias))
        decode_weight_t = (self.decode_val.effective_weight() / gain[-1]).t().contiguous()
        return _DecoderPlan(t, latent_weight, latent_bias, hidden_weight_t, t_term, siren0,
                            siren_weight_t, siren_bias, gain, decode_weight_t,
                            self.decode_val.bias)

    def decode_chunk(self, latents: torch.Tensor, plan: _DecoderPlan,
                     record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Normalised directions [n, V-1, 3] for latents [n, L]; `record` collects SPEC values.

        Works on [n·(V-1), hidden] rows. Without autograd it updates buffers in place, so each
        layer costs two GEMMs and a handful of passes over cache-resident memory.
        """
        inplace = not (torch.is_grad_enabled() and (latents.requires_grad or any(
            p.requires_grad for p in self.parameters())))
        n, steps = latents.shape[0], plan.t.shape[0]
        width = plan.siren0.shape[1]
        rows = n * steps
        hidden = h = torch.empty(0)
        for i in range(len(plan.latent_weight)):
            per_strand = torch.addmm(plan.latent_bias[i], latents, plan.latent_weight[i].t())
            pre = (per_strand[:, None, :] + plan.t_term[i][None]).view(rows, width)
            if i > 0:
                # The per-vertex part of the modulation layer, accumulated onto the rest.
                if inplace:
                    pre.addmm_(hidden, plan.hidden_weight_t[i])
                else:
                    pre = torch.addmm(pre, hidden, plan.hidden_weight_t[i])
            hidden = F.silu(pre, inplace=inplace)
            if i == 0:
                siren = plan.siren0.expand(n, steps, width)
            else:
                siren = torch.addmm(plan.siren_bias[i], h, plan.siren_weight_t[i])
                siren = siren.sin_() if inplace else torch.sin(siren)
            if record is not None and i == 0:
                record["layer0_modulation"] = hidden.view(n, steps, width).clone()
                record["layer0_siren"] = siren.view(n, steps, width).clone()
            # h is kept undivided by z_scaling·gain; the next layer's weights absorb the factor.
            if i == 0:  # never in place: siren is a broadcast view of the shared plan.siren0
                h = (hidden.view(n, steps, width) * siren).view(rows, width)
            else:
                h = siren.mul_(hidden) if inplace else siren * hidden
            if record is not None:
                record[f"h_layer{i}"] = h.view(n, steps, width) / plan.gain[i]
        dir_normalized = torch.addmm(plan.decode_bias, h, plan.decode_weight_t).view(n, steps, -1)
        if record is not None:
            record["dir_normalized"] = dir_normalized
        return dir_normalized

    def forward(self, latents: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"strand_positions": [N,V,3], "strand_directions": [N,V-1,3]}` in metres, TBN frame."""
        directions = self.unnormalize(self.decode_chunk(latents, self.plan()))
        return {"strand_positions": positions_from_directions(directions),
                "strand_directions": directions}

    def unnormalize(self, dir_normalized: torch.Tensor) -> torch.Tensor:
        return dir_normalized * self.dir_std + self.dir_mean


def positions_from_directions(directions: torch.Tensor) -> torch.Tensor:
    """[N,V-1,3] steps → [N,V,3] points with the root exactly at the origin."""
    return F.pad(torch.cumsum(directions, dim=1), (0, 0, 1, 0))


# ------------------------------------------------------------------------------------------
# encoder (SPEC §6.3)


class StrandEncoder(nn.Module):
    """1D-CNN strand encoder (released class StrandEncoder1dCNNWN) → tanh-bounded latents."""

    def __init__(self, config: StrandCodecConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels_in = 2 * config.dim_per_value_decoded
        for channels in config.encoder_channels:
            layers += [Conv1dWN(channels_in, channels, kernel_size=4, stride=2, padding=1,
                                padding_mode="replicate"), nn.SiLU()]
            channels_in = channels
        self.cnn_encoder = nn.Sequential(*layers)
        length = config.encoder_input_verts // 2 ** len(config.encoder_channels)
        flat = channels_in * length
        hidden, latent = config.encoder_hidden_dim, config.latent_dim
        self.aggregate_towards_mean = nn.Sequential(LinearWN(flat, hidden), nn.SiLU())
        self.pred_mean = LinearWN(hidden, latent)
        # Variance head of the VAE variant: present in the released checkpoint, unused here.
        self.aggregate_towards_logstd = nn.Sequential(LinearWN(flat, hidden), nn.SiLU())
        self.pred_logstd = LinearWN(hidden, latent)
        norm = config.normalization
        for name in ("xyz_mean", "xyz_std", "dir_mean", "dir_std"):
            self.register_buffer(name, torch.tensor(getattr(norm, name), dtype=torch.float32),
                                 persistent=False)

    def normalize(self, positions: torch.Tensor, directions: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return ((positions - self.xyz_mean) / (self.xyz_std + 1e-6),
                (directions - self.dir_mean) / (self.dir_std + 1e-6))

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """positions [N,V,3] and directions [N,V-1,3] in metres → latents [N,L] in (-1, 1)."""
        expected = self.config.encoder_input_verts
        if positions.shape[1] != expected or directions.shape[1] != expected - 1:
            raise ConfigError(f"the strand encoder takes {expected} points per strand, got "
                              f"{positions.shape[1]}: resample the strands first")
        pos_n, dir_n = self.normalize(positions, directions)
        dir_n = torch.cat([dir_n, dir_n[:, -1:]], dim=1)
        features = torch.cat([pos_n, dir_n], dim=2).transpose(1, 2)
        encoded = self.cnn_encoder(features).flatten(1)
        return torch.tanh(self.pred_mean(self.aggregate_towards_mean(encoded)))


# ------------------------------------------------------------------------------------------
# codec


class StrandCodec(nn.Module):
    """Encoder plus decoder with the key layout of the released `strand_codec.pt`."""

    def __init__(self, config: StrandCodecConfig | None = None) -> None:
        super().__init__()
        self.config = config or StrandCodecConfig()
        self.encoder = StrandEncoder(self.config)
        self.decoder = StrandDecoder(self.config)

    def encode(self, positions: torch.Tensor) -> torch.Tensor:
        """Strand points [N,V,3] (root at the origin, metres) → latents [N,L]."""
        return self.encoder(positions, positions[:, 1:] - positions[:, :-1])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [N,L] → strand points [N,V,3]; use `decode_strands` for large N."""
        return self.decoder(latents)["strand_positions"]


def load_strand_codec(state_dict: Mapping[str, torch.Tensor],
                      config: StrandCodecConfig | None = None) -> StrandCodec:
    """Build a codec and load a released-format state dict strictly, with a readable error."""
    codec = StrandCodec(config)
    check_state_dict(codec, state_dict, "strand codec")
    codec.load_state_dict(state_dict, strict=True)
    return codec.eval()


def check_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor],
                     what: str) -> None:
    """Raise BundleError naming every missing, unexpected or mis-shaped key."""
    mismatch = compare_shapes(state_dict, module_shapes(module))
    missing = sorted(mismatch.missing)
    unexpected = sorted(mismatch.unexpected)
    shapes = [f"{k}: {list(got)} (expected {list(want)})" for k, got, want in mismatch.wrong]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' …' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append(f"wrong shapes {shapes[:8]}{' …' if len(shapes) > 8 else ''}")
    if problems:
        raise BundleError(f"{what} weights do not match the configuration: "
                          + "; ".join(problems)
                          + ". Re-import the checkpoint or fix the bundle's model config.")


# Strands per chunk: small on CPU so a chunk's activations stay in cache, large on GPUs.
CPU_CHUNK_SIZE = 16
GPU_CHUNK_SIZE = 2048
_CPU_POOL_LOCK = threading.Lock()


def decode_strands(codec: StrandCodec | StrandDecoder, latents: torch.Tensor,
                   chunk_size: int | None = None, progress: ProgressFn | None = None,
                   cancel: CancelFlag | None = None, workers: int | None = None,
                   ) -> torch.Tensor:
    """Decode latents [N,L] into strand points [N,V,3] (TBN frame, metres), chunk by chunk.

    Peak extra memory is a few `chunk_size · (V-1) · hidden` float buffers per worker,
    independent of N. On CPU, `workers` threads (default: torch's thread count) each decode
    whole chunks with single-threaded ops: small independent chunks stay in cache and need no
    thread barrier per op, which also keeps decoding fast on a machine busy with other work.
    Torch's intra-op thread count is set to 1 for the duration and restored afterwards.
    `progress("decode", done, total)` is called from the calling thread.
    """
    decoder = codec.decoder if isinstance(codec, StrandCodec) else codec
    param = decoder.z_scaling
    on_cpu = param.device.type == "cpu"
    if chunk_size is None:
        chunk_size = CPU_CHUNK_SIZE if on_cpu else GPU_CHUNK_SIZE
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    latents = torch.as_tensor(latents).to(device=param.device, dtype=param.dtype)
    count = latents.shape[0]
    positions = torch.zeros(count, decoder.config.nr_verts_per_strand,
                            decoder.config.dim_per_value_decoded,
                            device=param.device, dtype=param.dtype)
    starts = range(0, count, chunk_size)
    total = len(starts)
    reported = -1

    def report(done: int) -> None:
        nonlocal reported
        # At most ~100 reports, so a progress stream stays light for 100k strands.
        if progress is not None and (done == total or done * 100 // total > reported):
            reported = done * 100 // total
            progress("decode", done, total)

    # Grad and inference modes are per thread: the workers take the caller's.
    inference = torch.is_inference_mode_enabled()
    with torch.no_grad():
        plan = decoder.plan()

        def run(start: int) -> None:
            if cancel is not None and cancel.is_set():
                return  # the caller raises Cancelled; skip the remaining chunks quickly
            with torch.inference_mode(inference), torch.no_grad():
                chunk = latents[start:start + chunk_size]
                directions = decoder.unnormalize(decoder.decode_chunk(chunk, plan))
                torch.cumsum(directions, dim=1,
                             out=positions[start:start + chunk.shape[0], 1:])

        workers = workers or (torch.get_num_threads() if on_cpu else 1)
        if workers <= 1 or total <= 1:
            for step, start in enumerate(starts):
                check_cancel(cancel)
                run(start)
                report(step + 1)
            return positions
        with _CPU_POOL_LOCK, torch_threads(1), \
                ThreadPoolExecutor(workers, thread_name_prefix="strand-decode") as pool:
            futures = [pool.submit(run, start) for start in starts]
            try:
                for step, future in enumerate(futures):
                    future.result()
                    check_cancel(cancel)
                    report(step + 1)
            finally:
                for future in futures:
                    future.cancel()
    return positions
