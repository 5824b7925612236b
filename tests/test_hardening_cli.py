"""The command line under misuse and full disks (issue 14 items 9-10, issue 19's early checks).

`tressel generate` checks everything it can (inputs, output folder, options, model name) before
torch, timm or pxr are imported; a write that fails (a full disk, on a real small tmpfs) is one
line, never a traceback or a truncated file; parameter bounds come from one place
(`tressel.params`) for the CLI, the daemon's request schema and the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from daemon_support import PYTHON, REPO, write_png
from helpers import fill_disk, small_filesystem

pytestmark = pytest.mark.timeout(300)

# Each case: CLI arguments (IMAGE is a real PNG), what stderr must say.
EARLY_ERRORS = [
    (["generate", "missing.jpg", "-o", "OUT/g.usdc"], "missing.jpg does not exist"),
    (["generate", "IMAGE", "-o", "OUT/name.txt"], "not .txt"),
    (["generate", "IMAGE", "-o", "IMAGE/g.usdc"], "is a file, not a folder"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--model", "no-such-model"],
     "no model bundle 'no-such-model'"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--steps", "5000"],
     "steps=5000 is out of range: use 1 to 1000"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--guidance", "nan"], "not a finite number"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--guidance-interval", "5,1"], "LO < HI"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--strands", "0"], "--strands '0'"),
    (["generate", "IMAGE", "-o", "OUT/g.usdc", "--points", "100000"],
     "points_per_strand=100000 is out of range"),
]

_PROBE = """
import contextlib, io, json, sys
from tressel.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    heavy = [m for m in ("torch", "timm", "pxr") if m in sys.modules]
    results.append({"code": code, "stderr": err.getvalue(), "heavy": heavy})
print(json.dumps(results))
"""


def test_generate_checks_everything_before_importing_torch(tmp_path):
    image = write_png(tmp_path / "face.png")
    cases = [[str(image) if a == "IMAGE" else a.replace("OUT", str(tmp_path / "out"))
              .replace("IMAGE", str(image)) for a in argv] for argv, _ in EARLY_ERRORS]
    env = {**os.environ, "TRESSEL_MODELS_DIR": str(tmp_path / "store")}
    result = subprocess.run([PYTHON, "-c", _PROBE, json.dumps(cases)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    for (argv, words), outcome in zip(EARLY_ERRORS, json.loads(result.stdout)):
        assert outcome["code"] in (1, 2), (argv, outcome)
        assert words in outcome["stderr"], (argv, outcome)
        assert "Traceback" not in outcome["stderr"], (argv, outcome)
        assert outcome["heavy"] == [], (argv, outcome)  # the error came before torch
    assert not (tmp_path / "out").exists()


def test_generate_on_a_full_disk_is_one_clear_line_and_leaves_nothing(tmp_path, bundle,
                                                                     capsys, monkeypatch):
    from helpers import torch_threads
    from tressel.cli import main

    image = write_png(tmp_path / "face.png", width=64, height=64, seed=4)
    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "store"))
    with small_filesystem(tmp_path / "out", 1 << 20) as out:
        fill_disk(out)
        with torch_threads(1):
            code = main(["generate", str(image), "-o", str(out / "groom.usdc"), "--model",
                         str(bundle.path), "--steps", "1", "--strands", "48", "--no-crop",
                         "--points", "8", "--guides", "8", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1, err
        assert "cannot write" in err and "full" in err and "Traceback" not in err
        assert sorted(p.name for p in out.iterdir()) == ["filler"]  # no partial or temp file


def test_a_crop_that_cannot_be_written_never_takes_its_name(tmp_path):
    import numpy as np
    from tressel.errors import TresselError
    from tressel.outputs import write_png as _write_png

    crop = (np.random.default_rng(0).random((224, 224, 3)) * 255).astype(np.uint8)
    with small_filesystem(tmp_path / "out", 1 << 20) as out:
        fill_disk(out)
        with pytest.raises(TresselError, match="full"):
            _write_png(crop, out / "groom_crop.png")
        assert sorted(p.name for p in out.iterdir()) == ["filler"]
        (out / "filler").unlink()
        _write_png(crop, out / "groom_crop.png")  # with space, the same call works
        assert (out / "groom_crop.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["notes.usdc", "notes.txt"])
def test_usd_info_on_a_file_that_is_not_usd_is_one_line(tmp_path, name):
    path = tmp_path / name
    path.write_text("these are not the grooms you are looking for\n")
    result = subprocess.run([PYTHON, "-m", "tressel.cli", "usd-info", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "is not a USD layer" in result.stderr and "Traceback" not in result.stderr


def test_the_shipped_demo_model_can_be_named(tmp_path, monkeypatch, capsys):
    from tressel.bundles import default_bundle, load_bundle
    from tressel.cli import main

    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "empty-store"))
    assert load_bundle("tressel-demo").name == "tressel-demo"
    assert default_bundle("tressel-demo").path == default_bundle().path  # the same model
    assert main(["models", "info", "tressel-demo"]) == 0
    assert "name:        tressel-demo" in capsys.readouterr().out


def test_output_must_be_a_usd_layer_name():
    from tressel.commands.generate import output_paths
    from tressel.errors import ConfigError

    with pytest.raises(ConfigError, match=r"not \.txt"):
        output_paths([Path("a.png")], Path("name.txt"))
    assert output_paths([Path("a.png")], Path("out/name")) == [Path("out/name.usdc")]
    assert output_paths([Path("a.png")], Path("g.usda")) == [Path("g.usda")]


# -- one place for parameter bounds ----------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "cli", "words"), [
    ("steps", 1001, ["--steps", "1001"], "steps=1001 is out of range: use 1 to 1000"),
    ("guidance", float("inf"), ["--guidance", "inf"], "guidance=inf is not a finite number"),
    ("guidance", 1e9, ["--guidance", "1e9"], "guidance=1000000000.0 is out of range"),
    ("guidance_interval", (3.0, 3.0), ["--guidance-interval", "3,3"], "needs LO < HI"),
    ("max_strands", 2_000_000, ["--strands", "2000000"], "max_strands=2000000 is out of range"),
])
def test_cli_schema_and_pipeline_refuse_the_same_values_the_same_way(name, value, cli, words,
                                                                     capsys):
    from pydantic import ValidationError
    from tressel.cli import build_parser
    from tressel.daemon.schemas import JobRequest
    from tressel.errors import ConfigError
    from tressel.pipeline import GenerateParams

    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "a.png", "-o", "g.usdc", *cli])
    assert words in capsys.readouterr().err
    with pytest.raises(ValidationError, match=words.replace("(", r"\(")):
        JobRequest.model_validate({"params": {name: value}})
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        GenerateParams(**{name: value}).validate()


# -- 10. the CPU dtype -------------------------------------------------------------------------

AVX2_ONLY = "processor : 0\nflags : fpu sse sse2 avx avx2 fma\n"
SAPPHIRE = "processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
GRAVITON = "processor : 0\nFeatures : fp asimd bf16 i8mm\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    from tressel.pipeline import cpu_has_native_bf16

    assert not cpu_has_native_bf16(AVX2_ONLY)
    assert cpu_has_native_bf16(SAPPHIRE)
    assert cpu_has_native_bf16(GRAVITON)
    assert not cpu_has_native_bf16("")


def test_bfloat16_on_a_cpu_without_it_warns_and_auto_stays_float32(monkeypatch, caplog):
    import torch
    from tressel import pipeline

    cpu = torch.device("cpu")
    monkeypatch.setattr(pipeline, "_read_cpuinfo", lambda: AVX2_ONLY)
    with caplog.at_level(logging.WARNING, logger="tressel.pipeline"):
        assert pipeline.resolve_dtype("auto", cpu) == torch.float32
        assert not caplog.records
        assert pipeline.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert any("without bf16 hardware" in r.getMessage() for r in caplog.records)
    caplog.clear()
    monkeypatch.setattr(pipeline, "_read_cpuinfo", lambda: SAPPHIRE)
    with caplog.at_level(logging.WARNING, logger="tressel.pipeline"):
        assert pipeline.resolve_dtype("bfloat16", cpu) == torch.bfloat16
        assert pipeline.resolve_dtype("auto", cpu) == torch.float32  # results stay CPU-independent
    assert not caplog.records


@pytest.mark.parametrize("detach", [False, True])
def test_daemon_start_without_the_daemon_extra_is_one_clear_line(tmp_path, monkeypatch, capsys,
                                                                 detach):
    """A plain `pip install tressel` has no FastAPI/uvicorn: starting the daemon says which
    extra to install, before detaching, instead of a traceback from the server's imports."""
    import importlib.util

    from tressel.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real_find_spec(name, *a))
    argv = ["daemon", "start", "--state-dir", str(tmp_path / "state")]
    assert main(argv + (["--detach"] if detach else [])) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "uvicorn" in err and "pip install 'tressel[daemon]'" in err
    assert "fastapi" not in err  # only what is missing
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
