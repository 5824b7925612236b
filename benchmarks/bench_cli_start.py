"""How fast `tressel generate` fails on a mistake, against `tressel --version`, in one run.

    .venv/bin/python benchmarks/bench_cli_start.py [--repeats 5]

Every check the CLI can make (inputs, output folder, options, model name, thread setting) runs
before torch, timm or pxr are imported, so a typo should cost about what starting the CLI costs.
Each command runs in a fresh process, interleaved, median of `--repeats`; the ratio is to
`tressel --version` (Python start and the CLI's own imports). `import torch` alone is timed
for scale: what a late check would add.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "tressel.cli"]
    with tempfile.TemporaryDirectory() as work:
        photo = REPO / "examples" / "astronaut.png"
        out = str(Path(work) / "g.usdc")
        commands = {
            "tressel --version": [*cli, "--version"],
            "generate missing.jpg": [*cli, "generate", "missing.jpg", "-o", out],
            "generate --steps 5000": [*cli, "generate", str(photo), "-o", out, "--steps", "5000"],
            "generate --model nope": [*cli, "generate", str(photo), "-o", out, "--model", "nope"],
            "import torch": [sys.executable, "-c", "import torch"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                times[name].append(time.perf_counter() - start)
                if name.startswith("generate") and result.returncode == 0:
                    raise RuntimeError(f"{name} was expected to fail: {result.stdout}")
    base = statistics.median(times["tressel --version"])
    print(f"fresh processes, median of {args.repeats} (ms, and ratio to tressel --version)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<24} {median * 1e3:8.0f} ms  x{median / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
