"""The host-independent half of every DCC host (`tressel.hosting`), against a real daemon."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from daemon_support import (
    FAST,
    PYTHON,
    REPO,
    ThreadRecordingClient,
    write_png,
)
from tressel.client import Client
from tressel.errors import ConfigError
from tressel.hosting import (
    CallQueue,
    GroomOptions,
    HostJob,
    groom_stem,
    node_name,
    parse_strands,
    reserve_output,
)

# What a host dialog would send for the tiny test bundle: few strands, points and steps.
TINY = {"strands": str(FAST["max_strands"]), "steps": FAST["steps"], "crop": False,
            "points_per_strand": 8, "guides": 8, "units": "cm"}


@pytest.fixture(scope="module")
def daemon(tiny_daemon):
    return tiny_daemon


def run_on_ui_thread(job: HostJob, calls: CallQueue, timeout: float = 120.0,
                     on_tick=None) -> None:
    """Be the host's UI thread: drain posted calls until the job has delivered its outcome."""
    deadline = time.monotonic() + timeout
    while not job.done:
        assert time.monotonic() < deadline, "the job did not finish"
        calls.drain()
        if on_tick:
            on_tick()
        time.sleep(0.01)
    calls.drain()


def recording_connect(daemon_client: Client):
    ThreadRecordingClient.threads = []
    return lambda: ThreadRecordingClient(daemon_client.endpoint)


def test_options_become_a_daemon_request():
    assert parse_strands("0.5x") == (0.5, None)
    assert parse_strands("20000") == (1.0, 20000)
    assert parse_strands("") == (1.0, None)
    for bad in ("-3", "0x", "lots", "1.5"):
        with pytest.raises(ConfigError, match="strands"):
            parse_strands(bad)
    request = GroomOptions(seed=4, strands="0.25x", steps=3, units="m", guides=0).submit_kwargs()
    assert request["seed"] == 4 and request["bundle"] is None
    assert request["params"] == {"crop": True, "density_scale": 0.25, "steps": 3}
    straight = GroomOptions(curl=False).submit_kwargs()["params"]
    assert straight == {"crop": True, "curl": False}
    assert GroomOptions.from_dict({"seed": 1}).curl is True  # options saved before curl existed
    # Options saved before hair_reading existed (the fields of that time) read it as on.
    saved_before = {k: v for k, v in GroomOptions(seed=1, curl=False).to_dict().items()
                    if k != "hair_reading"}
    assert GroomOptions.from_dict(saved_before) == GroomOptions(seed=1, curl=False)
    assert GroomOptions.from_dict(saved_before).hair_reading is True
    off = GroomOptions.from_dict(GroomOptions(hair_reading=False).to_dict())
    assert off.submit_kwargs()["params"] == {"crop": True, "hair_reading": False}
    assert request["write_options"] == {"points_per_strand": 32, "units": "m", "guides": 0,
                                        "lod": False}
    with pytest.raises(ConfigError, match="units"):
        GroomOptions(units="inch").check()
    saved = GroomOptions(seed=9, import_guides=True).to_dict() | {"from_a_newer_version": 1}
    assert GroomOptions.from_dict(saved) == GroomOptions(seed=9, import_guides=True)


def test_output_names_never_overwrite(tmp_path):
    assert groom_stem("/shots/my portrait.v2.jpg", 3) == "my_portrait.v2_s3"
    assert node_name("/a/3 faces.png") == "tressel_3_faces"
    (tmp_path / "face_s1.usdc").write_bytes(b"another groom")
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(
        reserve_output(tmp_path, "face.jpg", 1))) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 12
    assert (tmp_path / "face_s1.usdc").read_bytes() == b"another groom"
    assert min(p.name for p in paths) == "face_s1_10.usdc"


def test_job_runs_off_the_ui_thread_and_delivers_on_it(daemon, tmp_path):
    from tressel.usd import read_groom

    _, daemon_client = daemon
    photo = write_png(tmp_path / "portrait.png", seed=1)
    calls, seen, ui_threads = CallQueue(), [], set()

    def note(kind):
        def callback(*args):
            ui_threads.add(threading.current_thread().name)
            seen.append((kind, *args))
        return callback

    job = HostJob(photo, GroomOptions(seed=2, **TINY), tmp_path / "usd",
                  call_on_ui_thread=calls.post, on_progress=note("progress"),
                  on_done=note("done"), on_error=note("error"), on_cancelled=note("cancelled"),
                  connect=recording_connect(daemon_client)).start()
    run_on_ui_thread(job, calls)

    assert job.state == "succeeded", seen
    assert ui_threads == {threading.current_thread().name}
    assert ThreadRecordingClient.threads
    assert threading.current_thread().name not in ThreadRecordingClient.threads
    assert any(kind == "progress" and args[0] == "diffusion" for kind, *args in seen)
    assert seen[-1][0] == "done"
    result = seen[-1][1]
    assert result.path == tmp_path / "usd" / "portrait_s2.usdc"
    hair = read_groom(result.path)
    assert hair.num_strands == FAST["max_strands"] and hair.positions.shape[1] == 8
    assert hair.provenance.seed == 2

    # The same request again: a second groom file, the first one untouched.
    first = result.path.read_bytes()
    again = HostJob(photo, GroomOptions(seed=2, **TINY), tmp_path / "usd",
                    call_on_ui_thread=calls.post, connect=recording_connect(daemon_client))
    run_on_ui_thread(again.start(), calls)
    assert again.result.path.name == "portrait_s2_2.usdc"
    assert result.path.read_bytes() == first


def test_cancel_from_the_ui_thread_cancels_the_daemon_job(daemon, tmp_path):
    _, daemon_client = daemon
    photo = write_png(tmp_path / "long.png", seed=2)
    calls, outcome = CallQueue(), []
    options = GroomOptions(**{**TINY, "steps": 400})
    job = HostJob(photo, options, tmp_path / "usd", call_on_ui_thread=calls.post,
                  on_progress=lambda phase, step, total: phase == "diffusion" and job.cancel(),
                  on_done=lambda r: outcome.append("done"),
                  on_cancelled=lambda: outcome.append("cancelled"),
                  connect=recording_connect(daemon_client)).start()
    run_on_ui_thread(job, calls)
    assert outcome == ["cancelled"], (job.state, job.error)
    assert daemon_client.job(job.job_id).state == "cancelled"
    assert not (tmp_path / "usd").exists() or not any((tmp_path / "usd").iterdir())
    assert threading.current_thread().name not in ThreadRecordingClient.threads


def test_a_corrupt_photo_reports_the_daemons_message_and_writes_nothing(daemon, tmp_path):
    _, daemon_client = daemon
    photo = tmp_path / "broken.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
    calls, errors = CallQueue(), []
    job = HostJob(photo, GroomOptions(**TINY), tmp_path / "usd", call_on_ui_thread=calls.post,
                  on_error=errors.append, connect=recording_connect(daemon_client)).start()
    run_on_ui_thread(job, calls)
    assert job.state == "failed" and len(errors) == 1
    assert "broken.jpg" in errors[0]
    assert not (tmp_path / "usd").exists() or not any((tmp_path / "usd").iterdir())


def test_hosts_python_folder_gives_a_bare_interpreter_the_client(tmp_path, monkeypatch):
    from tressel.hosting.install import prepare_hosts_python

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    folder = prepare_hosts_python()
    assert prepare_hosts_python() == folder  # refreshing an existing install is fine
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import tressel.client, tressel.hosting;"
            "heavy = {'torch', 'numpy', 'pxr'} & set(sys.modules); assert not heavy, heavy;"
            "print(tressel.client.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(folder)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().startswith(str(folder))


def test_a_wheel_ships_the_host_folders(tmp_path):
    """`tressel hosts install` must work from a wheel, so the wheel carries `hosts/`."""
    subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("tressel-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("tressel/data/hosts/", 1)[1] for n in names if "tressel/data/hosts/" in n}
    expected = {str(p.relative_to(REPO / "hosts")) for p in (REPO / "hosts").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert expected and expected <= shipped
