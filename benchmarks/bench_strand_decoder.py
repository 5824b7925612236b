"""Benchmark: Tressel's strand decoder against a line-by-line SPEC §6.2 decoder, same run.

Decodes N strands (default 10,000 × 256 points) twice from the same latents and weights:
  baseline  the SPEC §6.2 maths written out literally (repeat z over t, concatenate the
            modulation input, weight-norm each call, divide by z_scaling·gain), in the official
            50 chunks (SPEC §8 step 6);
  tressel   `tressel.nn.strand_codec.decode_strands` (per-strand and per-t terms hoisted,
            constants folded into the weights, small cache-friendly chunks decoded by one
            worker thread per torch thread).
  floor     the SPEC §6.2 decoder's matrix-product FLOPs (modulation layers over
            [latent, hidden, t], SIREN layers, the output layer) divided by this machine's
            GEMM speed, measured in the same run on the decoder's [chunk·255, 128] × [128, 128]
            product with the same worker threads: the time of the GEMMs alone, at full speed.
Prints the time of each, the speed ratios (tressel against the baseline and against the
floor) and the largest difference of the positions.

    .venv/bin/python benchmarks/bench_strand_decoder.py [--strands 10000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from tressel.nn.strand_codec import StrandCodec, StrandCodecConfig, decode_strands


def weight_norm(weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return weight * (g / weight.norm(dim=1, keepdim=True))


def baseline_decode(sd: dict[str, torch.Tensor], z: torch.Tensor, config: StrandCodecConfig,
                    ) -> torch.Tensor:
    """SPEC §6.2 step by step for one chunk of latents [n, L] → positions [n, V, 3]."""
    n = z.shape[0]
    steps = config.nr_values_to_decode
    t = torch.linspace(-1.0, 1.0, steps).view(1, steps, 1).repeat(n, 1, 1)
    zs = z.view(n, 1, -1).repeat(1, steps, 1) * sd["decoder.z_scaling"]
    m_in = torch.cat([zs, t], dim=2)
    h = t
    for i in range(config.nr_layers):
        mod_w = weight_norm(sd[f"decoder.modulation_layers.{i}.weight"],
                            sd[f"decoder.modulation_layers.{i}.g"])
        hm = F.silu(F.linear(m_in, mod_w, sd[f"decoder.modulation_layers.{i}.bias"]))
        s = torch.sin(config.scale_init * F.linear(h, sd[f"decoder.siren_layers.{i}.conv.weight"],
                                                   sd[f"decoder.siren_layers.{i}.conv.bias"]))
        h = hm * s / (sd["decoder.z_scaling"] * sd[f"decoder.gain_per_layer.{i}"])
        m_in = torch.cat([zs, hm, t], dim=2)
    dec_w = weight_norm(sd["decoder.decode_val.weight"], sd["decoder.decode_val.g"])
    dir_n = F.linear(h, dec_w, sd["decoder.decode_val.bias"])
    norm = config.normalization
    directions = dir_n * torch.tensor(norm.dir_std) + torch.tensor(norm.dir_mean)
    positions = torch.cumsum(directions, dim=1)
    return torch.cat([torch.zeros(n, 1, 3), positions], dim=1)


def spec_flops(config: StrandCodecConfig, strands: int) -> float:
    """Floating-point operations of the SPEC §6.2 decoder's matrix products for `strands`.

    Per vertex: modulation layer 0 over [z, t], layers i>0 over [z, h_mod, t], every SIREN
    layer (the first one has a single input) and the 3-wide output layer.
    """
    latent, hidden, siren = (config.latent_dim, config.modulation_hidden_dim,
                             config.siren_hidden_dim)
    per_vertex = (latent + 1) * hidden + 1 * siren
    per_vertex += (config.nr_layers - 1) * ((latent + hidden + 1) * hidden + siren * siren)
    per_vertex += siren * config.dim_per_value_decoded
    return 2.0 * per_vertex * strands * config.nr_values_to_decode


def gemm_rate(config: StrandCodecConfig, chunk_size: int, workers: int,
              seconds: float = 1.0) -> float:
    """This machine's GEMM speed (FLOP/s) on the decoder's own shape, as decode_strands runs.

    `workers` threads each multiply [chunk·(V-1), hidden] by [hidden, hidden] with
    single-threaded ops, into a preallocated buffer, for about `seconds`.
    """
    rows = chunk_size * config.nr_values_to_decode
    width = config.siren_hidden_dim
    weight = torch.randn(width, width) * 0.1

    def one_worker(_: int) -> int:
        x, out = torch.randn(rows, width), torch.empty(rows, width)
        torch.mm(x, weight, out=out)  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(x, weight, out=out)
            count += 1
        return count

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            products = sum(pool.map(one_worker, range(workers)))
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return 2.0 * rows * width * width * products / elapsed


def randomize(codec: StrandCodec, seed: int) -> None:
    """Trained-like magnitudes: weight-norm gains near the row norms, scalars near 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in codec.decoder.named_parameters():
            if name.endswith(".g"):
                p.mul_(0.5 + torch.rand(p.shape, generator=gen))
            elif p.dim() == 0 and name != "z_scaling":
                p.fill_(0.7 + 0.6 * float(torch.rand((), generator=gen)))
            elif name.endswith("bias") and "siren" not in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strands", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=16, help="Tressel's chunk size")
    parser.add_argument("--baseline-chunks", type=int, default=50, help="official: 50 chunks")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs each")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = StrandCodecConfig()
    codec = StrandCodec(config).eval()
    randomize(codec, seed=1)
    gen = torch.Generator().manual_seed(2)
    latents = torch.tanh(0.8 * torch.randn(args.strands, config.latent_dim, generator=gen))
    sd = {k: v.detach() for k, v in codec.state_dict().items()}
    print(f"{args.strands} strands x {config.nr_verts_per_strand} points, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")

    def run_baseline() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([baseline_decode(sd, chunk, config)
                              for chunk in torch.chunk(latents, args.baseline_chunks)])

    def run_tressel() -> torch.Tensor:
        return decode_strands(codec, latents, chunk_size=args.chunk_size)

    threads = torch.get_num_threads()
    timings: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        # Interleaved so that background load affects all alike.
        for name, fn in (("baseline", run_baseline), ("tressel", run_tressel)):
            start = time.perf_counter()
            outputs[name] = fn()
            timings[name] = min(timings.get(name, math.inf), time.perf_counter() - start)
        rate = gemm_rate(config, args.chunk_size, threads)
        timings["floor"] = min(timings.get("floor", math.inf),
                               spec_flops(config, args.strands) / rate)
    diff = float((outputs["baseline"] - outputs["tressel"]).abs().max())
    scale = float(outputs["baseline"].abs().max())
    print(f"baseline (SPEC §6.2 line by line, {args.baseline_chunks} chunks): "
          f"{timings['baseline']:.2f} s")
    print(f"tressel decode_strands (chunk {args.chunk_size}): {timings['tressel']:.2f} s")
    flops = spec_flops(config, args.strands)
    print(f"GEMM floor: SPEC §6.2's {flops / 1e9:.0f} GFLOP of matrix products at "
          f"{flops / timings['floor'] / 1e9:.0f} GFLOP/s (best measured, {threads} workers, "
          f"chunk {args.chunk_size}): {timings['floor']:.2f} s")
    print(f"speed-up over the baseline: {timings['baseline'] / timings['tressel']:.2f}x")
    print(f"tressel / GEMM floor: {timings['tressel'] / timings['floor']:.2f}x")
    print(f"max |difference| of positions: {diff:.3g} m (max |position| {scale:.3g} m)")


if __name__ == "__main__":
    main()
