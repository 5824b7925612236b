"""Open Job Description job templates and Deadline Cloud job bundles for `tressel batch`.

The farm is the distributed engine; Tressel supplies the work unit. The template has one step
whose task parameter `Item` is a `CHUNK[INT]` over the photo numbers (TASK_CHUNKING
extension): the scheduler hands each task a range such as `5-8`, and the task runs
`tressel batch INPUTS --items 5-8`, which loads the model once for the chunk. Any OpenJD runner
executes it (`openjd run` locally, AWS Deadline Cloud on a farm).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tressel.errors import ConfigError

SPEC_VERSION = "jobtemplate-2023-09"
STEP_NAME = "ConvertPhotos"
OS_FAMILIES = ("linux", "windows", "macos")


@dataclass
class TemplateOptions:
    """What is baked into the template (host requirements cannot be job parameters without
    an extension every scheduler may not have)."""

    name: str = "Tressel: photos to grooms"
    chunk_size: int = 8  # the ChunkSize parameter's default
    gpus: int = 1  # GPUs a worker must have; 0 lets CPU-only workers take the tasks
    gpu_memory_gib: float | None = 8.0  # GPU memory a worker must have (with gpus > 0)
    os_family: str | None = None  # linux, windows or macos; None: any
    target_runtime_seconds: int | None = None  # let the scheduler resize chunks to this

    def check(self) -> None:
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size {self.chunk_size}: use 1 or more photos per task")
        if self.gpus < 0:
            raise ConfigError(f"--gpus {self.gpus}: use 0 for CPU workers or a GPU count")
        if self.gpu_memory_gib is not None and self.gpu_memory_gib <= 0:
            raise ConfigError("--gpu-memory-gib must be positive")
        if self.os_family is not None and self.os_family not in OS_FAMILIES:
            raise ConfigError(f"--os {self.os_family!r}: use one of {', '.join(OS_FAMILIES)}")
        if self.target_runtime_seconds is not None and self.target_runtime_seconds < 1:
            raise ConfigError("--target-runtime must be at least 1 second")


def _parameters(opts: TemplateOptions) -> list[dict[str, Any]]:
    group = "Tressel batch"
    return [
        # dataFlow NONE: the value may be a folder or a manifest file, and Deadline would take
        # an IN path without objectType for a folder; `tressel farm bundle` lists the photos
        # themselves in asset_references.yaml instead.
        {"name": "Inputs", "type": "PATH", "dataFlow": "NONE",
         "userInterface": {"label": "Photos (folder or manifest)",
                           "groupLabel": group},
         "description": "The photos to convert: a folder of JPEG, PNG, TIFF or EXR portraits "
                        "(converted in name order), or a CSV/JSON manifest with a 'photo' "
                        "column and optional 'output', 'seed', 'steps', 'strands'... per photo. "
                        "Manifest paths are relative to the manifest. `tressel farm bundle` "
                        "lists the photos for job attachments to upload."},
        {"name": "Items", "type": "STRING", "minLength": 1,
         "userInterface": {"control": "LINE_EDIT", "label": "Photo numbers",
                           "groupLabel": group},
         "description": "Which photos to convert, numbered from 1 in the order that "
                        "`tressel batch INPUTS --list` prints: 1-240 for all of 240 photos, or "
                        "a list such as 3,17,40-45 to redo a few. `tressel farm bundle` fills "
                        "it in."},
        {"name": "OutputDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT",
         "userInterface": {"control": "CHOOSE_DIRECTORY", "label": "Output folder",
                           "groupLabel": group},
         "description": "Where the grooms go: NAME.usdc per photo with NAME_crop.png and "
                        "NAME_material.json beside it, and one tressel_batch.items_*.json "
                        "summary per task. Photos whose finished groom is already here with "
                        "the same settings are skipped, so a resubmitted job only does what "
                        "is missing."},
        {"name": "Bundle", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "IN",
         "userInterface": {"control": "CHOOSE_DIRECTORY", "label": "Model bundle folder",
                           "groupLabel": group},
         "description": "The model bundle folder (manifest.json + weights) every task loads, "
                        "for example the one `tressel models import-difflocks` installed "
                        "(`tressel models list` shows where)."},
        {"name": "ChunkSize", "type": "INT", "default": opts.chunk_size, "minValue": 1,
         "userInterface": {"control": "SPIN_BOX", "label": "Photos per task",
                           "groupLabel": group},
         "description": "Photos per task. Each task loads the model once (tens of seconds "
                        "for DiffLocks), then converts its photos one after another: bigger "
                        "chunks waste less time loading, smaller ones spread over more "
                        "workers and lose less when a worker is lost. Aim for tasks of 10-30 "
                        "minutes."},
        {"name": "Device", "type": "STRING", "default": "auto",
         "userInterface": {"control": "LINE_EDIT", "label": "Device", "groupLabel": group},
         "description": "Where the model runs on the worker: auto (the GPU if there is one), "
                        "cuda, cuda:1 (a given GPU), or cpu (much slower)."},
        {"name": "Options", "type": "STRING", "default": "",
         "userInterface": {"control": "LINE_EDIT", "label": "Generate options",
                           "groupLabel": group},
         "description": "More options for every photo, as you would type them after "
                        "`tressel batch`: for example --steps 50 --strands 0.5x --units cm "
                        "--points 32. A manifest's columns override them per photo. Empty "
                        "for the defaults."},
        {"name": "BadPhotos", "type": "STRING", "default": "fail",
         "allowedValues": ["fail", "report"],
         "userInterface": {"control": "DROPDOWN_LIST", "label": "A photo that cannot be "
                           "converted", "groupLabel": group},
         "description": "What a photo that cannot be converted (corrupt file, no face) does "
                        "to its task. Either way the task's other photos are converted and "
                        "the reason is in the task log and the summary JSON. fail: the task "
                        "ends failed, so the job shows it (a retry redoes only that photo). "
                        "report: the task succeeds."},
    ]


def _host_requirements(opts: TemplateOptions) -> dict[str, Any] | None:
    amounts = []
    if opts.gpus > 0:
        amounts.append({"name": "amount.worker.gpu", "min": opts.gpus})
        if opts.gpu_memory_gib:
            # Schedulers count GPU memory in MiB.
            amounts.append({"name": "amount.worker.gpu.memory",
                            "min": round(opts.gpu_memory_gib * 1024)})
    attributes = []
    if opts.os_family:
        attributes.append({"name": "attr.worker.os.family", "anyOf": [opts.os_family]})
    requirements: dict[str, Any] = {}
    if amounts:
        requirements["amounts"] = amounts
    if attributes:
        requirements["attributes"] = attributes
    return requirements or None


def job_template(opts: TemplateOptions | None = None) -> dict[str, Any]:
    """The OpenJD job template as a dict (see the module docstring)."""
    opts = opts or TemplateOptions()
    opts.check()
    chunks: dict[str, Any] = {"defaultTaskCount": "{{Param.ChunkSize}}",
                              # Photos are independent: a chunk may be 3,17,40 after a redo.
                              "rangeConstraint": "NONCONTIGUOUS"}
    if opts.target_runtime_seconds:
        chunks["targetRuntimeSeconds"] = opts.target_runtime_seconds
    step: dict[str, Any] = {
        "name": STEP_NAME,
        "description": "Each task converts one chunk of photos with one model load.",
        "parameterSpace": {"taskParameterDefinitions": [{
            "name": "Item", "type": "CHUNK[INT]", "range": "{{Param.Items}}",
            "chunks": chunks,
        }]},
        "script": {"actions": {"onRun": {
            "command": "tressel",
            "args": ["batch", "{{Param.Inputs}}", "--output-dir", "{{Param.OutputDir}}",
                     "--model", "{{Param.Bundle}}", "--items", "{{Task.Param.Item}}",
                     "--device", "{{Param.Device}}", "--bad-items", "{{Param.BadPhotos}}",
                     "--progress", "openjd", "--options", "{{Param.Options}}"],
            # SIGTERM first: the batch stops between two steps and keeps what it finished.
            "cancelation": {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": 60},
        }}},
    }
    requirements = _host_requirements(opts)
    if requirements:
        step["hostRequirements"] = requirements
    return {
        "specificationVersion": SPEC_VERSION,
        "extensions": ["TASK_CHUNKING"],
        "name": opts.name,
        "description": "Convert portrait photos into USD hair grooms with Tressel. Each task "
                       "runs `tressel batch --items CHUNK` on a range of photos, loading the "
                       "model once; finished photos are skipped when a job is resubmitted.",
        "parameterDefinitions": _parameters(opts),
        "steps": [step],
    }


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_template(path: str | os.PathLike, opts: TemplateOptions | None = None) -> Path:
    path = Path(path)
    _write(path, "# Open Job Description job template written by `tressel farm template`.\n"
           + _dump(job_template(opts)))
    return path


@dataclass
class BundleValues:
    """The job parameter values a Deadline Cloud bundle carries (None: left to submit time)."""

    inputs: Path | None = None
    output_dir: Path | None = None
    model: Path | None = None  # the bundle folder
    items: str | None = None
    chunk_size: int | None = None
    device: str | None = None
    options: str | None = None
    bad_photos: str | None = None


def write_job_bundle(folder: str | os.PathLike, values: BundleValues,
                     opts: TemplateOptions | None = None,
                     input_files: list[Path] | None = None) -> list[Path]:
    """Write a Deadline Cloud job bundle (template.yaml, parameter_values.yaml,
    asset_references.yaml) that `deadline bundle submit FOLDER` submits as it is.

    `input_files` are the photos (and manifest) job attachments must upload.
    """
    folder = Path(folder)
    opts = opts or TemplateOptions()
    if values.chunk_size is not None:
        opts.chunk_size = values.chunk_size
    named = {"Inputs": values.inputs, "OutputDir": values.output_dir, "Bundle": values.model,
             "Items": values.items, "ChunkSize": values.chunk_size, "Device": values.device,
             "Options": values.options, "BadPhotos": values.bad_photos}
    parameter_values = [{"name": name, "value": str(value) if isinstance(value, Path) else value}
                        for name, value in named.items() if value is not None]
    inputs: dict[str, list[str]] = {}
    files = sorted({str(p) for p in input_files or []})
    if files:
        inputs["filenames"] = files
    directories = [str(p) for p in (values.model,) if p is not None]
    if values.inputs is not None and values.inputs.is_dir() and not files:
        directories.append(str(values.inputs))
    if directories:
        inputs["directories"] = directories
    assets: dict[str, Any] = {"inputs": inputs}
    if values.output_dir is not None:
        assets["outputs"] = {"directories": [str(values.output_dir)]}
    written = [
        write_template(folder / "template.yaml", opts),
        folder / "parameter_values.yaml",
        folder / "asset_references.yaml",
    ]
    _write(written[1], _dump({"parameterValues": parameter_values}))
    _write(written[2], _dump({"assetReferences": assets}))
    return written
