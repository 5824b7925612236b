"""`tressel batch INPUTS... -o OUTDIR`: many photos to grooms with one model load, resumable."""

from __future__ import annotations

import argparse
import copy
import logging
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from tressel.commands.job_options import (
    add_item_options,
    add_run_options,
    apply_option_string,
    apply_option_values,
    generate_params,
    item_option_parser,
    write_options,
)
from tressel.errors import Cancelled, ConfigError, TresselError

PROGRESS_MODES = ("bars", "openjd", "none")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="convert many photos (folders, globs, a manifest) into grooms, resumably",
        description=textwrap.fill(
            "Convert every photo of INPUTS into OUTDIR/NAME.usdc (with NAME_crop.png and "
            "NAME_material.json beside it), loading the model once. INPUTS are photos, "
            "folders of photos (name order), quoted globs, or a CSV/JSON manifest whose rows "
            "name a photo and optionally an output name and any per-photo option (seed, "
            "steps, strands, points, ...). Items are numbered from 1 over all INPUTS; "
            "--items picks some of them, which is how a farm task takes its chunk. A photo "
            "whose groom is already in OUTDIR, made with the same options from the same "
            "bytes and model, is skipped; changed options run it again. A photo that cannot "
            "be converted fails alone with its reason; the rest go on. A summary JSON goes "
            "beside the outputs and a table is printed at the end. Exit status: 0 when "
            "nothing failed, 1 when an item failed (0 with --bad-items report), 130 when "
            "interrupted.", 78),
        epilog=textwrap.dedent("""\
            manifest (CSV with a header, or JSON: a list of objects with the same keys):
              photo,output,seed,steps,strands,no_crop
              shots/anna.jpg,anna_groom,3,,0.5x,
              shots/ben.png,,7,50,,yes

            examples:
              tressel batch shots/ -o grooms/
              tressel batch 'shots/**/*.jpg' -o grooms/ --strands 0.5x --units cm
              tressel batch shots.csv -o grooms/ --items 1-3,9 --device cuda:1
              tressel batch shots/ -o grooms/ --list      # number the items, show what is done
            """),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="photo, folder, glob (quoted) or manifest (.csv, .json)")
    p.add_argument("-o", "--output-dir", type=Path, required=True, metavar="OUTDIR",
                   help="folder for the grooms (created if needed)")
    p.add_argument("--items", metavar="RANGE",
                   help="convert only these items, numbered from 1: 3-7, 1-3,9 or 1-9:2")
    p.add_argument("--list", action="store_true",
                   help="print the numbered items and whether each is done, then stop")
    p.add_argument("--force", action="store_true",
                   help="convert every selected item again, even when finished")
    p.add_argument("--options", default="", metavar="TEXT",
                   help="more item options as one string, e.g. \"--steps 50 --strands 0.5x\" "
                        "(job templates pass options this way)")
    p.add_argument("--bad-items", choices=["fail", "report"], default="fail",
                   help="fail (default): exit 1 when any item failed; report: exit 0 and only "
                        "list them")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bars",
                   help="bars (default): a bar for the batch and one for the running photo; "
                        "openjd: openjd_progress/openjd_status lines for a farm's task "
                        "monitor; none: a line per item")
    p.add_argument("--no-progress", dest="progress", action="store_const", const="none",
                   help="same as --progress none")
    add_run_options(p)
    add_item_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.batch.items import expand_inputs, format_item_ranges, parse_item_ranges
    from tressel.bundles import default_bundle
    from tressel.cpu_threads import fixed_threads

    if args.progress == "bars" and not getattr(args, "verbose", False):
        # Per-photo log lines would tear the bars; the batch prints a line per photo anyway.
        for name in ("tressel.pipeline", "tressel.usd.writer", "tressel.cpu_threads"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if args.options.strip():
        apply_option_string(args, args.options)
    all_items = expand_inputs(args.inputs, args.output_dir)
    items, selection = all_items, None
    if args.items:
        numbers = set(parse_item_ranges(args.items, len(all_items)))
        selection = format_item_ranges(sorted(numbers))
        items = [item for item in all_items if item.number in numbers]
    fixed_threads()  # a bad $TRESSEL_THREADS fails the batch now, not each photo
    bundle = default_bundle(args.model)
    jobs = resolve_jobs(items, args)
    if args.list:
        return list_items(jobs, bundle)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use {args.output_dir} as the output folder: "
                          f"{exc.strerror or exc}; give a folder you can write to") from None
    return run_jobs(jobs, bundle, args, selection, total_items=len(all_items))


def resolve_jobs(items: list[Any], args: argparse.Namespace) -> list[Any]:
    """Each item's GenerateParams and output options: the command line, then its manifest
    row. A row that cannot be parsed fails alone; an unknown column stops the batch at once."""
    from tressel.batch.runner import ItemJob
    from tressel.export.alembic import require_alembic
    from tressel.outputs import OutputOptions
    from tressel.usd.writer import WriteOptions

    known = {a.dest for a in item_option_parser()._actions if a.option_strings}
    for item in items:
        unknown = sorted(k for k in item.options
                         if k.strip().lower().replace("-", "_") not in known)
        if unknown:
            raise ConfigError(f"{item.origin}: unknown column(s) {', '.join(unknown)}; a "
                              "manifest may have photo, output and the per-photo options "
                              f"{', '.join(sorted(known))}")
    jobs = []
    for item in items:
        job = ItemJob(item)
        if not item.problem:
            try:
                merged = copy.copy(args)
                apply_option_values(merged, item.options, item.origin)
                job.params = generate_params(merged)
                job.params.validate()
                job.options = OutputOptions(write=write_options(merged), npz=merged.npz,
                                            alembic=merged.alembic)
                WriteOptions(**job.options.write).check()
                if merged.alembic:
                    require_alembic()  # before the photo is converted, not after
            except ConfigError as exc:
                item.problem = str(exc)
        jobs.append(job)
    return jobs


def list_items(jobs: list[Any], bundle: Any) -> int:
    """`--list`: number, state and names of each item, without loading the model."""
    from tressel.batch.items import format_item_ranges
    from tressel.batch.runner import photo_request, unfinished_reason

    print(f"{'item':>5}  {'state':<6}  photo -> groom")
    for job in jobs:
        item = job.item
        if item.problem:
            state, why = "bad", item.problem
        else:
            try:
                why = unfinished_reason(job, photo_request(job, bundle))
                state = "done" if why is None else "to do"
            except TresselError as exc:  # an unreadable photo: say so, keep listing
                state, why = "bad", str(exc)
        line = f"{item.number:>5}  {state:<6}  {item.photo} -> {item.output.name}"
        print(line + (f"  ({why})" if why and state != "done" else ""))
    numbers = [job.item.number for job in jobs]
    print(f"{len(jobs)} item(s): {format_item_ranges(numbers)}")
    return 0


def run_jobs(jobs: list[Any], bundle: Any, args: argparse.Namespace, selection: str | None,
             total_items: int) -> int:
    from tressel.batch.runner import (
        BatchHooks,
        format_table,
        new_summary,
        run_batch,
        summary_path,
    )

    output_dir = args.output_dir
    summary = new_summary(output_dir, selection, total_items, bundle, args.device)
    summary_file = summary_path(output_dir, selection)
    reporter = _Reporter(args.progress, len(jobs))
    hooks = BatchHooks(item_started=reporter.started, item_finished=reporter.finished)
    # A farm cancels a task with SIGTERM before it kills it: stop at the next step, keep every
    # finished groom, and leave a summary that says where the batch stopped.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        run_batch(jobs, bundle, summary, summary_file, force=args.force, hooks=hooks,
                  cancel=stop)
    except Cancelled:
        raise Cancelled("stopped by SIGTERM: finished grooms are kept; run the same command "
                        "again to convert the rest") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        reporter.close()
        print(format_table(summary))
        print(f"summary: {summary_file}")
    failed = summary.failed
    if failed and args.bad_items == "fail":
        if args.progress == "openjd":
            names = ", ".join(Path(o.photo).name for o in failed[:5])
            print(f"openjd_fail: {len(failed)} of {len(jobs)} photo(s) failed: {names}",
                  flush=True)
        return 1
    return 0


class _Reporter:
    """Progress for the batch: tqdm bars, OpenJD progress messages, or a line per item."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode = mode
        self.total = total
        self.batch_bar: Any = None
        self.item_progress: Any = None
        self.last_report = 0.0
        if mode == "bars" and total:
            from tqdm import tqdm

            self.batch_bar = tqdm(total=total, desc="batch", unit="photo", file=sys.stderr,
                                  dynamic_ncols=True, position=0)

    def started(self, job: Any, index: int, total: int) -> Any:
        label = f"[{job.item.number}] {job.item.photo.name}"
        if self.mode == "bars":
            from tressel.progress import TqdmProgress

            # leave=False: the item's bars go when it ends; the batch bar stays.
            self.item_progress = TqdmProgress(label, leave=False)
            return self.item_progress
        if self.mode == "openjd":
            print(f"openjd_status: photo {index + 1} of {total}: {job.item.photo.name}",
                  flush=True)
            self._openjd_progress(index, 0.0, force=True)
            phases: dict[str, float] = {}

            def progress(phase: str, step: int, steps: int) -> None:
                # Diffusion is most of a photo's time; count the photo by its steps.
                if phase == "diffusion":
                    phases["fraction"] = step / max(steps, 1)
                self._openjd_progress(index, phases.get("fraction", 0.0))

            return progress
        return None

    def _openjd_progress(self, index: int, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report >= 1.0:
            self.last_report = now
            percent = 100.0 * (index + min(fraction, 1.0)) / max(self.total, 1)
            print(f"openjd_progress: {percent:.1f}", flush=True)

    def finished(self, job: Any, outcome: Any, index: int, total: int) -> None:
        if self.item_progress is not None:
            self.item_progress.close()
            self.item_progress = None
        item = job.item
        if outcome.status == "failed":
            line = f"[{index + 1}/{total}] item {item.number} {item.photo}: failed: " \
                   f"{outcome.reason}"
            stream = sys.stderr
        else:
            line = f"[{index + 1}/{total}] item {item.number} {item.photo.name}: " \
                   f"{outcome.status} ({outcome.seconds:.1f} s) -> {item.output}"
            stream = sys.stdout
        if self.batch_bar is not None:
            self.batch_bar.update(1)
            self.batch_bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)
        if self.mode == "openjd":
            self._openjd_progress(index + 1, 0.0, force=True)

    def close(self) -> None:
        if self.item_progress is not None:
            self.item_progress.close()
        if self.batch_bar is not None:
            self.batch_bar.close()
            self.batch_bar = None
