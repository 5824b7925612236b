"""`tressel farm template|bundle`: Open Job Description jobs that run `tressel batch` in chunks."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path


def _add_template_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("template (baked in: host requirements are not job parameters)")
    g.add_argument("--name", default=None, help="job name shown in the farm's monitor")
    g.add_argument("--chunk-size", type=int, default=8,
                   help="photos per task, the ChunkSize default (default 8)")
    g.add_argument("--gpus", type=int, default=1,
                   help="GPUs a worker needs (default 1; 0 lets CPU-only workers run it)")
    g.add_argument("--gpu-memory-gib", type=float, default=8.0,
                   help="GPU memory a worker needs, GiB (default 8)")
    g.add_argument("--os", dest="os_family", choices=["linux", "windows", "macos"],
                   default=None, help="run only on workers of this OS (default: any)")
    g.add_argument("--target-runtime", type=int, default=None, metavar="SECONDS",
                   help="let the scheduler resize chunks so a task takes about this long")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "farm",
        help="Open Job Description template / Deadline Cloud bundle for `tressel batch`",
        description=textwrap.fill(
            "Write a job for a render farm. The farm schedules it; Tressel supplies the work "
            "unit. The job has one step whose tasks are chunks of photo numbers (OpenJD "
            "TASK_CHUNKING): each task runs `tressel batch INPUTS --items CHUNK`, loading the "
            "model once for its chunk and skipping photos already finished. `openjd run` "
            "executes the template locally; `deadline bundle submit` sends a bundle to AWS "
            "Deadline Cloud. Workers need `tressel` on their PATH.", 78),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="farm_command", metavar="ACTION", required=True)

    t = sub.add_parser(
        "template", help="write the OpenJD job template (YAML)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write an Open Job Description job template (jobtemplate-2023-09).",
        epilog=textwrap.dedent("""\
            job parameters: Inputs (folder or manifest), Items (photo numbers, e.g. 1-240),
            OutputDir, Bundle (model folder), ChunkSize, Device, Options, BadPhotos.

            examples:
              tressel farm template -o tressel_job.yaml
              openjd check tressel_job.yaml
              tressel batch shots/ -o grooms/ --list          # how many items: 1-N
              openjd run tressel_job.yaml --step ConvertPhotos -p Inputs=shots \\
                  -p Items=1-40 -p OutputDir=grooms -p Bundle=/path/to/bundle -p ChunkSize=8
            """),
    )
    t.add_argument("-o", "--output", type=Path, required=True, metavar="YAML",
                   help="where to write the template")
    _add_template_options(t)
    t.set_defaults(func=run_template)

    b = sub.add_parser(
        "bundle", help="write a Deadline Cloud job bundle folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Write DIR/template.yaml, DIR/parameter_values.yaml and "
            "DIR/asset_references.yaml for `deadline bundle submit DIR`. With --inputs, the "
            "photos are counted (Items = 1-N) and listed for job attachments to upload; "
            "values left out are asked for at submission (`deadline bundle gui-submit DIR`).",
            78),
        epilog=textwrap.dedent("""\
            example:
              tressel farm bundle job/ --inputs shots/ --output-dir grooms/ --model difflocks
              deadline bundle submit job/
            """),
    )
    b.add_argument("folder", type=Path, metavar="DIR", help="the bundle folder to write")
    b.add_argument("--inputs", type=Path, default=None,
                   help="folder of photos or manifest (.csv, .json)")
    b.add_argument("--output-dir", type=Path, default=None, help="where the grooms go")
    b.add_argument("--model", default=None,
                   help="bundle name or folder (default: the one `tressel generate` uses)")
    b.add_argument("--device", default=None, help="Device parameter (default auto)")
    b.add_argument("--options", default=None, metavar="TEXT",
                   help="Options parameter, e.g. \"--steps 50 --units cm\"")
    b.add_argument("--bad-items", choices=["fail", "report"], default=None,
                   help="BadPhotos parameter (default fail)")
    _add_template_options(b)
    b.set_defaults(func=run_bundle)


def _template_options(args: argparse.Namespace):
    from tressel.batch.farm import TemplateOptions

    opts = TemplateOptions(chunk_size=args.chunk_size, gpus=args.gpus,
                           gpu_memory_gib=args.gpu_memory_gib, os_family=args.os_family,
                           target_runtime_seconds=args.target_runtime)
    if args.name:
        opts.name = args.name
    opts.check()
    return opts


def run_template(args: argparse.Namespace) -> int:
    from tressel.batch.farm import STEP_NAME, write_template

    path = write_template(args.output, _template_options(args))
    print(f"wrote {path} (step {STEP_NAME}); check it with `openjd check {path}`")
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    from tressel.batch.farm import BundleValues, write_job_bundle
    from tressel.batch.items import MANIFEST_SUFFIXES, expand_inputs, format_item_ranges
    from tressel.bundles import default_bundle
    from tressel.commands.job_options import apply_option_string
    from tressel.errors import ConfigError

    if args.options:
        # Catch a typo now, not on the farm: parse it as `tressel batch` will.
        apply_option_string(argparse.Namespace(), args.options)
    model = default_bundle(args.model)
    values = BundleValues(model=model.path.resolve(), chunk_size=args.chunk_size,
                          device=args.device, options=args.options, bad_photos=args.bad_items)
    input_files: list[Path] = []
    count = 0
    if args.output_dir is not None:
        values.output_dir = args.output_dir.resolve()
    if args.inputs is not None:
        if not args.inputs.exists():
            raise ConfigError(f"--inputs {args.inputs} does not exist: give a folder of photos "
                              "or a manifest")
        values.inputs = args.inputs.resolve()
        items = expand_inputs([values.inputs], values.output_dir or values.inputs / "_none")
        count = len(items)
        values.items = format_item_ranges([item.number for item in items])
        input_files = sorted({item.photo.resolve() for item in items if item.photo.is_file()})
        if values.inputs.suffix.lower() in MANIFEST_SUFFIXES:
            input_files.append(values.inputs)
        missing = [item for item in items if not item.photo.is_file()]
        if missing:
            print(f"warning: {len(missing)} photo(s) of {args.inputs} do not exist (first: "
                  f"{missing[0].photo}); their items will fail")
    written = write_job_bundle(args.folder, values, _template_options(args), input_files)
    print(f"wrote {', '.join(str(p) for p in written)}")
    if values.items:
        print(f"{count} photo(s) (Items={values.items}); submit with "
              f"`deadline bundle submit {args.folder}`")
    else:
        print(f"submit with `deadline bundle gui-submit {args.folder}` to fill in the rest")
    return 0
