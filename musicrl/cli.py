"""Command line: ``python -m musicrl <command> [options]``.

Each command has a ``_add_<name>_parser(subparsers)`` that declares its
options and sets ``handler``, and a ``_run_<name>(args, cfg) -> int`` that
does the work; adding a command means writing those two functions and
listing the first in ``_COMMANDS``. A command that reads settings takes
``--config FILE.json`` and repeatable ``--set key=value`` (applied after the
file) by passing the shared ``common`` parser as a parent. A
:class:`MusicRLError` anywhere ends the command with one line ``error: ...``
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import Config, config_from_overrides, read_config_file
from .errors import MusicRLError

__all__ = ["build_parser", "config_from_args", "main"]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings")
    group.add_argument(
        "--config",
        metavar="FILE.json",
        help="JSON file of config fields (e.g. a run's saved config.json); fields it leaves out take today's defaults",
    )
    group.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one config field, e.g. --set n_steps=32 (repeatable; applied after --config)",
    )
    return common


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of a parsed command line: ``--config`` file, then each ``--set``.

    Raises
    ------
    MusicRLError
        For an unreadable config file or a bad field.
    """
    overrides = read_config_file(args.config) if getattr(args, "config", None) else {}
    return config_from_overrides(overrides, sets=getattr(args, "sets", None) or [])


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def _add_data_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "data",
        parents=[common],
        help="build the default Bach chorale set, or check a folder of MIDI files",
        description=(
            "Without --from: write the Bach chorales of the music21 corpus as MIDI files to "
            "the config's data_dir (once; an existing complete set is reused) and print counts. "
            "With --from DIR: load every .mid/.midi file under DIR as training would, and print "
            "the pieces, windows and every skipped file with its reason."
        ),
    )
    p.add_argument("--from", dest="source", metavar="DIR", help="a folder of MIDI files to load")
    p.add_argument("--rebuild", action="store_true", help="rebuild the chorale set even if complete")
    p.add_argument("--workers", type=int, default=None, help="processes parsing chorales (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_data)


def _print_real_data(real_data) -> None:
    print(real_data.summary())
    for _, reason in real_data.skipped:
        print(f"  skipped: {reason}")


def _run_data(args: argparse.Namespace, cfg: Config) -> int:
    from .music import data

    progress = not args.no_progress
    if args.source is not None:
        real_data = data.load_folder(args.source, cfg, progress=progress)
        _print_real_data(real_data)
        return 0
    out_dir = data.resolve_data_dir(cfg)
    if not args.rebuild and data.chorales_manifest(out_dir) is not None:
        print(f"chorale set in {out_dir} is complete; reusing it (--rebuild to redo)")
    else:
        manifest = data.build_chorales(
            out_dir, cfg=cfg, workers=args.workers, progress=progress, force=args.rebuild
        )
        print(
            f"wrote {manifest['pieces']} chorales to {out_dir} in {manifest['build_seconds']:g} s "
            f"({len(manifest['skipped'])} skipped)"
        )
    real_data = data.load_folder(out_dir, cfg)
    _print_real_data(real_data)
    return 0


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------


def _add_train_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "train",
        parents=[common],
        help="train an agent against the discriminator (writes a run folder)",
        description=(
            "Pretrain the policy on real music, then train it by policy gradient (REINFORCE, then PPO's "
            "clipped passes over each batch) against a discriminator that learns at the same time. "
            "Everything goes to a run folder <out>/<name>/: config.json, run.json, metrics.jsonl, "
            "TensorBoard events, checkpoints and samples (.mid/.wav). "
            "Ctrl-C writes a checkpoint and stops; --resume continues from it. "
            "Exit codes: 0 finished, 1 stopped on a NaN/inf, 2 error, 130 interrupted."
        ),
    )
    p.add_argument("--data", metavar="DIR",
                   help="a folder of MIDI files to train on (default: the Bach chorale set, built if missing)")
    p.add_argument("--iterations", type=int, metavar="N", help="adversarial iterations (the run ends on N)")
    p.add_argument("--minutes", type=float, metavar="M",
                   help="time budget in minutes; without --iterations the run is limited by time only")
    p.add_argument("--out", metavar="DIR",
                   help="runs root under which the run folder is created (default: runs); with --resume, "
                        "a run folder or a runs root whose most recent run is continued")
    p.add_argument("--name", metavar="NAME",
                   help="run folder name (default: <YYYYmmdd-HHMMSS>-seed<S>); with --resume, the run to continue")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the run (same as --set seed=S)")
    p.add_argument("--resume", action="store_true",
                   help="continue a run from its latest checkpoint (iteration counter, weights, optimizer "
                        "states, replay buffer, random state); only run-length settings may change")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_train)


def _given_fields(args: argparse.Namespace) -> dict:
    """Config fields named on the command line (by --config, --set or an option), with their values."""
    names = set()
    if getattr(args, "config", None):
        names |= set(read_config_file(args.config))
    names |= {item.split("=", 1)[0].strip() for item in args.sets or [] if "=" in item}
    for option in ("iterations", "minutes", "seed"):
        if getattr(args, option) is not None:
            names.add(option)
    return {name: None for name in names}


def _run_train(args: argparse.Namespace, cfg: Config) -> int:
    from .learning import train as training

    options = {k: getattr(args, k) for k in ("iterations", "minutes", "seed") if getattr(args, k) is not None}
    if args.minutes is not None and args.iterations is None:
        options["iterations"] = 0  # limited by time only
    cfg = config_from_overrides(options, base=cfg)
    if args.data is not None:
        data_dir = Path(args.data).expanduser().resolve()
        cfg = config_from_overrides({"data_dir": str(data_dir)}, base=cfg)
    if args.resume:
        if args.data is not None:
            raise MusicRLError("--data cannot change when resuming: a run keeps its data")
        overrides = {name: getattr(cfg, name) for name in _given_fields(args)}
        if "iterations" in options:
            overrides["iterations"] = options["iterations"]
        result = training.train(resume=True, out=args.out, name=args.name, overrides=overrides,
                                progress=not args.no_progress)
    else:
        result = training.train(cfg, data=cfg.data_dir if args.data is not None else None, out=args.out,
                                name=args.name, progress=not args.no_progress)
    return {"finished": 0, "nonfinite": 1, "interrupted": 130}[result.status]


# --------------------------------------------------------------------------
# sample
# --------------------------------------------------------------------------


def _add_sample_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write pieces of a trained agent as MIDI and WAV",
        description=(
            "Load a run's policy from a checkpoint and write N pieces as gen_000.mid, gen_000.wav, ... "
            "(WAV rendered with the General MIDI soundfont). The run's own settings are used."
        ),
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a run folder (runs/<name>)")
    p.add_argument("--n", type=int, default=16, help="number of pieces (default 16)")
    p.add_argument("--out", metavar="DIR",
                   help="folder to write to (default: <run>/samples/sampled-<checkpoint>-seed<S>)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--checkpoint", default="latest",
                   help="'latest' (default), 'pretrained', or a checkpoint folder name such as iter-0000500")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the run's sample_temperature)")
    p.add_argument("--no-wav", action="store_true", help="write MIDI files only")
    p.set_defaults(handler=_run_sample)


def _run_sample(args: argparse.Namespace, cfg: Config) -> int:
    from .learning.load import sample_from_run

    out = args.out
    if out is None:
        out = Path(args.run) / "samples" / f"sampled-{args.checkpoint}-seed{args.seed}"
    paths = sample_from_run(args.run, args.n, out, seed=args.seed, checkpoint=args.checkpoint,
                            temperature=args.temperature, wav=not args.no_wav)
    kinds = ".mid" if args.no_wav else ".mid and .wav"
    print(f"wrote {len(paths)} pieces ({kinds}) to {out}")
    return 0


# --------------------------------------------------------------------------
# evaluate and compare
# --------------------------------------------------------------------------


def _add_evaluate_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="measure a trained agent against real held-out music, random progressions and its pretrained policy",
        description=(
            "Compare four sets against the same real held-out clips of the run's data: real music (other "
            "held-out pieces), random progressions, the policy after pretraining alone and the agent (latest "
            "checkpoint). Measures: every metric of metrics.summarize, the copy rate against the training "
            "pieces, MGEval KL/overlap per feature, a feature-classifier two-sample test and two freshly trained "
            "discriminators' held-out accuracies (0.5 = indistinguishable): one cross-validated on the held-out "
            "clips, one trained on windows of the training pieces against another sample of the set. Writes "
            "report.md, metrics.json and PNG plots into each run folder and prints the table; with several "
            "--run, also a side-by-side comparison (compare.md in --out)."
        ),
    )
    p.add_argument("--run", required=True, action="append", metavar="DIR",
                   help="a run folder (runs/<name>); repeat to evaluate and compare several runs")
    p.add_argument("--n", type=int, default=1024,
                   help="pieces per generated set (default 1024; the real sets hold every held-out window)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws and tests (default 0)")
    p.add_argument("--resamples", type=int, default=1000, metavar="B",
                   help="bootstrap resamples of each set measure's 95%% interval (default 1000)")
    p.add_argument("--d-epochs", type=int, default=20, metavar="E",
                   help="epochs of each fresh discriminator per fold (default 20)")
    p.add_argument("--d-splits", type=int, default=3, metavar="K",
                   help="folds of the fresh-discriminator test (default 3)")
    p.add_argument("--d-train-n", type=int, default=None, metavar="M",
                   help="clips of each kind the discriminator trained on the training pieces learns from "
                        "(default 4 x --n, at most 1024)")
    p.add_argument("--data", metavar="DIR",
                   help="the real data's folder instead of the one the run recorded (a run moved from another "
                        "checkout or machine; a note says so when its pieces differ from the run's)")
    p.add_argument("--no-d", action="store_true", help="skip the fresh-discriminator test (fast)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--out", metavar="DIR", help="folder for compare.md (the side-by-side table)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluation import evaluate, report

    evaluations = []
    for run in args.run:
        evaluation = evaluate.evaluate_run(
            run, n=args.n, seed=args.seed, d_test=not args.no_d, d_epochs=args.d_epochs, d_splits=args.d_splits,
            n_d_train=args.d_train_n, data_dir=args.data, n_resamples=args.resamples, plots=not args.no_plots,
            progress=not args.no_progress,
        )
        evaluations.append(evaluation)
        print(f"## {evaluation['name']} (checkpoint {evaluation['checkpoint']})\n")
        print(report.format_table(evaluation))
        for note in evaluation["notes"]:
            print(f"note: {note}")
        print(f"\nwrote {report.REPORT_FILE}, {report.EVALUATION_FILE} and plots to {run}\n")
    if len(evaluations) > 1:
        print("## comparison\n")
        print(report.comparison_table(evaluations))
    if args.out is not None:
        path = report.write_comparison(args.out, evaluations)
        print(f"\nwrote {path}")
    return 0


def _add_compare_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "compare",
        help="print evaluated runs side by side (reads their metrics.json)",
        description=(
            "Read the metrics.json that 'evaluate' wrote into each run folder and print one table: a row per "
            "measure, a column per set and run. Nothing is recomputed."
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their metrics.json files)")
    p.add_argument("--out", metavar="DIR", help="also write the table to DIR/compare.md")
    p.set_defaults(handler=_run_compare)


def _run_compare(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluation import report

    evaluations = [report.load_evaluation(run) for run in args.runs]
    print(report.comparison_table(evaluations))
    if args.out is not None:
        path = report.write_comparison(args.out, evaluations)
        print(f"\nwrote {path}")
    return 0


def _add_sweep_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train and evaluate experiment configs over seeds; write a results table",
        description=(
            "Each experiment is a JSON file of config fields (changes from the defaults; see experiments/). "
            "Every experiment is trained with every seed for the same time, in a process of its own, into "
            "<out>/<experiment>/seed<S>/, then evaluated; runs already evaluated are kept, so an interrupted "
            "sweep continues. Writes <out>/results.csv (per run and set), summary.csv (mean and std over "
            "seeds) and results.md (headline measures, the change over pretraining alone, each experiment "
            "against its --control, the targets)."
        ),
    )
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT.json", help="experiment files")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S", help="seeds (default 0 1 2)")
    p.add_argument("--minutes", type=float, default=10.0, metavar="M",
                   help="training time per run, pretraining included (default 10)")
    p.add_argument("--out", default="runs/sweep", metavar="DIR", help="sweep folder (default runs/sweep)")
    p.add_argument("--data", metavar="DIR", help="a folder of MIDI files to train on (default: the chorales)")
    p.add_argument("--n", type=int, default=1024, help="pieces per evaluation set (default 1024)")
    p.add_argument("--d-epochs", type=int, default=20, metavar="E",
                   help="epochs of the fresh discriminator of the evaluation (default 20)")
    p.add_argument("--control", action="append", default=[], metavar="EXPERIMENT=CONTROL",
                   help="also compare an experiment's agent with a control experiment's, paired by seed "
                        "(repeatable; names are file stems, e.g. default=no_critic)")
    p.add_argument("--table-only", action="store_true", help="only rewrite the tables from evaluated runs")
    p.set_defaults(handler=_run_sweep)


def _run_sweep(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluation import sweep

    controls = []
    for pair in args.control:
        exp, sep, control = pair.partition("=")
        if not sep or not exp or not control:
            raise MusicRLError(f"--control takes EXPERIMENT=CONTROL (file stems), got {pair!r}")
        controls.append((exp, control))
    if args.table_only:
        rows = sweep.collect(args.out)
        sweep.write_results(args.out, rows, controls=controls)
    else:
        rows = sweep.run_sweep(args.experiments, seeds=args.seeds, out=args.out, minutes=args.minutes,
                               data=args.data, n=args.n, d_epochs=args.d_epochs, controls=controls)
    print(sweep.results_markdown(rows, controls=controls))
    print(f"wrote results.csv, summary.csv and results.md to {args.out}")
    return 0


# --------------------------------------------------------------------------
# listen
# --------------------------------------------------------------------------


def _add_listen_parser(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "listen",
        help="a blind listening test of a run's music in the browser, or its results",
        description=(
            "Serve a local web page of blind trials, each two clips of the same length rendered with the "
            "General MIDI soundfont. --mode identify (default): a real held-out chorale window and one of the "
            "agent's, in random order: which one is real? --mode prefer: the agent against --against "
            "(its pretrained-only policy, or another run's agent): which do you prefer? Each answer is appended "
            "to <run>/listening/<session>.jsonl as it is given; reloading the page continues its session. "
            "With --results: print the tallies per listener and pooled, with 95% Wilson intervals."
        ),
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a run folder (runs/<name>)")
    p.add_argument("--results", action="store_true", help="print the tallies of the run's sessions and exit")
    p.add_argument("--mode", choices=("identify", "prefer"), default="identify",
                   help="identify: which clip is real (default); prefer: which generated clip is preferred")
    p.add_argument("--against", default="pretrained", metavar="pretrained|RUN",
                   help="with --mode prefer: 'pretrained' (default) or another run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any free port)")
    p.add_argument("--trials", type=int, default=20, help="trials per session (default 20)")
    p.add_argument("--n", type=int, default=64, help="pieces drawn per set (default 64)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sets (default 0); a session continues only on the sets it began with")
    p.set_defaults(handler=_run_listen)


def _run_listen(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluation import listen

    if not Path(args.run).is_dir():
        raise MusicRLError(f"run folder {args.run!r} does not exist")
    if args.mode == "identify" and args.against != "pretrained":
        raise MusicRLError("--against is for --mode prefer: the identify mode compares real music with the agent")
    if args.trials < 1:
        raise MusicRLError(f"--trials must be at least 1, got {args.trials}")
    if args.results:
        comparisons = listen.tally(listen.read_sessions(args.run))
        if not any(c["pooled"]["trials"] for c in comparisons):
            print(f"no listening answers in {Path(args.run) / listen.LISTENING_DIR}")
            return 0
        print(listen.results_markdown(comparisons), end="")
        return 0
    from .evaluation.listen_server import ListeningServer, serve

    study = listen.study_of_run(args.run, mode=args.mode, against=args.against, n=args.n, seed=args.seed)
    server = ListeningServer(study, Path(args.run) / listen.LISTENING_DIR, host=args.host, port=args.port,
                             n_trials=args.trials)
    return serve(server)


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------

_COMMANDS: list[Callable[..., None]] = [
    _add_data_parser, _add_train_parser, _add_sample_parser, _add_evaluate_parser, _add_compare_parser,
    _add_sweep_parser, _add_listen_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="python -m musicrl",
        description="musicrl: an RL agent writes chord progressions, rewarded by a discriminator that listens.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"musicrl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    subparsers.required = True
    common = _common_options()
    for add in _COMMANDS:
        add(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    code : int
        0 on success, 2 for a usage error or a :class:`MusicRLError`
        (printed as one line ``error: ...`` on stderr).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        cfg = config_from_args(args)
        return int(args.handler(args, cfg))
    except MusicRLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
