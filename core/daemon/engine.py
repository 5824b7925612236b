"""The job engine: turns one job into a USD layer in the cache through the real pipeline.

`PipelineEngine.run_job` is the whole of it: load the bundle (kept resident), call
`tressel.pipeline.generate` with the job's progress and cancel flag, write the groom with
`tressel.usd.write_groom` to a temp file beside the cache entry, and rename it into place.

Test hook: `DaemonConfig.engine` (or `$TRESSEL_DAEMON_ENGINE`) may name `module:factory`, a
callable returning another object with the `Engine` methods. It exists only so the tests of the
daemon's own machinery (queue, SSE, auth, persistence) can run jobs of controlled length; every
real use, and the tests of the done-criteria, run `PipelineEngine`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tressel.daemon.cache import publish
from tressel.errors import BundleError, ConfigError, FaceNotFoundError, ImageError
from tressel.progress import CancelFlag, ProgressFn, check_cancel

log = logging.getLogger(__name__)

# Generation parameters a request may not set: each worker runs on its own device.
DAEMON_CHOOSES = {"device"}


@dataclass
class EngineJob:
    """Everything the engine needs to produce one layer."""

    job_id: str
    image_path: Path
    image_name: str
    bundle: str  # what `load_bundle` accepts: a bundle folder
    bundle_hash: str
    params: dict[str, Any]  # canonical generation parameters (`canonical_params`)
    write_options: dict[str, Any]
    seed: int
    format: str  # "usdc", "usda" or "abc"
    device: str
    output_path: Path  # the cache entry; must appear only complete
    temp_path: Path  # where to write first (the cache's temp folder, same extension)
    # Called once the engine has chosen how to run the job (e.g. {"cpu_threads": {...}}): the
    # manager publishes it as the job's `setup` event and in the health report.
    announce: Callable[[dict[str, Any]], None] = lambda info: None


class Engine(Protocol):
    """What the daemon needs from an engine (PipelineEngine is the one real implementation)."""

    def devices(self, requested: list[str]) -> list[str]: ...
    def device_info(self, device: str) -> dict[str, Any]: ...
    def resolve_bundle(self, name: str | None) -> tuple[str, str]: ...
    def canonical_params(self, params: dict[str, Any], seed: int) -> dict[str, Any]: ...
    def canonical_write_options(self, options: dict[str, Any]) -> dict[str, Any]: ...
    def run_job(self, job: EngineJob, progress: ProgressFn, cancel: CancelFlag) -> None: ...
    def models(self) -> list[dict[str, Any]]: ...
    def load_model(self, name: str | None) -> dict[str, Any]: ...
    def unload_model(self, name: str | None) -> dict[str, Any]: ...


def load_engine(spec: str | None, default_bundle: str | None,
                threads: str | None = None) -> Engine:
    """The pipeline engine, or the test engine named by `spec` ("module:factory").

    `threads`: CPU threads per job ("auto" or a count; None: `$TRESSEL_THREADS`, then
    `$OMP_NUM_THREADS`, then auto), see `tressel.cpu_threads`.
    """
    if not spec:
        return PipelineEngine(default_bundle, threads)
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "make_engine")
    log.warning("using the engine %s instead of the pipeline (test hook)", spec)
    return factory(default_bundle)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class PipelineEngine:
    """Runs jobs through `tressel.pipeline.generate` and `tressel.usd.write_groom`."""

    def __init__(self, default_bundle: str | None = None, threads: str | None = None) -> None:
        from tressel.cpu_threads import fixed_threads

        fixed_threads(threads)  # a bad --threads or $TRESSEL_THREADS fails at start, not per job
        self.default_bundle = default_bundle
        self.threads = threads
        self._bundles: dict[str, Any] = {}  # bundle folder -> opened Bundle (manifest only)
        self._devices: list[str] = ["cpu"]
        self._lock = threading.Lock()
        # CPU threads held by running jobs of this process (several `--device cpu` workers):
        # their work is this process's own, which the load measurement leaves out.
        self._cpu_threads_held: dict[str, int] = {}
        self._threads_lock = threading.Lock()  # one CPU job decides at a time

    # -- devices -----------------------------------------------------------------------------

    def devices(self, requested: list[str]) -> list[str]:
        """One worker per CUDA GPU by default, else one CPU worker."""
        import torch
        from tressel.pipeline import resolve_device

        if requested and requested != ["auto"]:
            for device in requested:
                resolve_device(device)  # raises ConfigError for an unavailable device
            self._devices = list(requested)
        elif torch.cuda.is_available():
            self._devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            self._devices = ["cpu"]
        return list(self._devices)

    def device_info(self, device: str) -> dict[str, Any]:
        import torch

        info: dict[str, Any] = {"name": device, "kind": device.split(":")[0]}
        if device == "cpu":
            info.update(system_memory())
        elif device.startswith("cuda") and torch.cuda.is_available():
            index = torch.device(device).index or 0
            free, total = torch.cuda.mem_get_info(index)
            info.update(
                model=torch.cuda.get_device_name(index), memory_total=int(total),
                memory_free=int(free), memory_allocated=int(torch.cuda.memory_allocated(index)),
            )
        return info

    # -- requests ----------------------------------------------------------------------------

    def resolve_bundle(self, name: str | None) -> tuple[str, str]:
        """(folder, content hash) of the bundle a job names, or of the default bundle.

        The default is the daemon's `--bundle`, else what `tressel generate` would use
        (`$TRESSEL_MODEL`, `difflocks`, the only installed bundle, the shipped demo model).
        """
        from tressel.bundles import default_bundle

        choice = name or self.default_bundle
        try:
            bundle = default_bundle(choice)
        except BundleError:
            bundle = self._known_by_name(choice) if choice else None
            if bundle is None:
                raise
        return str(Path(bundle.path).resolve()), bundle.content_hash

    def _known_by_name(self, name: str) -> Any:
        """A bundle this daemon opened from a folder (its default, or a job's), by its name."""
        from tressel.bundles import load_bundle

        with self._lock:
            known = list(self._bundles.values())
        if self.default_bundle and self.default_bundle != name:
            known.append(load_bundle(self.default_bundle))
        return next((b for b in known if b.name == name), None)

    def canonical_params(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """`GenerateParams` with the request's values and every default filled in, as JSON."""
        from tressel.pipeline import GenerateParams

        names = {f.name for f in dataclasses.fields(GenerateParams)} - DAEMON_CHOOSES
        unknown = sorted(set(params) - names)
        if unknown:
            raise ConfigError(
                f"unknown generation parameter(s) {', '.join(unknown)}: valid ones are "
                f"{', '.join(sorted(names))} (the daemon picks the device itself)"
            )
        try:
            generate_params = GenerateParams(**{**params, "seed": seed})
            generate_params.validate()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid generation parameters: {exc}") from None
        values = dataclasses.asdict(generate_params)
        for name in DAEMON_CHOOSES:
            values.pop(name, None)
        return _json_safe(values)

    def canonical_write_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """`WriteOptions` with every default filled in, checked as the writer will check it."""
        from tressel.usd import WriteOptions

        names = {f.name for f in dataclasses.fields(WriteOptions)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(
                f"unknown USD writer option(s) {', '.join(unknown)}: valid ones are "
                f"{', '.join(sorted(names))}"
            )
        try:
            write_options = WriteOptions(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid USD writer options: {exc}") from None
        write_options.check()
        return _json_safe(dataclasses.asdict(write_options))

    # -- models ------------------------------------------------------------------------------

    def _bundle(self, folder: str) -> Any:  # opened once, then listed by `models`
        from tressel.bundles import load_bundle

        with self._lock:
            bundle = self._bundles.get(folder)
            if bundle is None:
                bundle = self._bundles[folder] = load_bundle(folder)
            return bundle

    def _resident_hashes(self) -> set[str]:
        from tressel.pipeline import cached_models

        return {key[0] for key in cached_models()}

    def models(self) -> list[dict[str, Any]]:
        from tressel.bundles import list_bundles

        resident = self._resident_hashes()
        entries: dict[str, dict[str, Any]] = {}
        for bundle in list_bundles():
            entries[str(Path(bundle.path).resolve())] = _model_entry(bundle, resident)
        with self._lock:
            opened = dict(self._bundles)
        for folder, bundle in opened.items():
            entries.setdefault(folder, _model_entry(bundle, resident))
        try:
            default_folder, _ = self.resolve_bundle(None)
        except (BundleError, ConfigError):
            default_folder = None
        if default_folder is not None:
            if default_folder not in entries:
                entries[default_folder] = _model_entry(self._bundle(default_folder), resident)
            entries[default_folder]["default"] = True
        return list(entries.values())

    def load_model(self, name: str | None) -> dict[str, Any]:
        """Bring the bundle's networks into memory on every worker device now, and build its
        head distance field (collision is on by default)."""
        from tressel.pipeline import load_models, resolve_device, resolve_dtype, warm_collision

        folder, _ = self.resolve_bundle(name)
        bundle = self._bundle(folder)
        for device_name in self._devices:
            device = resolve_device(device_name)
            load_models(bundle, device, resolve_dtype("auto", device))
        warm_collision(bundle)
        return _model_entry(bundle, self._resident_hashes())

    def unload_model(self, name: str | None) -> dict[str, Any]:
        """Free the memory (CPU and GPU) that the bundle's networks hold."""
        from tressel.pipeline import clear_model_cache

        folder, _ = self.resolve_bundle(name)
        bundle = self._bundle(folder)
        # The pipeline keeps one bundle resident (TRESSEL_MODEL_CACHE), so clearing is exact.
        if bundle.content_hash in self._resident_hashes():
            clear_model_cache()
        _free_device_memory()
        return _model_entry(bundle, self._resident_hashes())

    # -- the job -----------------------------------------------------------------------------

    def run_job(self, job: EngineJob, progress: ProgressFn, cancel: CancelFlag) -> None:
        from tressel.bundles import load_bundle
        from tressel.pipeline import GenerateParams, generate
        from tressel.usd import write_groom

        # Re-read the manifest (cheap): the networks stay resident in the pipeline's cache,
        # keyed by content hash, and a bundle replaced on disk must not pass for the old one.
        bundle = load_bundle(job.bundle)
        with self._lock:
            self._bundles[job.bundle] = bundle  # so `models` lists it and names resolve
        if bundle.content_hash != job.bundle_hash:
            raise BundleError(
                f"bundle {bundle.name!r} changed since this job was submitted (hash "
                f"{bundle.content_hash[:12]}, job wants {job.bundle_hash[:12]}): submit it again"
            )
        params = {**job.params, "device": job.device}
        try:
            with self._cpu_threads(job):
                result = generate(job.image_path, bundle, GenerateParams(**params),
                                  progress=progress, cancel=cancel)
        except (ImageError, FaceNotFoundError) as exc:
            # Name the user's file, not the daemon's copy of it.
            raise type(exc)(str(exc).replace(str(job.image_path), job.image_name)) from None
        check_cancel(cancel)
        progress("write", 0, 1)
        written = time.perf_counter()
        if job.format == "abc":
            from tressel.export.alembic import alembic_options, write_alembic

            write_alembic(result, job.temp_path, **alembic_options(job.write_options))
        else:
            write_groom(result, job.temp_path, **job.write_options)
        publish(job.temp_path, job.output_path)
        # Beside the pipeline's own "groom: ... (phase seconds)" line: bench_daemon_first_job
        # reads both.
        log.info("job %s: %s layer written in %.2fs", job.job_id, job.format,
                 time.perf_counter() - written)
        progress("write", 1, 1)
        from tressel.usd.curves import load_compiled_kernel_in_background

        # Later jobs resample in the compiled loop; loading it (about half a second, once)
        # waits until the first layer is out, so neither the start nor that job pays for it.
        load_compiled_kernel_in_background()

    @contextmanager
    def _cpu_threads(self, job: EngineJob) -> Iterator[None]:
        """Run a CPU job with the threads `tressel.cpu_threads` chooses at its start (the cores
        free then, unless the user fixed the count); GPU jobs are left alone."""
        from tressel.cpu_threads import choose_threads, torch_threads
        from tressel.pipeline import resolve_device

        if resolve_device(job.device).type != "cpu":
            yield
            return
        with self._threads_lock:
            with self._lock:
                reserved = sum(self._cpu_threads_held.values())
            choice = choose_threads(self.threads, reserved=reserved)
            with self._lock:
                self._cpu_threads_held[job.job_id] = choice.threads
        try:
            log.info("job %s: %s", job.job_id, choice.describe())
            job.announce({"cpu_threads": choice.as_dict()})
            # Set on this worker thread, which runs the whole job: the count is per thread.
            with torch_threads(choice.threads):
                yield
        finally:
            with self._lock:
                self._cpu_threads_held.pop(job.job_id, None)


def _model_entry(bundle: Any, resident: set[str]) -> dict[str, Any]:
    return {
        "name": bundle.name,
        "path": str(bundle.path),
        "hash": bundle.content_hash,
        "kind": bundle.kind,
        "bytes": bundle.total_bytes(),
        "loaded": bundle.content_hash in resident,
        "default": False,
    }


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def system_memory() -> dict[str, int]:
    """Total and available RAM in bytes, where the OS tells (Linux /proc/meminfo)."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_total"] = int(line.split()[1]) * 1024
                elif line.startswith("MemAvailable:"):
                    info["memory_free"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return info


def process_memory() -> dict[str, int]:
    """Resident and peak memory of this process, in bytes (Linux /proc, else getrusage)."""
    info: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key = "rss_bytes" if line.startswith("VmRSS") else "peak_rss_bytes"
                    info[key] = int(line.split()[1]) * 1024
    except OSError:
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            info["peak_rss_bytes"] = peak if os.uname().sysname == "Darwin" else peak * 1024
        except (ImportError, AttributeError):
            pass
    return info
