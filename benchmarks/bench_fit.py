"""Benchmark: fit 100,000 strands to another head and push them out of it, against a floor.

The groom grows on Tressel's procedural scalp (strands that curl and fall, so many pass through
the head); the target is a differently proportioned closed head mesh. Timed phases: the
collision field of the model's scalp and collision there (what `generate` does), registration,
root re-attachment with shape transport, the target head's field and collision there (what
`fit` does). The floor is one pass over every point: applying the similarity to all of them
with numpy, measured in the same run; each phase is reported as a multiple of it.

    .venv/bin/python benchmarks/bench_fit.py [--strands 100000] [--points 32]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def groom(count: int, points: int, seed: int = 0):
    from tressel.result import HairMaterial, HairResult, ScalpMesh
    from tressel.synth.head import scalp_mesh_arrays, scalp_points

    vertices, faces, uv = scalp_mesh_arrays(48)
    rng = np.random.default_rng(seed)
    root_uv = rng.uniform(0.02, 0.98, size=(count, 2))
    scalp = scalp_points(root_uv)
    positions = np.empty((count, points, 3), np.float32)
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    for start in range(0, count, 20000):
        sl = slice(start, start + 20000)
        n = len(scalp.normals[sl])
        phase = rng.uniform(0, 6.3, (n, 1))
        curl = np.stack([np.sin(t[..., 0] * 14 + phase), np.zeros((n, points)),
                         np.cos(t[..., 0] * 14 + phase)], -1) * 0.012
        length = rng.uniform(0.1, 0.3, (n, 1, 1))
        path = scalp.normals[sl, None] * 0.1 * t + np.array([0, -1.0, 0]) * t**2 + curl * t
        positions[sl] = scalp.positions[sl, None] + length * path
    return HairResult(positions=positions, root_uv=root_uv.astype(np.float32),
                      root_positions=positions[:, 0].copy(),
                      root_normals=scalp.normals.astype(np.float32),
                      material=HairMaterial.from_raw([0.5] * 11),
                      scalp_mesh=ScalpMesh(vertices, faces, uv))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strands", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=32)
    args = parser.parse_args()

    from tressel.geometry.collision import build_head_sdf, resolve_collisions
    from tressel.geometry.fit import register, transfer_strands
    from tressel.geometry.mesh import MeshQuery, TriMesh, uv_sphere

    hair = groom(args.strands, args.points)
    scalp = TriMesh(hair.scalp_mesh.vertices, hair.scalp_mesh.faces)
    head = uv_sphere((0.01, 0.32, -0.005), (0.086, 0.11, 0.104), 64, 128)
    timings: dict[str, float] = {}

    def timed(name, fn, *a, **k):
        start = time.perf_counter()
        out = fn(*a, **k)
        timings[name] = time.perf_counter() - start
        return out

    rotation = np.eye(3)
    timed("floor: transform every point", lambda: (
        hair.positions.reshape(-1, 3) @ rotation.T * 1.1 + 0.01).astype(np.float32))
    scalp_sdf = timed("scalp field", build_head_sdf, scalp)
    _, scalp_report = timed("collide on scalp", resolve_collisions, hair.positions, scalp_sdf)
    query = MeshQuery(head)
    registration = timed("register", register, scalp, head, target_query=query)
    fitted, _, after, _ = timed("re-attach + transport", transfer_strands, hair, scalp, head,
                                registration.similarity, query)
    head_sdf = timed("head field", build_head_sdf, head)
    _, head_report = timed("collide on head", resolve_collisions, fitted.positions, head_sdf)

    floor = timings["floor: transform every point"]
    print(f"{args.strands} strands x {args.points} points "
          f"(floor {floor * 1e3:.1f} ms: one numpy pass over every point)")
    for name, seconds in timings.items():
        print(f"  {name:32s} {seconds:8.2f} s  {seconds / floor:8.0f}x floor")
    print(f"  scalp collision: {scalp_report.summary()}")
    print(f"  fit: rms {registration.rms * 1e3:.3f} mm, roots after {after[0] * 1e3:.4f} mm")
    print(f"  head collision: {head_report.summary()}")
    print(json.dumps({"strands": args.strands, "points": args.points,
                      "seconds": {k: round(v, 3) for k, v in timings.items()}}))


if __name__ == "__main__":
    main()
