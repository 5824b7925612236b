"""The CPU thread policy (issue 19): free cores at each job's start, the user's override wins.

/proc/stat arithmetic runs on fixture text; one daemon job runs in-process with the sampler
forced, to show the job's torch work really runs with the chosen count.
"""

from __future__ import annotations

import threading
import time

import pytest
from tressel import cpu_threads as cpu_threads_module
from tressel.cpu_threads import (
    LOAD_TOLERANCE,
    CoreTicks,
    choose_threads,
    fixed_threads,
    other_load,
    parse_proc_stat,
    parse_process_ticks,
    sample_other_load,
)
from tressel.errors import ConfigError

# Two /proc/stat reads 20 ticks apart on a 4-core machine: core 0 fully busy (user), core 1
# half busy (system + steal), cores 2 and 3 idle (one waiting on disk). The `cpu` total line
# and the trailing lines must be ignored.
STAT_BEFORE = """cpu  999 9 99 9999 9 0 0 0 0 0
cpu0 100 0 10 500 0 0 0 0 0 0
cpu1 200 0 20 400 5 0 0 0 0 0
cpu2 300 5 30 300 5 1 1 0 0 0
cpu3 400 0 40 200 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""
STAT_AFTER = """cpu  1999 9 99 9999 9 0 0 0 0 0
cpu0 120 0 10 500 0 0 0 0 0 0
cpu1 200 0 25 410 5 0 0 5 0 0
cpu2 300 5 30 310 15 1 1 0 0 0
cpu3 400 0 40 220 0 0 0 0 0 0
intr 22345 0 0
ctxt 1999
"""
# A process named "a) b (c" (names may hold spaces and parentheses): utime 7, stime 3.
SELF_STAT = "4242 (a) b (c) S 1 4242 4242 0 -1 4194304 10 0 0 0 7 3 0 0 20 0 1 0 1 1 1"


def self_stat(utime: int, stime: int) -> str:
    return SELF_STAT.replace(" 7 3 0 0 20", f" {utime} {stime} 0 0 20")


# The reader itself, before `no_container_quota` replaces it for every test.
REAL_CGROUP_CPU_LIMIT = cpu_threads_module.cgroup_cpu_limit


@pytest.fixture(autouse=True)
def no_container_quota(monkeypatch):
    """The counts below assume no CPU quota; the machine running the tests may have one."""
    monkeypatch.setattr(cpu_threads_module, "cgroup_cpu_limit", lambda read=None: None)


def test_proc_stat_parsing_counts_busy_and_free_time_per_core():
    cores = parse_proc_stat(STAT_BEFORE)
    assert sorted(cores) == [0, 1, 2, 3]
    assert cores[0] == CoreTicks(busy=110, total=610)
    assert cores[2] == CoreTicks(busy=337, total=642)  # nice, irq, softirq busy; iowait free
    short = parse_proc_stat("cpu0 10 0 5 100\n")  # old kernels: only four fields
    assert short[0] == CoreTicks(busy=15, total=115)


def test_own_process_ticks_are_read_after_the_last_parenthesis():
    assert parse_process_ticks(SELF_STAT) == 10
    assert parse_process_ticks(self_stat(120, 30)) == 150


def test_load_of_others_is_busy_ticks_over_the_window_minus_our_own():
    before, after = parse_proc_stat(STAT_BEFORE), parse_proc_stat(STAT_AFTER)
    # busy: core0 +20, core1 +10 (5 system + 5 steal); window 20 ticks per core
    assert other_load(before, after, own_ticks=0) == pytest.approx(1.5)
    # 10 of those ticks were this process's own work: not a busy workstation
    assert other_load(before, after, own_ticks=10) == pytest.approx(1.0)
    assert other_load(before, after, own_ticks=100) == 0.0  # never negative
    # affinity: only cores 2 and 3 are ours; the busy cores 0 and 1 are not our concern
    assert other_load(before, after, own_ticks=0, cores={2, 3}) == pytest.approx(0.0)
    assert other_load(before, after, own_ticks=0, cores={0, 3}) == pytest.approx(1.0)
    assert other_load(before, before, own_ticks=0) is None  # no time passed: cannot tell


def test_sampler_reads_proc_twice_around_the_window():
    reads = {"/proc/stat": [STAT_BEFORE, STAT_AFTER],
             "/proc/self/stat": [self_stat(7, 3), self_stat(12, 3)]}
    slept = []
    load = sample_other_load({0, 1, 2, 3}, window=0.123, read=lambda p: reads[p].pop(0),
                             sleep=slept.append)
    assert slept == [0.123]
    assert load == pytest.approx((30 - 5) / 20)


def test_without_proc_auto_means_every_usable_core():
    assert sample_other_load({0, 1}, read=lambda path: None, sleep=lambda s: None) is None
    choice = choose_threads(environ={}, usable=lambda: {0, 1, 2},
                            sample=lambda cores: sample_other_load(
                                cores, read=lambda path: None, sleep=lambda s: None))
    assert (choice.threads, choice.source, choice.other_load) == (3, "auto", None)
    assert "not measurable" in choice.describe()
    # no affinity API either (macOS, Windows): the CPU count
    import os

    choice = choose_threads(environ={}, usable=lambda: None, sample=lambda cores: None)
    assert choice.threads == (os.cpu_count() or 1)


def test_a_garbled_proc_stat_is_treated_as_missing():
    reads = {"/proc/stat": ["cpu0 x y z\n", "cpu0 x y z\n"],
             "/proc/self/stat": [SELF_STAT, SELF_STAT]}
    assert sample_other_load(None, read=lambda p: reads[p].pop(0), sleep=lambda s: None) is None


@pytest.mark.parametrize(("load", "threads"), [
    (0.0, 4), (LOAD_TOLERANCE, 4), (0.3, 3), (1.0, 3), (1.2, 3), (1.3, 2), (3.9, 1), (8.0, 1),
])
def test_auto_gives_the_cores_other_processes_leave_free(load, threads):
    choice = choose_threads(environ={}, usable=lambda: {0, 1, 2, 3}, sample=lambda c: load)
    assert (choice.threads, choice.source, choice.cores) == (threads, "auto", 4)
    assert choice.other_load == load


def test_threads_held_by_other_jobs_of_this_process_are_not_free():
    choice = choose_threads(environ={}, reserved=1, usable=lambda: {0, 1, 2, 3},
                            sample=lambda c: 1.0)
    assert choice.threads == 2 and choice.reserved == 1
    assert "1 held by other jobs" in choice.describe()


def test_with_one_core_left_nothing_is_measured():
    def never(cores):
        raise AssertionError("sampled although there was nothing to decide")

    assert choose_threads(environ={}, usable=lambda: {0}, sample=never).threads == 1
    assert choose_threads(environ={}, reserved=3, usable=lambda: {0, 1}, sample=never).threads == 1


def test_the_user_fixes_the_count_setting_then_tressel_threads_then_omp():
    def never(cores):
        raise AssertionError("sampled although the count was fixed")

    env = {"TRESSEL_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert fixed_threads("7", env) == (7, "setting")
    assert fixed_threads(None, env) == (3, "TRESSEL_THREADS")
    assert fixed_threads(None, {"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS")
    assert fixed_threads(None, {"OMP_NUM_THREADS": "4,2"}) == (4, "OMP_NUM_THREADS")
    assert fixed_threads(None, {"OMP_NUM_THREADS": "lots"}) == (None, "auto")
    # an explicit auto wins over OMP_NUM_THREADS, from the setting or the environment
    assert fixed_threads("auto", env) == (None, "auto")
    assert fixed_threads(None, {"TRESSEL_THREADS": "auto", "OMP_NUM_THREADS": "5"}) == \
        (None, "auto")
    choice = choose_threads(None, environ=env, usable=lambda: {0, 1}, sample=never)
    assert (choice.threads, choice.source) == (3, "TRESSEL_THREADS")
    assert choice.describe() == "3 CPU thread(s), fixed by TRESSEL_THREADS"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_says_what_to_write(value):
    with pytest.raises(ConfigError, match="whole number of threads"):
        fixed_threads(None, {"TRESSEL_THREADS": value})
    with pytest.raises(ConfigError, match="--threads"):
        fixed_threads(value, {})


def test_the_sampler_sees_another_process_spin_but_not_our_own_thread():
    """Real /proc: a spinning child process shows as about one more busy core; this process
    spinning a thread of its own does not (it is the daemon's own work)."""
    import os
    import subprocess
    import sys

    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat on this OS")
    cores = len(os.sched_getaffinity(0))
    quiet = sample_other_load(None, window=0.3)
    assert quiet is not None
    if cores < 2 or quiet > cores - 1.3:
        pytest.skip(f"other processes keep {quiet:.1f} of {cores} cores busy: no room to see "
                    "one more")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.1)
        busy = sample_other_load(None, window=0.3)
    finally:
        spinner.kill()
        spinner.wait()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    ours = threading.Thread(target=spin)
    ours.start()
    try:
        time.sleep(0.05)
        mine = sample_other_load(None, window=0.3)
    finally:
        stop.set()
        ours.join()
    assert busy is not None and busy - quiet > 0.5, (quiet, busy)
    assert mine is not None and mine - quiet < 0.5, (quiet, mine)


# --------------------------------------------------------------------------------------------
# the daemon applies it


@pytest.fixture
def auto_environment(monkeypatch):
    monkeypatch.delenv("TRESSEL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def _run_daemon_job(tmp_path, monkeypatch, threads):
    """One real-pipeline job in an in-process daemon; (torch threads inside generate, the
    job's setup event, its final state)."""
    from daemon_support import FAST, WRITE, tiny_bundle, wait_for, write_png
    from tressel import pipeline
    from tressel.daemon.config import DaemonConfig
    from tressel.daemon.engine import PipelineEngine
    from tressel.daemon.manager import JobManager

    seen = []
    real_generate = pipeline.generate

    def generate(*args, **kwargs):
        import torch

        seen.append(torch.get_num_threads())
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(pipeline, "generate", generate)
    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "models"))
    bundle = tiny_bundle(tmp_path)
    manager = JobManager(DaemonConfig(state_dir=tmp_path / "state", devices=["cpu"]),
                         PipelineEngine(str(bundle.path), threads))
    manager.start()
    try:
        image = write_png(tmp_path / "a.png").read_bytes()
        job = manager.submit(image, "a.png", None, {**FAST, "steps": 1}, WRITE, 0, "usda")
        done = wait_for(lambda: (j := manager.store.get(job.id)) and j.done and j, timeout=240)
        setup = [e.data for e in manager.bus.since(job.id, 0) if e.type == "setup"]
    finally:
        manager.stop(timeout=10)
    return seen, setup, done


@pytest.mark.timeout(300)
def test_a_daemon_job_runs_with_the_threads_auto_chose(tmp_path, monkeypatch, auto_environment):
    import os

    import torch
    from tressel import cpu_threads

    # Every usable core but one is busy elsewhere: auto must give the job one thread.
    monkeypatch.setattr(cpu_threads, "sample_other_load", lambda cores: len(cores or [0]) - 1.0)
    before = torch.get_num_threads()
    seen, setup, done = _run_daemon_job(tmp_path, monkeypatch, threads=None)
    assert done.state == "succeeded", done.error
    assert seen == [1]
    assert setup[0]["cpu_threads"]["threads"] == 1
    assert setup[0]["cpu_threads"]["source"] == "auto"
    assert setup[0]["cpu_threads"]["cores"] == len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == before  # the test's (main) thread was never touched


@pytest.mark.timeout(300)
def test_a_fixed_daemon_setting_wins_over_the_measurement(tmp_path, monkeypatch,
                                                          auto_environment):
    from tressel import cpu_threads

    def never(cores):
        raise AssertionError("sampled although --threads fixed the count")

    monkeypatch.setattr(cpu_threads, "sample_other_load", never)
    monkeypatch.setenv("TRESSEL_THREADS", "2")  # the daemon's own setting beats it
    seen, setup, done = _run_daemon_job(tmp_path, monkeypatch, threads="3")
    assert done.state == "succeeded", done.error
    assert seen == [3]
    assert setup[0]["cpu_threads"] == {"threads": 3, "source": "setting",
                                       "cores": setup[0]["cpu_threads"]["cores"],
                                       "other_load": None, "reserved": 0, "quota": None}


def test_a_second_cpu_job_does_not_count_on_the_first_jobs_threads(monkeypatch,
                                                                    auto_environment):
    """Two `--device cpu` workers: the first job's work is this process's own (left out of
    the measurement), so the engine reserves its threads for it."""
    from pathlib import Path

    from tressel import cpu_threads
    from tressel.daemon.engine import EngineJob, PipelineEngine

    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(cpu_threads, "sample_other_load", lambda cores: 0.0)
    # choose_threads took usable_cores as a default at import: route the engine through it.
    real_choose = cpu_threads.choose_threads
    monkeypatch.setattr(cpu_threads, "choose_threads",
                        lambda setting, **kw: real_choose(setting, usable=lambda: {0, 1, 2, 3},
                                                          **kw))
    engine = PipelineEngine(None, "auto")
    announced: list[dict] = []

    def job(name: str) -> EngineJob:
        return EngineJob(job_id=name, image_path=Path("x.png"), image_name="x.png", bundle="",
                         bundle_hash="", params={}, write_options={}, seed=0, format="usda",
                         device="cpu", output_path=Path("o"), temp_path=Path("t"),
                         announce=announced.append)

    with engine._cpu_threads(job("first")), engine._cpu_threads(job("second")):
        pass
    with engine._cpu_threads(job("third")):
        pass
    threads = [a["cpu_threads"]["threads"] for a in announced]
    reserved = [a["cpu_threads"]["reserved"] for a in announced]
    assert threads == [4, 1, 4] and reserved == [0, 4, 0]


def test_a_bad_tressel_threads_fails_generate_before_torch(tmp_path):
    import json
    import os
    import subprocess

    from daemon_support import PYTHON, write_png

    image = write_png(tmp_path / "face.png")
    probe = ("import contextlib, io, json, sys\n"
             "from tressel.cli import main\n"
             "err = io.StringIO()\n"
             "with contextlib.redirect_stderr(err):\n"
             f"    code = main(['generate', {str(image)!r}, '-o', {str(tmp_path / 'g.usdc')!r}])\n"
             "print(json.dumps({'code': code, 'err': err.getvalue(),\n"
             "                  'torch': 'torch' in sys.modules}))\n")
    env = {**os.environ, "TRESSEL_THREADS": "many", "TRESSEL_MODELS_DIR": str(tmp_path / "m")}
    result = subprocess.run([PYTHON, "-c", probe], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["code"] == 1 and not outcome["torch"], outcome
    assert "TRESSEL_THREADS='many' is not a thread count" in outcome["err"], outcome


def test_daemon_start_refuses_a_bad_thread_setting_before_starting(tmp_path, capsys):
    from tressel.cli import main

    code = main(["daemon", "start", "--threads", "zero", "--state-dir", str(tmp_path / "s")])
    assert code == 1
    assert "--threads='zero' is not a thread count" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing was started or created


def test_cli_and_batch_jobs_run_with_the_chosen_threads_then_restore(monkeypatch,
                                                                     auto_environment, caplog):
    """`tressel generate` and `tressel batch` wrap each photo in `cpu_job_threads`."""
    import logging

    import torch
    from tressel import cpu_threads

    monkeypatch.setenv("TRESSEL_THREADS", "3")
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger="tressel.cpu_threads"), \
            cpu_threads.cpu_job_threads("cpu", "face.png") as choice:
        assert torch.get_num_threads() == 3 and choice.threads == 3
    assert torch.get_num_threads() == before
    assert "face.png: 3 CPU thread(s), fixed by TRESSEL_THREADS" in caplog.text
    with cpu_threads.cpu_job_threads("meta", "face.png") as choice:  # not a CPU: untouched
        assert choice is None and torch.get_num_threads() == before


def _files(contents: dict[str, str]):
    return lambda path: contents.get(path)


@pytest.mark.parametrize(("files", "limit"), [
    # cgroup v2, the container's own cgroup seen as the root (a cgroup namespace)
    ({"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
    ({"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
    # v2 nested: the tightest limit between the process's cgroup and the root
    ({"/proc/self/cgroup": "0::/farm/job7\n",
      "/sys/fs/cgroup/farm/job7/cpu.max": "max 100000\n",
      "/sys/fs/cgroup/farm/cpu.max": "300000 100000\n",
      "/sys/fs/cgroup/cpu.max": "800000 100000\n"}, 3.0),
    # cgroup v1, with the cpu controller mounted with cpuacct
    ({"/proc/self/cgroup": "12:pids:/\n4:cpu,cpuacct:/docker/abc\n",
      "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
      "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"/proc/self/cgroup": "4:cpu,cpuacct:/\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),  # no /proc (macOS, Windows)
    ({"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "garbage\n"}, None),
])
def test_a_container_cpu_quota_is_read_from_its_cgroup(files, limit):
    assert REAL_CGROUP_CPU_LIMIT(_files(files)) == limit


def test_a_cpu_quota_caps_the_threads_auto_chooses():
    idle = {"environ": {}, "usable": lambda: {0, 1, 2, 3, 4, 5, 6, 7}, "sample": lambda c: 0.0}
    choice = choose_threads(quota=lambda: 2.5, **idle)
    assert (choice.threads, choice.cores, choice.quota) == (2, 2, 2.5)
    assert "a CPU quota of 2.5" in choice.describe() and choice.as_dict()["quota"] == 2.5
    assert choose_threads(quota=lambda: 0.5, **idle).threads == 1
    assert choose_threads(quota=lambda: None, **idle).threads == 8
    # A count the user fixes is theirs to choose.
    assert choose_threads("6", quota=lambda: 2.0, **idle).threads == 6
