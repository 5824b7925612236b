"""`tressel daemon start|stop|status|logs`: run the inference daemon that every host talks to."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "daemon",
        help="start, stop or inspect the inference daemon",
        description=(
            "The daemon keeps the model loaded and runs jobs for the Maya and Houdini tools, the "
            "review tool, `tressel submit` and scripts. It listens on 127.0.0.1 only, writes "
            "its port and a fresh access token to a user-only file in its state folder "
            "($TRESSEL_DAEMON_DIR, default: the user's state directory), and keeps jobs and "
            "results there across restarts."
        ),
        epilog="examples: tressel daemon start --detach; tressel daemon status; "
        "tressel daemon logs -n 50; tressel daemon stop",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    start = actions.add_parser("start", help="start the daemon (in this terminal, or --detach)")
    start.add_argument("-d", "--detach", action="store_true",
                       help="run in the background and return once it answers")
    start.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, loopback only)")
    start.add_argument("--port", type=int, default=0,
                       help="port (default 0: any free port, written to the endpoint file)")
    start.add_argument("--device", action="append", default=[],
                       help="device to run on, repeatable for one worker each: cpu, cuda:0... "
                       "(default: every GPU, else the CPU)")
    start.add_argument("--bundle", help="default model bundle (name or folder)")
    start.add_argument("--allow-root", action="append", default=[], type=Path, metavar="DIR",
                       help="folder whose images jobs may name by path (farm use); repeatable")
    start.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="extra Host header name to accept besides loopback; repeatable")
    start.add_argument("--max-upload-mb", type=float, default=64.0,
                       help="largest accepted image file in MB (default 64)")
    start.add_argument("--max-megapixels", type=float, default=40.0,
                       help="largest accepted image in megapixels (default 40)")
    start.add_argument("--cache-max-gb", type=float, default=20.0,
                       help="result cache size limit in GB; the least recently used layers "
                       "are deleted beyond it (default 20, 0 for no limit)")
    start.add_argument("--preload", action="store_true",
                       help="load the default bundle at start instead of at the first job")
    start.add_argument("--threads", metavar="N|auto", default=None,
                       help="CPU threads per job: auto (the cores free at each job's start, "
                       "so a busy Maya or Houdini does not slow jobs threefold) or a fixed "
                       "count (default: $TRESSEL_THREADS, else $OMP_NUM_THREADS, else auto)")
    start.add_argument("--timeout", type=float, default=120.0,
                       help="with --detach: seconds to wait for the daemon to answer")
    _state_dir_option(start)
    start.set_defaults(func=run_start)

    stop = actions.add_parser("stop", help="stop the daemon (a running job is re-queued)")
    stop.add_argument("--timeout", type=float, default=30.0,
                      help="seconds to wait for a graceful stop before SIGTERM")
    _state_dir_option(stop)
    stop.set_defaults(func=run_stop)

    status = actions.add_parser("status", help="is it running; device, memory, queue")
    status.add_argument("--json", action="store_true", help="print the health report as JSON")
    _state_dir_option(status)
    status.set_defaults(func=run_status)

    logs = actions.add_parser("logs", help="print the daemon's log")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines to print (default 40)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    _state_dir_option(logs)
    logs.set_defaults(func=run_logs)


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the daemon's state folder (default $TRESSEL_DAEMON_DIR or the "
                        "user's state directory)")


def _state_dir(args: argparse.Namespace) -> Path:
    from tressel.client import daemon_dir

    return (args.state_dir or daemon_dir()).expanduser().resolve()


def _running_client(state_dir: Path):  # -> Client | None
    from tressel.client import Client, DaemonError, read_endpoint

    endpoint = read_endpoint(state_dir)
    if endpoint is None:
        return None
    client = Client(endpoint, timeout=5.0, state_dir=state_dir)
    try:
        client.health()
    except (DaemonError, OSError, ValueError):  # unreachable, or a stale endpoint file
        return None
    return client


# What the daemon imports beyond the plain install: the `daemon` extra (setup.py).
DAEMON_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def run_start(args: argparse.Namespace) -> int:
    from tressel.cpu_threads import fixed_threads

    fixed_threads(args.threads)  # a bad --threads or $TRESSEL_THREADS: say so before starting
    from tressel.extras import require_extra

    # Before detaching: the user sees it here, not in a log.
    require_extra("daemon", DAEMON_MODULES, "the daemon", note=" (the hosts and `tressel "
                  "submit` talk to it; `tressel generate` and `tressel batch` do not need it)")
    state_dir = _state_dir(args)
    running = _running_client(state_dir)
    if running is not None:
        e = running.endpoint
        print(f"tressel daemon: already running (pid {e.pid}, {e.url}, state {state_dir}); "
              "stop it first with `tressel daemon stop`", file=sys.stderr)
        return 1
    if args.detach:
        from tressel.client import start_daemon

        endpoint = start_daemon(state_dir, args=_foreground_args(args), timeout=args.timeout)
        print(f"tressel daemon: running (pid {endpoint.pid}, {endpoint.url}, state {state_dir})")
        return 0

    from tressel.client import ENV_LAUNCH_ID
    from tressel.daemon.config import GB, MB, DaemonConfig
    from tressel.daemon.server import run_daemon

    config = DaemonConfig(
        state_dir=state_dir, host=args.host, port=args.port, devices=args.device or ["auto"],
        default_bundle=args.bundle, allowed_roots=[p.resolve() for p in args.allow_root],
        allowed_hosts=args.allow_host, max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=int(args.max_megapixels * 1e6), preload=args.preload,
        cache_max_bytes=int(args.cache_max_gb * GB), threads=args.threads,
    )
    # A detached daemon's stderr is a file: its log already goes to daemon.log.
    return run_daemon(config, log_to_stderr=not os.environ.get(ENV_LAUNCH_ID))


def _foreground_args(args: argparse.Namespace) -> list[str]:
    """This `start` command line without --detach, for the detached process to run."""
    argv = ["--host", args.host, "--port", str(args.port),
            "--max-upload-mb", str(args.max_upload_mb),
            "--max-megapixels", str(args.max_megapixels),
            "--cache-max-gb", str(args.cache_max_gb)]
    for device in args.device:
        argv += ["--device", device]
    if args.bundle:
        argv += ["--bundle", str(args.bundle)]
    for root in args.allow_root:
        argv += ["--allow-root", str(root.resolve())]
    for host in args.allow_host:
        argv += ["--allow-host", host]
    if args.preload:
        argv.append("--preload")
    if args.threads is not None:
        argv += ["--threads", args.threads]
    return argv


def run_stop(args: argparse.Namespace) -> int:
    import signal

    from tressel.client import DaemonError, read_endpoint
    from tressel.daemon.lock import is_held

    state_dir = _state_dir(args)
    if not is_held(state_dir):
        print(f"tressel daemon: not running (state {state_dir})")
        return 0
    endpoint = read_endpoint(state_dir)
    client = _running_client(state_dir)
    if client is not None:
        try:
            client.shutdown()
        except DaemonError as exc:
            print(f"tressel daemon: shutdown request failed ({exc}); sending SIGTERM",
                  file=sys.stderr)
    if _wait_released(state_dir, args.timeout if client is not None else 0.0):
        print("tressel daemon: stopped")
        return 0
    if endpoint is None or endpoint.pid <= 0:
        print(f"tressel daemon: a daemon holds {state_dir} but wrote no endpoint file; stop "
              "its process by hand", file=sys.stderr)
        return 1
    try:
        os.kill(endpoint.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if _wait_released(state_dir, 15.0):
        print("tressel daemon: stopped (SIGTERM)")
        return 0
    print(f"tressel daemon: pid {endpoint.pid} did not stop; kill it by hand", file=sys.stderr)
    return 1


def _wait_released(state_dir: Path, timeout: float) -> bool:
    from tressel.daemon.lock import is_held

    deadline = time.monotonic() + timeout
    while True:
        if not is_held(state_dir):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def run_status(args: argparse.Namespace) -> int:
    from tressel.daemon.config import GB
    from tressel.daemon.lock import is_held

    state_dir = _state_dir(args)
    client = _running_client(state_dir)
    if client is None:
        hung = is_held(state_dir)
        note = " but its process holds the state folder (starting, or hung)" if hung else ""
        print(f"tressel daemon: not answering{note} (state {state_dir})")
        return 3
    health = client.health()
    if args.json:
        print(json.dumps(health, indent=2))
        return 0
    e = client.endpoint
    print(f"tressel daemon {health['version']}: running, pid {health['pid']}, {e.url}, "
          f"up {health['uptime_s']:.0f} s, state {state_dir}")
    for device in health["devices"]:
        memory = ""
        if device.get("memory_allocated") is not None and device.get("memory_total"):
            memory = (f", {device['memory_allocated'] / 1e9:.2f} GB allocated of "
                      f"{device['memory_total'] / 1e9:.1f} GB")
        elif device.get("memory_total"):
            memory = (f", {device.get('memory_free', 0) / 1e9:.1f} GB free of "
                      f"{device['memory_total'] / 1e9:.1f} GB")
        model = f" ({device['model']})" if device.get("model") else ""
        print(f"  device {device['name']}{model}{memory}")
    rss = health["memory"].get("rss_bytes")
    if rss:
        print(f"  process memory {rss / 1e9:.2f} GB")
    print(f"  jobs: {health['queue']['running']} running, {health['queue']['queued']} queued")
    for problem in health.get("problems") or []:
        print(f"  PROBLEM: {problem}")
    cache, limit = health.get("cache"), health["limits"].get("cache_max_bytes")
    if cache is not None:
        print(f"  result cache: {cache['layers']} layer(s), {cache['bytes'] / GB:.2f} GB"
              + (f" of {limit / GB:.1f} GB" if limit else " (no limit)"))
    for model in client.models():
        flags = ", ".join(f for f in ("loaded" if model["loaded"] else "",
                                      "default" if model["default"] else "") if f)
        print(f"  model {model['name']} {model['hash'][:12]}{' (' + flags + ')' if flags else ''}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from tressel.daemon.config import DaemonConfig

    path = DaemonConfig(state_dir=_state_dir(args)).log_path
    if not path.exists():
        print(f"tressel daemon: no log yet at {path}", file=sys.stderr)
        return 1
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f.readlines()[-args.lines:]:
            sys.stdout.write(line)
        sys.stdout.flush()
        while args.follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.5)
    return 0
