"""How much curl survives a bundle's strand codec: curliness of synthetic strands before and after.

    .venv/bin/python benchmarks/bench_codec_curl.py [--model tressel-demo] [--strands 150]
                                                    [--json OUT.json]

Grows one synthetic groom per curl type and length (`tressel.synth.groom.grow_groom`, no
render needed), takes each strand root-relative in the scalp frame (what the codec is trained
on, `tressel.train.strands.strands_to_local`), encodes and decodes it with the bundle's codec,
and measures both with the evaluation's own attributes (`tressel.train.attributes`): curliness,
curl class, arc length. The baseline in the same run is the input strands themselves, so the
table reads "what the codec keeps": a codec that averages curls away decodes each curly strand
as its centreline (curliness near 0, and a shorter arc, since the centreline of a curl is
shorter than the strand). Issue 16 found this with the shipped demo codec; run it again on a
retrained bundle before trusting its curl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

STYLES = {  # curl type -> (radius m, period m), mid-range values of tressel.synth.groom
    "straight": (0.0, 0.05), "wavy": (0.008, 0.055), "curly": (0.009, 0.026),
    "coily": (0.0035, 0.008)}
LENGTHS = {"short": 0.07, "medium": 0.16, "long": 0.34}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tressel-demo", help="bundle name or folder")
    parser.add_argument("--strands", type=int, default=150, help="strands per groom")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)

    import torch
    from tressel.bundles import load_bundle
    from tressel.pipeline import load_models
    from tressel.synth.groom import GroomStyle, grow_groom
    from tressel.train.attributes import measure_groom
    from tressel.train.strands import strands_to_local

    torch.set_num_threads(1)
    bundle = load_bundle(args.model)
    models = load_models(bundle, torch.device("cpu"), torch.float32)
    rows = []
    t0 = time.perf_counter()
    for curl, (radius, period) in STYLES.items():
        for length_name, length in LENGTHS.items():
            style = GroomStyle(
                length_class=length_name, length=length, curl_type=curl, curl_radius=radius,
                curl_period=period, parting="none", part_offset=0.0, bangs=False, volume=0.4,
                gravity=0.2 if curl == "coily" else 0.7, clumping=0.2, frizz=0.0,
                density=1.0, hairline_recession=0.0, melanin=0.5, redness=0.2,
                root_darkness_start=0.0, root_darkness_end=0.2, root_darkness_strength=0.0)
            groom = grow_groom(style, args.strands, seed=len(rows), frame_face=True)
            local = strands_to_local(models.scalp, groom.root_uv, groom.positions)
            with torch.no_grad():
                codec = models.strand_codec
                decoded = codec.decode(codec.encode(torch.from_numpy(local))).numpy()
            before, after = measure_groom(local), measure_groom(decoded)
            rows.append({
                "style": f"{length_name}/{curl}", "curliness_in": before["curliness"],
                "curliness_out": after["curliness"], "class_in": before["curl_class"],
                "class_out": after["curl_class"], "length_cm_in": before["length_cm"],
                "length_cm_out": after["length_cm"],
                "point_error_mm": round(float(np.linalg.norm(decoded - local, axis=-1).mean())
                                        * 1e3, 2)})
    seconds = time.perf_counter() - t0
    print(f"{'style':<16}{'curliness in':>13}{'out':>7}{'class in':>10}{'out':>10}"
          f"{'length cm in':>14}{'out':>7}{'error mm':>10}")
    for r in rows:
        print(f"{r['style']:<16}{r['curliness_in']:>13.3f}{r['curliness_out']:>7.3f}"
              f"{r['class_in']:>10}{r['class_out']:>10}{r['length_cm_in']:>14.1f}"
              f"{r['length_cm_out']:>7.1f}{r['point_error_mm']:>10.2f}")
    kept = np.mean([r["class_in"] == r["class_out"] for r in rows
                    if r["class_in"] != "straight"])
    print(f"curl class kept through the codec on non-straight grooms: {kept:.2f} "
          f"({bundle.name}, {seconds:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"bundle": bundle.name, "rows": rows,
                                         "curl_class_kept": float(kept)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
