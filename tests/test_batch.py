"""`tressel batch` end to end on a tiny random bundle: inputs, subsets, resume, bad photos.

The farm side (the OpenJD template run by `openjd run`) is in test_farm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from daemon_support import wait_for, write_png
from helpers import one_thread, write_image  # noqa: F401
from tressel.batch.items import expand_inputs, format_item_ranges, parse_item_ranges
from tressel.errors import ConfigError

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]
# Tiny and fast: 2 diffusion steps, few strands, few points, no face detection.
FAST = ["--steps", "2", "--strands", "40", "--points", "8", "--guides", "4", "--no-crop"]


def photos(folder: Path, count: int, corrupt: int | None = None) -> Path:
    """`count` photos p0.png...; item number `corrupt` (1-based) is a broken JPEG instead."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        if corrupt == index + 1:
            (folder / f"p{index}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
        else:
            write_png(folder / f"p{index}.png", seed=index)
    return folder


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def batch(capsys, monkeypatch, tmp_path):
    """`tressel batch` in this process (the models stay cached between runs)."""

    def run(*args: str) -> Ran:
        from tressel.cli import main

        monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "store"))
        capsys.readouterr()
        try:
            code = main(["batch", *args])
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def summary(folder: Path, name: str = "tressel_batch.json") -> dict:
    return json.loads((folder / name).read_text())


def statuses(data: dict) -> dict[int, str]:
    return {o["number"]: o["status"] for o in data["outcomes"]}


# -- inputs ------------------------------------------------------------------------------------


def test_inputs_folders_globs_and_manifests(tmp_path):
    shots = photos(tmp_path / "shots", 3)
    (shots / ".hidden.png").write_bytes(b"x")
    (shots / "notes.txt").write_text("not a photo")
    out = shots / "grooms"  # outputs inside the input folder are never inputs
    out.mkdir()
    write_png(out / "p0_crop.png")
    other = photos(tmp_path / "other", 1)  # other/p0.png: a second p0
    items = expand_inputs([str(shots), str(other / "p0.png")], out)
    assert [i.photo.name for i in items] == ["p0.png", "p1.png", "p2.png", "p0.png"]
    assert [i.output.name for i in items] == ["p0.usdc", "p1.usdc", "p2.usdc", "p0_2.usdc"]
    assert [i.number for i in items] == [1, 2, 3, 4]

    globbed = expand_inputs([str(tmp_path / "*" / "p[01].png")], tmp_path / "out")
    assert [i.photo.parent.name + "/" + i.photo.name for i in globbed] == [
        "other/p0.png", "shots/p0.png", "shots/p1.png"]

    csv = tmp_path / "shots.csv"
    csv.write_text("photo,output,seed,strands,no_crop\n"
                   "shots/p1.png,hero,3,0.5x,yes\n"
                   "shots/p0.png,,,,\n"
                   "shots/p1.png,P0,,,\n")
    rows = expand_inputs([str(csv)], tmp_path / "out")
    assert [r.photo for r in rows] == [shots / "p1.png", shots / "p0.png", shots / "p1.png"]
    # explicit names first; an automatic name steps around them, ignoring case
    assert [r.output.name for r in rows] == ["hero.usdc", "p0_2.usdc", "P0.usdc"]
    assert rows[0].options == {"seed": "3", "strands": "0.5x", "no_crop": "yes"}
    assert rows[0].origin == "shots.csv line 2"

    manifest = tmp_path / "shots.json"
    manifest.write_text(json.dumps({"items": [{"photo": "shots/p2.png", "seed": 5},
                                              {"output": "nophoto"}]}))
    rows = expand_inputs([str(manifest)], tmp_path / "out")
    assert rows[0].options == {"seed": 5} and rows[0].problem is None
    assert "names no photo" in rows[1].problem  # that row fails alone

    for bad in ("a/../../x", "/abs/x"):
        csv.write_text(f"photo,output\nshots/p0.png,{bad}\n")
        with pytest.raises(ConfigError, match="inside the output folder"):
            expand_inputs([str(csv)], tmp_path / "out")
    csv.write_text("photo,output\nshots/p0.png,a\nshots/p1.png,A.usdc\n")
    with pytest.raises(ConfigError, match="both write"):
        expand_inputs([str(csv)], tmp_path / "out")
    with pytest.raises(ConfigError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing")], tmp_path / "out")
    with pytest.raises(ConfigError, match="matches no photos"):
        expand_inputs([str(tmp_path / "*.exr")], tmp_path / "out")


def test_stale_temp_files_are_matched_exactly(tmp_path):
    from tressel.outputs import stale_temp_files

    names = [".a.1234abcd.tmp.usdc", ".a_b.1234abcd.tmp.usdc", ".a_crop.tmp.png",
             ".a_material.json.tmp", ".a.tmp.npz", "a.usdc", ".a_b_crop.tmp.png", ".a.x.tmp.usdc"]
    for name in names:
        (tmp_path / name).write_text("x")
    found = stale_temp_files([tmp_path / "a.usdc", tmp_path / "a_b.usdc", tmp_path / "c.usdc"])
    assert {k.name: sorted(p.name for p in v) for k, v in found.items()} == {
        "a.usdc": [".a.1234abcd.tmp.usdc", ".a.tmp.npz", ".a_crop.tmp.png",
                   ".a_material.json.tmp"],
        "a_b.usdc": [".a_b.1234abcd.tmp.usdc", ".a_b_crop.tmp.png"]}


def test_item_ranges():
    assert parse_item_ranges("3-7", 10) == [3, 4, 5, 6, 7]
    assert parse_item_ranges("1-3,9", 10) == [1, 2, 3, 9]
    assert parse_item_ranges("1-9:4, 2", 10) == [1, 2, 5, 9]
    assert format_item_ranges([9, 1, 2, 3, 5]) == "1-3,5,9"
    for bad in ("0", "3-1", "x", "2-", ""):
        with pytest.raises(ConfigError, match="--items"):
            parse_item_ranges(bad, 10)
    with pytest.raises(ConfigError, match="past the last of the 10"):
        parse_item_ranges("8-11", 10)


# -- running -----------------------------------------------------------------------------------


def test_bad_photo_fails_alone_and_a_rerun_skips_what_is_finished(bundle, tmp_path, batch):
    shots = photos(tmp_path / "shots", 4, corrupt=2)
    out = tmp_path / "grooms"
    args = [str(shots), "-o", str(out), "--model", str(bundle.path), "--progress", "none", *FAST]
    out.mkdir()  # what a writer killed earlier left behind for p0 goes when p0 runs
    for leftover in (".p0.0123abcd.tmp.usdc", ".p0_crop.tmp.png", ".p0_material.json.tmp"):
        (out / leftover).write_bytes(b"partial")
    first = batch(*args)
    assert first.code == 1, first.err
    assert "p1.jpg" in first.err and "cannot read" in first.err
    data = summary(out)
    assert statuses(data) == {1: "done", 2: "failed", 3: "done", 4: "done"}
    assert data["counts"] == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert "cannot read" in data["outcomes"][1]["reason"] and data["finished_utc"]
    # the table at the end names every item
    assert "p1.jpg: cannot read" in first.out and "3 done, 0 skipped, 1 failed" in first.out
    for name in ("p0", "p2", "p3"):
        for suffix in (".usdc", "_crop.png", "_material.json"):
            assert (out / f"{name}{suffix}").is_file()
    assert not (out / "p1.usdc").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("p*")}
    again = batch(*args, "--bad-items", "report")
    assert again.code == 0, again.err  # report: the failure is listed, not an exit status
    assert statuses(summary(out)) == {1: "skipped", 2: "failed", 3: "skipped", 4: "skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("p*")} == stamps  # nothing rewritten

    # a changed option re-runs (only the selected items); the others stay as they were
    changed = batch(*args, "--items", "3-4", "--seed", "9")
    assert changed.code == 0, changed.err
    assert statuses(summary(out, "tressel_batch.items_3-4.json")) == {3: "done", 4: "done"}
    material = json.loads((out / "p2_material.json").read_text())
    assert material["provenance"]["seed"] == 9 and material["request"]["seed"] == 9
    assert (out / "p0.usdc").stat().st_mtime_ns == stamps["p0.usdc"]
    listed = batch(*args, "--list")
    assert listed.code == 0
    assert "changed: seed" in listed.out and "3  to do" in listed.out
    assert "1  done" in listed.out and "4 item(s): 1-4" in listed.out
    # an output option is part of the request too
    points = batch(*args[:-len(FAST)], *FAST[:4], "--points", "6", *FAST[6:], "--items", "1")
    assert statuses(summary(out, "tressel_batch.items_1.json")) == {1: "done"}, points.err
    forced = batch(*args, "--items", "1", "--force")
    assert statuses(summary(out, "tressel_batch.items_1.json")) == {1: "done"}, forced.err


def test_manifest_rows_carry_their_own_options(bundle, tmp_path, batch):
    photos(tmp_path / "shots", 2)  # the manifest names them relative to itself
    astronaut = REPO / "examples" / "astronaut.png"
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "photo,output,seed,strands,no_crop,units\n"
        f"{astronaut},astro,4,,no,cm\n"  # an absolute path, and the face crop
        "shots/p0.png,first,1,25,yes,\n"
        "shots/p1.png,broken,2,lots,yes,\n"  # a bad value fails this row alone
        "wall.png,,,,no,\n"  # no face in it: fails alone
    )
    write_image(tmp_path / "wall.png", np.full((120, 160, 3), 90, np.uint8))
    out = tmp_path / "grooms"
    ran = batch(str(manifest), "-o", str(out), "--model", str(bundle.path), "--progress",
                "none", "--options", "--steps 2 --points 8 --guides 4")
    assert ran.code == 1
    assert statuses(summary(out)) == {1: "done", 2: "done", 3: "failed", 4: "failed"}
    assert "--strands 'lots'" in summary(out)["outcomes"][2]["reason"]
    assert "no face found" in summary(out)["outcomes"][3]["reason"]
    astro = json.loads((out / "astro_material.json").read_text())
    assert astro["request"]["seed"] == 4 and astro["request"]["crop"] is True
    assert astro["request"]["write"]["units"] == "cm"
    assert astro["provenance"]["crop_box"] != [0, 0, 512, 512]  # a face was found
    first = json.loads((out / "first_material.json").read_text())
    assert first["request"]["max_strands"] == 25 and first["request"]["crop"] is False
    assert first["request"]["steps"] == 2 and first["request"]["write"]["points_per_strand"] == 8

    manifest.write_text("photo,sed\nshots/p0.png,1\n")  # a mistyped column stops everything
    typo = batch(str(manifest), "-o", str(out), "--model", str(bundle.path))
    assert typo.code == 1 and "unknown column(s) sed" in typo.err


def test_batch_writes_what_generate_writes(bundle, tmp_path, batch):
    shots = photos(tmp_path / "shots", 1)
    out = tmp_path / "grooms"
    ran = batch(str(shots), "-o", str(out), "--model", str(bundle.path), "--progress", "none",
                "--npz", "--seed", "5", *FAST)
    assert ran.code == 0, ran.err
    from tressel.cli import main

    single = tmp_path / "single" / "p0.usdc"
    assert main(["generate", str(shots / "p0.png"), "-o", str(single), "--model",
                 str(bundle.path), "--no-progress", "--npz", "--seed", "5", *FAST]) == 0
    for name in ("p0.usdc", "p0_crop.png", "p0_material.json", "p0.npz"):
        assert (out / name).read_bytes() == (single.parent / name).read_bytes(), name


def test_stopped_and_killed_batches_resume_where_they_stopped(bundle, tmp_path):
    """SIGTERM (a farm cancelling a task), then SIGKILL mid-batch (a worker lost), then the
    same command again."""
    shots = photos(tmp_path / "shots", 5)
    out = tmp_path / "grooms"
    # 30 steps make each photo take a while, so the signals land mid-batch.
    command = [sys.executable, "-m", "tressel.cli", "batch", str(shots), "-o", str(out),
               "--model", str(bundle.path), "--progress", "none", *FAST, "--steps", "30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRESSEL_MODELS_DIR": str(tmp_path / "m")}

    def interrupt(sig: signal.Signals, grooms: int) -> tuple[int, list[str]]:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(list(out.glob("p*.usdc"))) >= grooms, timeout=300,
                     interval=0.01)
        finally:
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        return proc.returncode, err

    code, err = interrupt(signal.SIGTERM, 1)
    assert code == 1 and "stopped by SIGTERM" in err, err
    stopped = summary(out)
    assert stopped["interrupted"] and stopped["finished_utc"]
    assert "done" in statuses(stopped).values() and "pending" in statuses(stopped).values()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files

    before = len(list(out.glob("p*.usdc")))
    code, _ = interrupt(signal.SIGKILL, before + 1)
    assert code == -signal.SIGKILL
    finished = sorted(p.name for p in out.glob("p*.usdc"))
    assert before < len(finished) < 5, finished
    assert summary(out)["finished_utc"] is None  # the summary shows the run never ended

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    outcome = statuses(summary(out))
    assert [outcome[n] for n in range(1, len(finished) + 1)] == ["skipped"] * len(finished)
    assert "done" in outcome.values() and set(outcome.values()) <= {"skipped", "done"}
    assert sorted(p.name for p in out.glob("p*.usdc")) == [f"p{i}.usdc" for i in range(5)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_alembic_without_its_package_is_refused_before_any_photo_is_converted(
        bundle, tmp_path, batch, monkeypatch, capsys):
    """`--alembic` needs alembic3d: generate stops before loading the model, a batch fails each
    item that asks for it without converting it, and the daemon refuses an `abc` job at
    submission, instead of each finding out after the groom is made."""
    import importlib.util

    import tressel.commands.generate as generate_command
    from pydantic import ValidationError
    from tressel.cli import main
    from tressel.daemon.schemas import JobRequest

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "alembic3d" else real_find_spec(name, *a))

    def no_work(*args, **kwargs):
        raise AssertionError("a photo was converted")

    monkeypatch.setattr(generate_command, "generate_one", no_work)
    monkeypatch.setattr("tressel.pipeline.run_generate", no_work)
    shots = photos(tmp_path / "shots", 2)
    capsys.readouterr()
    code = main(["generate", str(shots / "p0.png"), "-o", str(tmp_path / "one" / "g.usdc"),
                 "--model", str(bundle.path), "--alembic"])
    assert code == 1
    assert "pip install 'tressel[alembic]'" in capsys.readouterr().err
    assert not (tmp_path / "one").exists()

    out = tmp_path / "grooms"
    ran = batch(str(shots), "-o", str(out), "--model", str(bundle.path), "--progress", "none",
                "--alembic", *FAST)
    assert ran.code == 1
    assert statuses(summary(out)) == {1: "failed", 2: "failed"}
    assert all("tressel[alembic]" in o["reason"] for o in summary(out)["outcomes"])

    with pytest.raises(ValidationError, match=r"tressel\[alembic\]"):
        JobRequest(format="abc")
    assert JobRequest(format="usdc").format == "usdc"
