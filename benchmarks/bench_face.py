"""Face crop cost: detector cold start and per-image time, built-in face mesh against Haar.

    .venv/bin/python benchmarks/bench_face.py [--repeats 5]

Cold start runs in fresh Python processes (the median of `--repeats`), since that is what a
`tressel generate` run pays once: importing what the detector needs, loading its models, and the
first photo. The Haar cascade (`opencv-haar`, the fallback) is the baseline, measured the same
way in the same run. Per-image times are medians over warm repeats, interleaved across the
detectors, on scikit-image's astronaut (512 px), the same photo with each pixel repeated 6 times
(3072 px, 9.4 Mpx) and the astronaut in a 2048 px mid-gray canvas (a small face: the face mesh
falls back to its tiled search there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

DETECTORS = ("face-mesh", "opencv-haar")

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, skimage.data
from tressel.face import crop_face
image = skimage.data.astronaut()
t1 = time.perf_counter()
crop_face(image, detector=sys.argv[1])
t2 = time.perf_counter()
crop_face(image, detector=sys.argv[1])
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "first": t2 - t1, "second": t3 - t2}))
"""


def cold_start(detector: str) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", COLD, detector], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import skimage.data
    from tressel.face import crop_face

    print(f"cold start (fresh process, median of {args.repeats}; first photo = model load "
          "+ one 512 px crop):")
    cold: dict[str, list[dict[str, float]]] = {d: [] for d in DETECTORS}
    for _ in range(args.repeats):
        for detector in DETECTORS:
            cold[detector].append(cold_start(detector))
    medians = {d: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
               for d, runs in cold.items()}
    base = medians["opencv-haar"]
    for detector, m in medians.items():
        extra = m["first"] - m["second"]
        print(f"  {detector:12s} first photo {m['first'] * 1000:7.1f} ms "
              f"(x{m['first'] / base['first']:.2f} Haar), of which one-off load "
              f"{extra * 1000:6.1f} ms; imports before it {m['imports'] * 1000:6.0f} ms")

    astronaut = skimage.data.astronaut()
    canvas = np.full((2048, 2048, 3), 128, np.uint8)
    canvas[1024:1536, 256:768] = astronaut
    images = {
        "astronaut 512 px": astronaut,
        "astronaut x6, 3072 px": np.repeat(np.repeat(astronaut, 6, 0), 6, 1),
        "small face, 2048 px": canvas,
    }
    print(f"per image (warm, median of {args.repeats}):")
    for label, image in images.items():
        times: dict[str, list[float]] = {}
        for detector in DETECTORS:
            try:
                crop_face(image, detector=detector)  # warm, and see whether it finds the face
                times[detector] = []
            except Exception as exc:  # noqa: BLE001 - a miss is a result worth printing
                print(f"  {label:24s} {detector:12s} {type(exc).__name__}")
        for _ in range(args.repeats):
            for detector, runs in times.items():
                t = time.perf_counter()
                crop_face(image, detector=detector)
                runs.append(time.perf_counter() - t)
        base_t = statistics.median(times["opencv-haar"]) if "opencv-haar" in times else None
        for detector, runs in times.items():
            t = statistics.median(runs)
            ratio = f" (x{t / base_t:.2f} Haar)" if base_t else " (Haar finds no face)"
            print(f"  {label:24s} {detector:12s} {t * 1000:7.1f} ms{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
