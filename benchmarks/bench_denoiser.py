"""Benchmark one forward of the full released-size DiffLocks denoiser on the CPU (random
weights, 256×256 texture, 55×55 DINO maps) in fp32 and bf16, plus the neighborhood-attention
kernel against the straightforward gather formulation measured in the same run.

    .venv/bin/python benchmarks/bench_denoiser.py [--dtypes fp32,bf16] [--repeats 2]
        [--threads N] [--skip-model] [--skip-na] [--profile]

Each model dtype runs in its own subprocess so that its peak RSS is its own. CPU time is
printed beside wall time: on a shared machine wall time includes waiting for the cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (Linux), so a later peak is the forward's own.

    Writing 5 to clear_refs resets VmHWM, which is also what ru_maxrss reports afterwards."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_since_reset_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 ** 2
    return _peak_rss_gb()


def build_denoiser(dtype_name: str):
    import torch
    from tressel.difflocks_import import OFFICIAL_DIFFUSION_CONFIG
    from tressel.nn.denoiser import Denoiser
    from tressel.nn.hdit import HDiT, HDiTConfig

    torch.manual_seed(0)
    inner = HDiT(HDiTConfig.from_dict(OFFICIAL_DIFFUSION_CONFIG))
    with torch.no_grad():  # zero-initialised branches get weights so every path does real work
        for module in inner.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.any():
                module.weight.normal_(0, module.in_features ** -0.5)
    inner = inner.to(getattr(torch, DTYPES[dtype_name])).eval()
    return Denoiser(inner, 0.3).eval()


def model_worker(dtype_name: str, repeats: int, profile: bool, threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    denoiser = build_denoiser(dtype_name)
    build_s = time.perf_counter() - start
    rss_after_build = _peak_rss_gb()  # the peak so far: building, random init, dtype cast
    can_reset = _reset_peak_rss()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 65, 256, 256, generator=gen) * 10.0
    sigma = torch.tensor([10.0])
    cls_token = torch.randn(1, 1024, generator=gen)
    patch_map = torch.randn(1, 1024, 55, 55, generator=gen)
    times, cpu_times = [], []
    with torch.no_grad():
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out = denoiser(x, sigma, cls_token, patch_map)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                denoiser(x, sigma, cls_token, patch_map)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25),
                  file=sys.stderr)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    return {"dtype": dtype_name, "build_s": build_s, "times_s": times, "cpu_s": cpu_times,
            "rss_after_build_gb": rss_after_build,
            # resetting the high-water mark also resets ru_maxrss: combine the two phases
            "peak_rss_gb": max(rss_after_build, _peak_rss_gb()),
            "forward_peak_rss_gb": _peak_rss_since_reset_gb() if can_reset else None,
            "threads": torch.get_num_threads()}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, index tensors
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_na(repeats: int) -> list[dict]:
    import torch
    from tressel.nn.attention import na2d_torch, reference_na2d_gather

    rows = []
    gen = torch.Generator().manual_seed(0)
    for size, heads in ((128, 16), (64, 32)):  # the two neighborhood levels of the released model
        q, k, v = (torch.randn(1, size, size, heads, 64, generator=gen) for _ in range(3))
        reference = reference_na2d_gather(q, k, v, 7)
        tiled = na2d_torch(q, k, v, 7)
        err = (tiled - reference).abs().max().item()
        qkv = (q, k, v)
        t_ref = _time(lambda qkv=qkv: reference_na2d_gather(*qkv, 7), 1)
        t_tiled = _time(lambda qkv=qkv: na2d_torch(*qkv, 7), repeats)
        rows.append({"grid": f"{size}x{size}x{heads} heads", "reference_s": t_ref,
                     "tiled_s": t_tiled, "speedup": t_ref / t_tiled, "max_abs_diff": err})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=2,
                        help="forwards per dtype (the first includes allocator warm-up)")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--skip-na", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="print a torch.profiler table of one more forward (stderr)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the model forwards (default: torch's choice); "
                             "1 gives a figure that a busy shared machine disturbs least")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(model_worker(args.worker, args.repeats, args.profile, args.threads)))
        return 0

    if not args.skip_na:
        print("neighborhood attention, kernel 7, fp32 (tiled kernel vs per-query gather):")
        for row in bench_na(repeats=3):
            print(f"  {row['grid']:<22} gather {row['reference_s']:7.3f} s   tiled "
                  f"{row['tiled_s']:6.3f} s   speed-up {row['speedup']:5.1f}x   "
                  f"max|diff| {row['max_abs_diff']:.1e}")
    if args.skip_model:
        return 0
    results = {}
    for dtype_name in args.dtypes.split(","):
        cmd = [sys.executable, __file__, "--worker", dtype_name, "--repeats", str(args.repeats)]
        if args.profile:
            cmd.append("--profile")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        if args.profile:
            print(proc.stderr)
        results[dtype_name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print("full denoiser forward, [1,65,256,256] + 55x55 DINO maps, "
          f"{next(iter(results.values()))['threads']} threads:")
    for name, r in results.items():
        times = ", ".join(f"{t:.1f}" for t in r["times_s"])
        cpu = ", ".join(f"{t:.1f}" for t in r["cpu_s"])
        fwd = r["forward_peak_rss_gb"]
        fwd = f"{fwd:.2f} GB during the forwards, " if fwd is not None else ""
        print(f"  {name}: forward {times} s wall, {cpu} s CPU (first, then warm)   "
              f"build {r['build_s']:.1f} s   peak RSS {fwd}{r['peak_rss_gb']:.2f} GB overall "
              f"(build peak {r['rss_after_build_gb']:.2f} GB)")
    if "fp32" in results and "bf16" in results:
        ratio = min(results["fp32"]["times_s"]) / min(results["bf16"]["times_s"])
        print(f"  bf16 speed-up over fp32 (best of each): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
