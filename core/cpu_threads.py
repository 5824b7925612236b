"""How many CPU threads a job should use: the cores free at its start, or what the user set.

A workstation running Maya or Houdini beside the daemon has cores the job cannot use, and
torch's default (one spinning OpenMP thread per core) made a job three times slower as soon as
one core was busy elsewhere (`benchmarks/bench_threads.py`). So each CPU job starts by looking:
the cores this process may run on (its affinity) minus the load of *other* processes on them,
measured from two reads of `/proc/stat` a fraction of a second apart, less this process's own
CPU time over the same window (`/proc/self/stat`), so the daemon's own previous work (OpenMP
threads still spinning after the last job) is not mistaken for a busy workstation.

A container's CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`; a farm worker in Docker or
Kubernetes) caps the cores counted as usable: threads beyond the quota are throttled, not run.

Rules, first match wins: a daemon setting (`tressel daemon start --threads`), then
`$TRESSEL_THREADS`, then an explicitly set `$OMP_NUM_THREADS`; each is a whole number (a fixed
count) or "auto". Where `/proc` is missing (macOS, Windows) "auto" means every core this process
may use. Standard library only: the CLI and the daemon decide before they touch torch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from tressel.errors import ConfigError

log = logging.getLogger(__name__)

ENV_THREADS = "TRESSEL_THREADS"
# Long enough for a few scheduler ticks per core (USER_HZ is 100 on Linux: 20 ticks here),
# short enough to be noise beside a job of seconds.
SAMPLE_WINDOW_S = 0.2
# Load from others below this (in cores, machine-wide) is background noise (a shell, an idle
# DCC's UI); beyond it a core counts as taken. Erring towards fewer threads is cheap (the demo
# job gained nothing from its second thread) while one thread too many costs 3x.
LOAD_TOLERANCE = 0.25

ReadText = Callable[[str], "str | None"]


@dataclass(frozen=True)
class CoreTicks:
    """Cumulative scheduler ticks of one core: spent working (any process), and in all."""

    busy: int
    total: int


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count for one job and why."""

    threads: int
    source: str  # "auto", "setting", ENV_THREADS or "OMP_NUM_THREADS"
    cores: int  # cores this process may use
    other_load: float | None = None  # cores kept busy by other processes (auto, measured)
    reserved: int = 0  # threads held by other jobs of this process
    quota: float | None = None  # CPUs the container's cgroup allows, if it sets a quota

    def describe(self) -> str:
        if self.source != "auto":
            return f"{self.threads} CPU thread(s), fixed by {self.source}"
        if self.other_load is None:
            return (f"{self.threads} CPU thread(s): {self.cores} core(s) usable, load of other "
                    "processes not measurable here")
        held = f", {self.reserved} held by other jobs" if self.reserved else ""
        quota = f" (a CPU quota of {self.quota:g})" if self.quota is not None else ""
        return (f"{self.threads} CPU thread(s): {self.cores} core(s) usable{quota}, "
                f"{self.other_load:.2f} busy with other processes{held}")

    def as_dict(self) -> dict[str, object]:
        return {"threads": self.threads, "source": self.source, "cores": self.cores,
                "other_load": None if self.other_load is None else round(self.other_load, 3),
                "reserved": self.reserved, "quota": self.quota}


# --------------------------------------------------------------------------------------------
# parsing /proc


def parse_proc_stat(text: str) -> dict[int, CoreTicks]:
    """Per-core ticks from `/proc/stat` text (the `cpuN` lines; the `cpu` total is skipped).

    Fields: user nice system idle iowait irq softirq steal [guest guest_nice]. Guest time is
    already inside user and nice, so it is not added again; idle and iowait are the core's free
    time, and steal (a hypervisor ran someone else) counts as taken.
    """
    cores: dict[int, CoreTicks] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        fields = [int(v) for v in rest.split()[:8]]
        fields += [0] * (8 - len(fields))
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        busy = user + nice + system + irq + softirq + steal
        cores[int(name[3:])] = CoreTicks(busy=busy, total=busy + idle + iowait)
    return cores


def parse_process_ticks(text: str) -> int:
    """utime + stime (ticks, all threads) from `/proc/<pid>/stat` text.

    The command name (field 2) is in parentheses and may hold spaces or parentheses itself,
    so fields are counted after its last ")": field N is then item N - 3.
    """
    rest = text[text.rindex(")") + 1:].split()
    return int(rest[11]) + int(rest[12])


def other_load(before: Mapping[int, CoreTicks], after: Mapping[int, CoreTicks],
               own_ticks: int, cores: set[int] | None = None) -> float | None:
    """Cores kept busy by other processes between two `/proc/stat` reads, on `cores`.

    `own_ticks`: this process's CPU ticks over the same window, taken off (it runs only on
    `cores`, its affinity). None when the window held no ticks (too short to tell).
    """
    ids = [c for c in (sorted(cores) if cores is not None else sorted(after)) if c in before
           and c in after]
    if not ids:
        return None
    busy = sum(after[c].busy - before[c].busy for c in ids)
    total = sum(after[c].total - before[c].total for c in ids)
    if total <= 0:
        return None
    ticks_per_core = total / len(ids)  # the window's length in ticks
    return max(busy - own_ticks, 0) / ticks_per_core


# --------------------------------------------------------------------------------------------
# the machine


def usable_cores() -> set[int] | None:
    """The core ids this process may run on (Linux affinity), or None where the OS won't say."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return set(getaffinity(0))
    except OSError:
        return None


def cgroup_cpu_limit(read: ReadText | None = None) -> float | None:
    """The CPUs this process's cgroup may use (its quota over its period), or None without a
    quota. The tightest limit on the way from the process's cgroup up to the root counts."""
    read = read or _read_text
    limits = []
    for line in (read("/proc/self/cgroup") or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: one hierarchy
            roots, quota = ["/sys/fs/cgroup"], _v2_quota
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own mount
            roots, quota = ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"], _v1_quota
        else:
            continue
        for root in roots:
            for folder in _ancestors(path):
                limit = quota(read, f"{root}{folder}")
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _ancestors(path: str) -> list[str]:
    """"/a/b" -> ["/a/b", "/a", ""] (folders below a cgroup mount, deepest first)."""
    parts = [p for p in path.strip().split("/") if p]
    return ["/" + "/".join(parts[:i]) if i else "" for i in range(len(parts), -1, -1)]


def _v2_quota(read: ReadText, folder: str) -> float | None:
    """cgroup v2 `cpu.max`: "QUOTA PERIOD", or "max PERIOD" without a quota."""
    text = read(f"{folder}/cpu.max")
    fields = (text or "").split()
    return _cpus(fields[0], fields[1]) if len(fields) >= 2 else None


def _v1_quota(read: ReadText, folder: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` (-1 without a quota) over `cpu.cfs_period_us`."""
    quota, period = read(f"{folder}/cpu.cfs_quota_us"), read(f"{folder}/cpu.cfs_period_us")
    return None if quota is None or period is None else _cpus(quota.strip(), period.strip())


def _cpus(quota: str, period: str) -> float | None:
    """CPUs a quota allows over its period, or None for none ("max", negative) or garbage."""
    try:
        if quota == "max" or int(quota) < 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except ValueError:
        return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def sample_other_load(cores: set[int] | None, window: float = SAMPLE_WINDOW_S,
                      read: ReadText = _read_text,
                      sleep: Callable[[float], None] = time.sleep) -> float | None:
    """Cores busy with other processes over the next `window` seconds; None without /proc."""
    stat_before, own_before = read("/proc/stat"), read("/proc/self/stat")
    if stat_before is None or own_before is None:
        return None
    sleep(window)
    stat_after, own_after = read("/proc/stat"), read("/proc/self/stat")
    if stat_after is None or own_after is None:
        return None
    try:
        own = parse_process_ticks(own_after) - parse_process_ticks(own_before)
        return other_load(parse_proc_stat(stat_before), parse_proc_stat(stat_after), own,
                          cores)
    except (ValueError, IndexError):  # an unexpected /proc format: behave as if it were absent
        log.warning("cannot read the CPU load from /proc/stat: using every usable core")
        return None


# --------------------------------------------------------------------------------------------
# the decision


def parse_setting(value: str | None, where: str) -> int | None:
    """A thread setting: None or "auto" → None (decide per job), a whole number ≥ 1 → it."""
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    try:
        count = int(value.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"{where}={value!r} is not a thread count: use a whole number of "
                          "threads (1 or more) or auto")
    return count


def fixed_threads(setting: str | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[int | None, str]:
    """(count, where it was set) when the user fixed the count, else (None, "auto")."""
    environ = os.environ if environ is None else environ
    if setting is not None and setting.strip().lower() != "auto":
        return parse_setting(setting, "--threads"), "setting"
    if setting is None and environ.get(ENV_THREADS, "").strip():
        count = parse_setting(environ[ENV_THREADS], ENV_THREADS)
        if count is not None:
            return count, ENV_THREADS
        return None, "auto"  # an explicit "auto" also overrides OMP_NUM_THREADS
    omp = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if setting is None and omp:
        # torch already took this count at import; keep to it rather than fight it.
        if omp.isdigit() and int(omp) >= 1:
            return int(omp), "OMP_NUM_THREADS"
        log.warning("ignoring OMP_NUM_THREADS=%r (not a whole number of threads)", omp)
    return None, "auto"


def choose_threads(setting: str | None = None, *, reserved: int = 0,
                   environ: Mapping[str, str] | None = None,
                   usable: Callable[[], set[int] | None] = usable_cores,
                   sample: Callable[[set[int] | None], float | None] | None = None,
                   quota: Callable[[], float | None] | None = None,
                   ) -> ThreadChoice:
    """The thread count for a job starting now.

    `setting`: the daemon's `--threads` (None: not given, the environment decides).
    `reserved`: threads held by other jobs running in this process (their work is this
    process's own CPU time, which the measurement leaves out). `usable`, `sample` and `quota`
    stand in for the machine's affinity, the /proc sampler and the cgroup reader (tests).
    """
    allowed = usable()
    count = len(allowed) if allowed else (os.cpu_count() or 1)
    fixed, source = fixed_threads(setting, environ)
    if fixed is not None:
        return ThreadChoice(threads=fixed, source=source, cores=count)
    limit = (quota or cgroup_cpu_limit)()
    if limit is not None:
        # A 1.5-CPU quota runs one thread fully; a second would be throttled half the time.
        count = min(count, max(int(limit), 1))
    free = count - reserved
    load = None
    if free > 1:  # with one core (or none) left there is nothing to decide: skip the wait
        load = (sample or sample_other_load)(allowed)
        if load is not None:
            free -= max(math.ceil(load - LOAD_TOLERANCE), 0)
    return ThreadChoice(threads=max(free, 1), source="auto", cores=count, other_load=load,
                        reserved=reserved, quota=limit)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads on this thread, then restore them.

    With torch's OpenMP backend the count belongs to the calling thread (and seeds threads
    started later), so a daemon worker setting it does not change a job running on another
    worker; the strand decoder's pool takes its size from it (`torch.get_num_threads()`).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def cpu_job_threads(device: str, label: str,
                    setting: str | None = None) -> Iterator[ThreadChoice | None]:
    """For a job about to run on `device` ("auto", "cpu", "cuda:0"...): on the CPU, choose its
    threads now, log the choice under `label` and run the block with them; else do nothing."""
    from tressel.pipeline import resolve_device

    if resolve_device(device).type != "cpu":
        yield None
        return
    choice = choose_threads(setting)
    log.info("%s: %s", label, choice.describe())
    with torch_threads(choice.threads):
        yield choice
