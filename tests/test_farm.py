"""The farm job for real: `openjd check` and `openjd run` on the template `tressel farm` writes.

`openjd run` (openjd-cli, the reference Open Job Description runner) executes the template
locally: it splits the photo numbers into chunks of two (TASK_CHUNKING) and runs each chunk's
`tressel batch --items CHUNK` as a task, exactly as a farm worker would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from daemon_support import write_png

pytestmark = pytest.mark.timeout(600)

OPTIONS = "--steps 2 --strands 40 --points 8 --guides 4 --no-crop"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Five photos; the third is a corrupt JPEG."""
    folder = tmp_path_factory.mktemp("shots")
    for index in range(5):
        if index == 2:
            (folder / "p2.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
        else:
            write_png(folder / f"p{index}.png", seed=index)
    return folder


def env(tmp_path: Path) -> dict[str, str]:
    # The job runs `tressel` from PATH, as a farm worker with Tressel installed does.
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "OMP_NUM_THREADS": "1", "TRESSEL_MODELS_DIR": str(tmp_path / "models")}


def tressel(*args: str, cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tressel.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)


def openjd(*args: str, cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "openjd", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=500, check=False)


def test_template_passes_openjd_check(tmp_path):
    environ = env(tmp_path)
    made = tressel("farm", "template", "-o", "job.yaml", cwd=tmp_path, environ=environ)
    assert made.returncode == 0, made.stderr
    checked = openjd("check", "job.yaml", cwd=tmp_path, environ=environ)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    template = yaml.safe_load((tmp_path / "job.yaml").read_text())
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert template["extensions"] == ["TASK_CHUNKING"]
    params = {p["name"]: p for p in template["parameterDefinitions"]}
    assert {"Inputs", "Items", "OutputDir", "Bundle", "ChunkSize", "Device"} <= set(params)
    assert all(len(p["description"]) > 60 for p in params.values())
    (step,) = template["steps"]
    (chunk,) = step["parameterSpace"]["taskParameterDefinitions"]
    assert chunk["type"] == "CHUNK[INT]"
    assert chunk["chunks"]["defaultTaskCount"] == "{{Param.ChunkSize}}"
    amounts = {a["name"]: a["min"] for a in step["hostRequirements"]["amounts"]}
    assert amounts == {"amount.worker.gpu": 1, "amount.worker.gpu.memory": 8192}

    cpu = tressel("farm", "template", "-o", "cpu.yaml", "--gpus", "0", "--os", "linux",
                  "--target-runtime", "900", cwd=tmp_path, environ=environ)
    assert cpu.returncode == 0, cpu.stderr
    assert openjd("check", "cpu.yaml", cwd=tmp_path, environ=environ).returncode == 0
    template = yaml.safe_load((tmp_path / "cpu.yaml").read_text())
    (step,) = template["steps"]
    assert step["hostRequirements"] == {
        "attributes": [{"name": "attr.worker.os.family", "anyOf": ["linux"]}]}
    assert step["parameterSpace"]["taskParameterDefinitions"][0]["chunks"][
        "targetRuntimeSeconds"] == 900


def test_openjd_run_converts_every_photo_in_chunks(bundle, shots, tmp_path):
    environ = env(tmp_path)
    assert tressel("farm", "template", "-o", "job.yaml", cwd=tmp_path,
                   environ=environ).returncode == 0
    farm_out = tmp_path / "farm"
    ran = openjd("run", "job.yaml", "--step", "ConvertPhotos", "-p", f"Inputs={shots}",
                 "-p", "Items=1-5", "-p", f"OutputDir={farm_out}", "-p", f"Bundle={bundle.path}",
                 "-p", "ChunkSize=2", "-p", f"Options={OPTIONS}", "-p", "BadPhotos=report",
                 cwd=tmp_path, environ=environ)
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log
    assert "Chunks run: 3" in log  # 1-2, 3-4, 5: one model load per chunk
    # the corrupt photo is reported, with its reason, in the task log and the summary
    assert "p2.jpg: failed: cannot read" in log
    chunk = json.loads((farm_out / "tressel_batch.items_3-4.json").read_text())
    assert [(o["number"], o["status"]) for o in chunk["outcomes"]] == [(3, "failed"),
                                                                       (4, "done")]

    # every other photo converted, byte for byte what `tressel batch` writes locally
    local_out = tmp_path / "local"
    local = tressel("batch", str(shots), "-o", str(local_out), "--model", str(bundle.path),
                    "--options", OPTIONS, "--progress", "none", cwd=tmp_path, environ=environ)
    assert local.returncode == 1 and "p2.jpg" in local.stderr
    expected = sorted(p.name for p in local_out.iterdir() if p.suffix != ".json"
                      or p.name.endswith("_material.json"))
    produced = sorted(p.name for p in farm_out.iterdir() if p.suffix != ".json"
                      or p.name.endswith("_material.json"))
    assert produced == expected
    assert [n for n in produced if n.endswith(".usdc")] == ["p0.usdc", "p1.usdc", "p3.usdc",
                                                            "p4.usdc"]
    for name in produced:
        assert (farm_out / name).read_bytes() == (local_out / name).read_bytes(), name

    # resubmitting (here the first chunk) does no work twice: finished photos are skipped
    again = openjd("run", "job.yaml", "--step", "ConvertPhotos", "-p", f"Inputs={shots}",
                   "-p", "Items=1-2", "-p", f"OutputDir={farm_out}", "-p",
                   f"Bundle={bundle.path}", "-p", "ChunkSize=2", "-p", f"Options={OPTIONS}",
                   "-p", "BadPhotos=report", cwd=tmp_path, environ=environ)
    assert again.returncode == 0
    first = json.loads((farm_out / "tressel_batch.items_1-2.json").read_text())
    assert {o["status"] for o in first["outcomes"]} == {"skipped"}


def test_bad_photo_fails_its_task_by_default(bundle, shots, tmp_path):
    environ = env(tmp_path)
    assert tressel("farm", "template", "-o", "job.yaml", cwd=tmp_path,
                   environ=environ).returncode == 0
    out = tmp_path / "out"
    ran = openjd("run", "job.yaml", "--step", "ConvertPhotos", "-p", f"Inputs={shots}",
                 "-p", "Items=2-3", "-p", f"OutputDir={out}", "-p", f"Bundle={bundle.path}",
                 "-p", "ChunkSize=2", "-p", f"Options={OPTIONS}", cwd=tmp_path,
                 environ=environ)
    log = ran.stdout + ran.stderr
    assert ran.returncode != 0, log
    assert "1 of 2 photo(s) failed: p2.jpg" in log  # openjd_fail: the farm's failure reason
    assert (out / "p1.usdc").is_file()  # its chunk-mate still converted


def test_deadline_bundle(bundle, shots, tmp_path):
    environ = env(tmp_path)
    job = tmp_path / "job"
    made = tressel("farm", "bundle", str(job), "--inputs", str(shots), "--output-dir",
                   str(tmp_path / "grooms"), "--model", str(bundle.path), "--chunk-size", "3",
                   "--options", OPTIONS, cwd=tmp_path, environ=environ)
    assert made.returncode == 0, made.stderr
    assert "5 photo(s) (Items=1-5)" in made.stdout
    assert openjd("check", str(job / "template.yaml"), cwd=tmp_path,
                  environ=environ).returncode == 0
    values = {v["name"]: v["value"] for v in
              yaml.safe_load((job / "parameter_values.yaml").read_text())["parameterValues"]}
    assert values == {"Inputs": str(shots.resolve()), "OutputDir": str((tmp_path / "grooms").resolve()),
                      "Bundle": str(Path(bundle.path).resolve()), "Items": "1-5",
                      "ChunkSize": 3, "Options": OPTIONS}
    assets = yaml.safe_load((job / "asset_references.yaml").read_text())["assetReferences"]
    assert sorted(Path(f).name for f in assets["inputs"]["filenames"]) == [
        "p0.png", "p1.png", "p2.jpg", "p3.png", "p4.png"]
    assert assets["inputs"]["directories"] == [str(Path(bundle.path).resolve())]
    assert assets["outputs"]["directories"] == [str((tmp_path / "grooms").resolve())]
    # the values fit the template: OpenJD resolves the job with them
    summary = openjd("summary", str(job / "template.yaml"),
                     *[a for k, v in values.items() for a in ("-p", f"{k}={v}")],
                     cwd=tmp_path, environ=environ)
    assert summary.returncode == 0, summary.stdout + summary.stderr

    manifest = tmp_path / "list.csv"
    manifest.write_text(f"photo,seed\n{shots / 'p0.png'},1\n{shots / 'p3.png'},2\n")
    made = tressel("farm", "bundle", str(tmp_path / "job2"), "--inputs", str(manifest),
                   "--model", str(bundle.path), cwd=tmp_path, environ=environ)
    assert made.returncode == 0, made.stderr
    assets = yaml.safe_load((tmp_path / "job2" / "asset_references.yaml").read_text())
    assert sorted(Path(f).name for f in assets["assetReferences"]["inputs"]["filenames"]) == [
        "list.csv", "p0.png", "p3.png"]

    bad = tressel("farm", "bundle", str(tmp_path / "job3"), "--options", "--stepz 3",
                  "--model", str(bundle.path), cwd=tmp_path, environ=environ)
    assert bad.returncode == 1 and "--stepz" in bad.stderr
