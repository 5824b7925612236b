"""Settings of one daemon process, from `tressel daemon start` options and environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tressel.client import daemon_dir
from tressel.daemon.lock import LOCK_FILE

ENV_ENGINE = "TRESSEL_DAEMON_ENGINE"
MB = 1024 * 1024
GB = 1024 * MB


@dataclass
class DaemonConfig:
    """Where the daemon keeps its state, what it listens on and what it accepts."""

    state_dir: Path = field(default_factory=daemon_dir)
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, recorded in the endpoint file
    devices: list[str] = field(default_factory=lambda: ["auto"])
    default_bundle: str | None = None
    allowed_roots: list[Path] = field(default_factory=list)  # for path submissions (farm)
    allowed_hosts: list[str] = field(default_factory=list)  # extra Host names beyond loopback
    max_upload_bytes: int = 64 * MB
    max_pixels: int = 40_000_000
    keepalive_s: float = 10.0  # SSE comment interval: lets clients tell silence from a hang
    preload: bool = False  # load the default bundle at start, not at the first job
    recent_jobs: int = 1000  # finished jobs kept in the database
    cache_max_bytes: int = 20 * GB  # result cache size limit (least recently used go); 0: none
    # Below this much free space on the state folder's disk the health report says "degraded".
    min_free_bytes: int = 16 * MB
    # CPU threads per job: "auto" (the cores free at the job's start) or a count; None leaves it
    # to $TRESSEL_THREADS, then $OMP_NUM_THREADS, then auto (`tressel.cpu_threads`).
    threads: str | None = None
    max_decodes: int = 2  # uploads decoded (validated) at once: bounds the memory they take
    # "module:factory" returning an engine; only for tests of the daemon's own machinery.
    engine: str | None = field(default_factory=lambda: os.environ.get(ENV_ENGINE) or None)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "jobs.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def inputs_dir(self) -> Path:
        return self.state_dir / "inputs"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / LOCK_FILE
