"""The course's command line: ``python -m helpers run|compare|check|strip``.

Only argument parsing and exit codes live here; the work is in :mod:`helpers.runner`
and :mod:`helpers.notebooks`, so notebooks and tests can call the same functions.
Exit codes: 0 all well, 1 a notebook failed or broke the contract (or a worker's peers
never came), 2 a refused request (unknown notebook or parameter, missing run folder, an
output folder that cannot be written), 130 stopped by Ctrl-C (143 by SIGTERM).

A refused request is one line, ``error: ...``, answered before TensorFlow loads: the
commands that train import it only once their arguments and folders are checked.
"""

from __future__ import annotations

import argparse
import os
import sys

from helpers.config import PROFILES, ProfileError, get_profile

DESCRIPTION = """\
Run and maintain the course "from raw images to a fine-tuned model" from a terminal.

  python -m helpers run --profile smoke        the whole course, a few minutes
  python -m helpers run 03 -p EPOCHS=5         one notebook with another knob
  python -m helpers compare runs/A runs/B      what changed between two runs
  python -m helpers timings runs/A runs/B      put the runs' times in README's notebook map
  python -m helpers check                      do the notebooks keep the contract?
  python -m helpers strip                      remove outputs before a commit
  python -m helpers predict M.keras img/ --csv  classify image files with a saved model
  python -m helpers pretrain-worker --backup-dir D  one worker of a multi-machine run (TF_CONFIG)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    notebook_help = (
        "a notebook as a number (03), a name or prefix (03_preprocess), or a path; "
        "default: every course notebook, in order"
    )

    run = commands.add_parser(
        "run",
        help="execute notebooks headless and write a results table",
        description=(
            "Execute notebooks headless, each in a fresh kernel, and write the executed "
            "notebooks, their figures, results.json and results.md into --out. Exits "
            "non-zero if any notebook fails."
        ),
    )
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=notebook_help)
    run.add_argument(
        "--profile",
        choices=list(PROFILES),
        help="the size of the run (default: $COURSE_PROFILE, else laptop)",
    )
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="parameters",
        help=(
            "override a knob of the notebooks' parameters cells; VALUE is a Python "
            "literal or else a string; repeat for several (e.g. -p EPOCHS=5 -p SEED=1)"
        ),
    )
    run.add_argument(
        "--out", metavar="DIR", help="output folder (default: a new runs/<time>-<profile>)"
    )
    run.add_argument(
        "--stop-on-error", action="store_true", help="stop at the first failing notebook"
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="fail a cell that runs longer than this (default: no limit)",
    )

    compare = commands.add_parser(
        "compare",
        help="a table of metric changes between two runs",
        description="Compare two run folders (or their results.json): statuses, times, metrics.",
    )
    compare.add_argument("run_a", metavar="RUN_A", help="the earlier run folder")
    compare.add_argument("run_b", metavar="RUN_B", help="the later run folder")

    timings = commands.add_parser(
        "timings",
        help="set the README's notebook map times from runs",
        description=(
            "Record the wall time and peak memory of every notebook that passed in the given "
            "runs (one per profile, say a smoke and a laptop run) in "
            "benchmarks/results/notebook_minutes.json, and rewrite the README's notebook map "
            "from it. With --check, change nothing and exit 1 if the README disagrees."
        ),
    )
    timings.add_argument("runs", nargs="*", metavar="RUN", help="run folders or results.json")
    timings.add_argument(
        "--check", action="store_true", help="only compare the README with the recorded times"
    )

    check = commands.add_parser(
        "check",
        help="check notebooks against the notebook contract",
        description="List every way the notebooks break the contract; exit 1 if any does.",
    )
    check.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=notebook_help)

    strip = commands.add_parser(
        "strip",
        help="remove outputs and execution counts, in place",
        description="Strip outputs and execution counts from notebooks before a commit.",
    )
    strip.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=notebook_help)

    predict = commands.add_parser(
        "predict",
        help="classify image files with a saved .keras model",
        description="python -m helpers predict MODEL.keras IMAGE_OR_FOLDER... [--csv]",
        add_help=False,
    )
    predict.add_argument("arguments", nargs=argparse.REMAINDER, help="see predict --help")

    _add_worker_command(commands)
    return parser


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _add_worker_command(commands) -> None:
    p = commands.add_parser(
        "pretrain-worker",
        help="one worker of a multi-machine pretraining run, configured by TF_CONFIG",
        description=(
            "One process of a multi-worker pretraining run. Start one per machine (or per "
            "process on one), each with its own TF_CONFIG; the chief (worker 0) writes the "
            "backbone and its card. A worker first takes its own port from TF_CONFIG "
            "(refused at once if it is taken) and waits up to --startup-timeout seconds for "
            "every peer to answer, saying whom it waits for; SIGTERM or Ctrl-C ends the wait. "
            "Restart every worker with the same arguments after a failure: each resumes "
            "from its folder under --backup-dir."
        ),
    )
    p.add_argument("--backup-dir", required=True, help="checkpoints, one sub-folder per worker")
    p.add_argument("--out", help="where the chief writes backbone.keras and its card")
    p.add_argument("--tfrecords", help="a helpers.pipeline.export_tfrecords folder (sharded)")
    p.add_argument("--test-tfrecords", help="with --tfrecords and --out: the test split's export")
    p.add_argument("--images", type=int, default=4000, help="generated images without --tfrecords")
    p.add_argument("--classes", type=int, default=16, help="generated classes")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, nargs="+", default=[1, 1, 1])
    p.add_argument("--per-worker-batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, help="total steps (default: epochs x steps per epoch)")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--save-every", type=int, default=10, help="steps between backups")
    p.add_argument("--precision", default="auto", help="auto (helpers.devices), float32, ...")
    p.add_argument("--no-jit", action="store_true", help="no XLA (jit_compile=False)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--startup-timeout",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for every peer in TF_CONFIG to answer (default: 300)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="seconds per collective once training runs (default: no limit)",
    )
    p.add_argument(
        "--report-dir", help="write worker-<i>.json (losses, resume point) and .npz (weights) here"
    )


class UsageError(Exception):
    """A request refused before any work: the message says what to give instead."""


# The options that name a folder a command writes into, checked before any work starts.
OUTPUT_FOLDERS = {"run": ("--out",), "pretrain-worker": ("--backup-dir", "--out", "--report-dir")}


def check_output_folder(option: str, value: str) -> None:
    """Refuse ``value`` as the folder ``option`` writes into when it cannot be: a file, a
    path under a file, a folder this user cannot write or a read-only file system.

    Checked up front because the commands create the folder only once their work starts
    (a notebook run, a worker after TensorFlow loads and its peers answer), and fail
    there with a traceback; nothing is created here.
    """
    if os.path.exists(value) and not os.path.isdir(value):
        raise UsageError(f"{option} {value} is a file: give a folder (it is created if missing)")
    existing = os.path.abspath(value)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(
            f"{option} {value} cannot be created: {existing} is a file; give another folder"
        )
    read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
    if read_only or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {value} cannot be written: {existing} is read-only for this user; "
            "give a folder you can write (under your home folder, say)"
        )


def _pretrain_worker(args: argparse.Namespace) -> int:
    """Refuse what can be refused before TensorFlow loads (the arguments, TF_CONFIG, this
    task's port), wait for the peers (:func:`helpers.distribute.start_worker`), train."""
    from helpers import distribute as dist

    if args.out and args.tfrecords and not args.test_tfrecords:
        raise UsageError(
            "--out with --tfrecords needs --test-tfrecords: the card records test accuracy"
        )
    for option, folder in {
        "--tfrecords": args.tfrecords,
        "--test-tfrecords": args.test_tfrecords,
    }.items():
        if folder and not os.path.isdir(folder):
            raise UsageError(
                f"{option} {folder} is not a folder: give the folder "
                "helpers.pipeline.export_tfrecords wrote"
            )
    try:
        strategy, cluster = dist.start_worker(
            args.startup_timeout,
            collective_timeout=args.timeout,
            say=lambda line: print(line, flush=True),
        )
        from helpers.pretrain import run_worker  # TensorFlow is loaded by now

        return run_worker(args, strategy, cluster)
    except dist.WorkerStopped as err:
        print(err, file=sys.stderr)
        return 128 + err.signum
    except dist.PeersMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except dist.DistributeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from helpers.runner import failed, parse_parameters, resolve_notebooks, run_course

    profile = get_profile(args.profile).name
    notebooks = resolve_notebooks(args.notebooks)
    try:
        out_dir, report = run_course(
            notebooks,
            args.out,
            profile=profile,
            parameters=parse_parameters(args.parameters),
            stop_on_error=args.stop_on_error,
            timeout=args.timeout,
            command=["python", "-m", "helpers", *argv],
        )
    except KeyboardInterrupt:
        print("Interrupted; the report so far is in the output folder.", file=sys.stderr)
        return 130
    print((out_dir / "results.md").read_text(encoding="utf-8"))
    bad = failed(report)
    print(f"Results in {out_dir}", file=sys.stderr)
    if bad:
        print(f"{len(bad)} notebook(s) failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _timings(args: argparse.Namespace) -> int:
    import json

    from helpers.config import project_root
    from helpers.runner import MINUTES_FILE, readme_timing_problems, update_readme_timings

    if args.check:
        record_path = project_root() / MINUTES_FILE
        if not record_path.exists():
            raise UsageError(f"no {MINUTES_FILE} yet: run python -m helpers timings RUN first")
        record = json.loads(record_path.read_text(encoding="utf-8"))
        readme = (project_root() / "README.md").read_text(encoding="utf-8")
        problems = readme_timing_problems(readme, record)
        for problem in problems:
            print(problem)
        print(f"README disagrees with {MINUTES_FILE}" if problems else "README is up to date.")
        return 1 if problems else 0
    if not args.runs:
        raise UsageError("give one or more run folders, e.g. runs/<time>-laptop")
    changed = update_readme_timings(args.runs)
    print("\n".join(changed) if changed else "README already up to date.")
    return 0


def _check(args: argparse.Namespace) -> int:
    from helpers.notebooks import check_notebook
    from helpers.runner import resolve_notebooks

    broken = 0
    for path in resolve_notebooks(args.notebooks):
        problems = check_notebook(path)
        broken += bool(problems)
        for problem in problems:
            print(f"{path.name}: {problem}")
    print(f"{broken} notebook(s) break the contract" if broken else "All notebooks keep it.")
    return 1 if broken else 0


def _strip(args: argparse.Namespace) -> int:
    from helpers.notebooks import strip_outputs
    from helpers.runner import resolve_notebooks

    for path in resolve_notebooks(args.notebooks):
        print(f"{path.name}: {'stripped' if strip_outputs(path) else 'already clean'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:  # its own parser, options included (argparse.REMAINDER drops them)
        from helpers.export import PREDICT_LOADERS  # .tflite files, through LiteRT
        from helpers.predict import main as predict  # loads TensorFlow only now

        return predict(argv[1:], loaders=PREDICT_LOADERS)
    args = _parser().parse_args(argv)
    try:
        for option in OUTPUT_FOLDERS.get(args.command, ()):
            value = getattr(args, option.removeprefix("--").replace("-", "_"))
            if value is not None:
                check_output_folder(option, value)
        if args.command == "pretrain-worker":
            return _pretrain_worker(args)
        return _course_command(args, argv)
    except (ProfileError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _course_command(args: argparse.Namespace, argv: list[str]) -> int:
    """The commands on notebooks and runs. ``helpers.runner`` is imported only for them:
    it loads nbformat, whose schema checks took 2.6 s of ``pretrain-worker --help``."""
    from helpers.runner import RunnerError, compare_runs

    try:
        if args.command == "run":
            return _run(args, argv)
        if args.command == "compare":
            print(compare_runs(args.run_a, args.run_b), end="")
            return 0
        if args.command == "check":
            return _check(args)
        if args.command == "timings":
            return _timings(args)
        return _strip(args)
    except RunnerError as err:
        raise UsageError(str(err)) from err


if __name__ == "__main__":
    sys.exit(main())
