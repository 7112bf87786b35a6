"""Evaluating a run: its sets through every comparison against the same real clips, and its report.

**Evaluating a run** (:func:`evaluate_run`, ``python -m musicrl evaluate``)
puts four sets (:func:`musicrl.evaluation.sets.load_eval_sets`: real
held-out music, random progressions, the policy after pretraining alone, and
the trained agent) through :func:`musicrl.evaluation.compare.compare_to_real`
against the same real clips. The table (one row per set), the report and the
plots go into the run folder (:mod:`musicrl.evaluation.report` writes and
reads the files and sets several runs' tables side by side).

The comparisons themselves are pure functions of two sets:
:mod:`musicrl.evaluation.mgeval` (Yang & Lerch 2018) and
:mod:`musicrl.evaluation.two_sample` (classifier two-sample tests, Lopez-Paz
& Oquab 2017).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import plotting
from ..config import config_from_overrides
from ..errors import MusicRLError
from ..learning.discriminator import d_input_kind
from ..music import metrics
from .checks import check_int
from .compare import BOOTSTRAP_RESAMPLES, D_BATCH_SIZE, INTERVAL_LEVEL, SEQ_SPLITS, compare_to_real
from .mgeval import PIECE_FEATURES, piece_features
from .report import EVAL_SETS, SET_LABELS, check_evaluation, write_report_files
from .sets import EVAL_N, EvalSets, fold_masks, load_eval_sets, mean_over_folds
from .two_sample import (FRESH_D_BETA_1, FRESH_D_LEARNING_RATE, discriminator_two_sample_test, fewest_pieces,
                         set_d_inputs)

__all__ = ["critic_comparison", "evaluate_run", "write_evaluation"]

_FORMAT = 1


def evaluate_run(
    run_dir: Any,
    *,
    n: int = EVAL_N,
    seed: int = 0,
    d_test: bool = True,
    d_epochs: int = 20,
    d_splits: int = 3,
    n_d_train: int | None = None,
    data_dir: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    plots: bool = True,
    write: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run: the real, random, pretrained-only and agent sets side by side.

    The sets come from :func:`load_eval_sets`; each is measured by
    :func:`compare_to_real` against the same real reference clips, with the
    same seed (same folds and pair draws for every set). With
    ``write``, the run folder gets ``metrics.json`` (the returned dict),
    ``report.md`` (the table, its legend, MGEval per feature, the plots) and,
    with ``plots``, the PNGs of :data:`PLOT_FILES`.

    The cost with ``n=256`` on 2 CPU cores: about 3 minutes (4 to 6 on a
    busy machine): sampling and compiling the two policies, the mels of
    about 5000 clips, and for each set the measures (a few seconds), their
    intervals' bootstrap (about 5 seconds at 1000 resamples) and the two
    fresh discriminators: ``d_splits`` folds of ``d_epochs`` epochs on about
    ``2 * n * (d_splits - 1) / d_splits`` clips, at most the reference's
    windows (10 to 20 seconds), and ``d_epochs`` epochs on ``2 * n_d_train``
    clips (about 30 seconds); one compiled model serves them all. The
    default ``n=1024`` takes about a seventh longer, and halves the set
    measures' noise between two evaluations. At 5 epochs the
    cross-validated one told random progressions from chorales only 94 % of
    the time, at 20 epochs 99 %: fewer epochs make every set look more real
    than it is. Only the second has the data to tell the policies from
    chorales (0.76 for a pretrained policy where the first is at chance).

    Parameters
    ----------
    run_dir : str or path-like
        A run folder with at least one checkpoint.
    n : int
        Pieces per generated set (the real sets hold every held-out window).
    seed : int
        Seed of every draw and test.
    d_test : bool
        Run the fresh-discriminator tests (``fresh_d_acc`` is NaN otherwise).
    d_epochs, d_splits : int
        Training epochs per fold, and folds, of each fresh discriminator.
    n_d_train : int, optional
        Clips of each kind the ``fresh_d_full_acc`` discriminator trains on
        (see :func:`load_eval_sets`).
    data_dir : str or path-like, optional
        The real data's folder instead of the one the run recorded
        (see :func:`load_eval_sets`).
    n_resamples : int
        Bootstrap draws of each set measure's 95 % interval (see
        :func:`musicrl.evaluation.compare.compare_to_real`; a few seconds per
        set for 1000).
    plots : bool
        Write the PNG plots.
    write : bool
        Write the files into the run folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    evaluation : dict
        As saved to ``metrics.json`` (where NaN is null): the run's ``info``
        (see :class:`EvalSets`), ``sets``
        (names in table order), ``labels``, ``columns``, ``table`` (set ->
        column -> float, NaN where not measured), ``mgeval`` (set -> feature
        -> measures), ``tests`` (set -> the two tests' details),
        ``intervals`` (set -> column -> [low, high], the 95 % intervals),
        ``settings``, ``seconds`` and ``notes``.
    """
    t0 = time.perf_counter()
    d_epochs = check_int(d_epochs, "d_epochs", 1)
    d_splits = check_int(d_splits, "d_splits", 2)
    n_resamples = check_int(n_resamples, "n_resamples", 2)
    # each fresh D retraces Keras' predict function, which TensorFlow warns about at length
    tf_logger = logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    bar = tqdm(total=2 + 2 * len(EVAL_SETS) + bool(write), desc="evaluate", unit="step",
               disable=not progress, dynamic_ncols=True)
    seconds: dict[str, float] = {}
    try:
        bar.set_postfix_str("sampling the sets")
        ev = load_eval_sets(run_dir, n=n, seed=seed, n_d_train=n_d_train if d_test else 0, data_dir=data_dir,
                            progress=False)
        seconds["sets"] = time.perf_counter() - t0
        bar.update(1)
        names = [s for s in EVAL_SETS if s in ev.sets]
        bar.total = 2 + 2 * len(names) + bool(write)
        results = _compare_sets(ev, names, d_test=d_test, d_epochs=d_epochs, d_splits=d_splits,
                                n_resamples=n_resamples, bar=bar, seconds=seconds)
        settings = {"d_test": bool(d_test), "d_epochs": d_epochs, "d_splits": d_splits,
                    "bootstrap_resamples": n_resamples, "interval_level": INTERVAL_LEVEL}
        evaluation = _evaluation(ev, names, results, settings)
        seconds["total"] = time.perf_counter() - t0
        evaluation["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        if write:
            bar.set_postfix_str("report and plots")
            write_evaluation(run_dir, evaluation, ev if plots else None)
            bar.update(1)
    finally:
        bar.close()
        tf_logger.setLevel(tf_level)
    return evaluation


def _compare_sets(ev: EvalSets, names: list[str], *, d_test: bool, d_epochs: int, d_splits: int,
                  n_resamples: int, bar: Any, seconds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """:func:`compare_to_real` of each set against the reference, with the same seed (the same folds and
    pair draws for every set); the real row is :func:`_compare_real_folds`. The D inputs of the reference
    are computed once."""
    cfg = ev.cfg
    t = time.perf_counter()
    ref_x = set_d_inputs(ev.reference, cfg) if d_test else None
    train_real_x = set_d_inputs(ev.d_train["real"], cfg) if "real" in ev.d_train else None
    bar.update(1)
    results = {}
    d_cache: dict = {}
    options = {"train_seqs": ev.train_seqs, "d_test": d_test, "d_epochs": d_epochs, "d_splits": d_splits,
               "d_cache": d_cache, "n_resamples": n_resamples}
    for name in names:
        bar.set_postfix_str(f"{name}: D inputs")
        gen_x = set_d_inputs(ev.sets[name], cfg) if d_test and name != "real" else None
        train_gen_x = set_d_inputs(ev.d_train[name], cfg) if name != "real" and name in ev.d_train else None
        seconds["d_inputs"] = seconds.get("d_inputs", 0.0) + time.perf_counter() - t
        bar.update(1)
        t = time.perf_counter()
        bar.set_postfix_str(f"{name}: measures and tests")
        seed = np.random.default_rng([ev.info["seed"], 10])
        if name == "real":
            results[name] = _compare_real_folds(ev, ref_x, seed=seed, **options)
        else:
            results[name] = compare_to_real(
                ev.sets[name], ev.reference, cfg, gen_x=gen_x, real_x=ref_x, train_real_x=train_real_x,
                train_gen_x=train_gen_x, real_groups=ev.groups["reference"], gen_groups=ev.groups.get(name),
                resample_reference=False, seed=seed, **options)
        seconds[f"compare_{name}"] = time.perf_counter() - t
        bar.update(1)
        t = time.perf_counter()
    return results


def _compare_real_folds(ev: EvalSets, ref_x: np.ndarray | None, *, seed: np.random.Generator,
                        **options: Any) -> dict[str, Any]:
    """The real row: each fold of the held-out pieces (``ev.folds``) through :func:`compare_to_real`
    against the other folds, and the mean over the folds of every figure
    (:func:`~musicrl.evaluation.sets.mean_over_folds`).

    Every held-out piece is scored once and never against itself. The
    interval of a column is the mean of the folds' bounds: each fold's
    interval covers its own value, so it is wider than the mean's.
    """
    results = []
    groups = ev.groups["reference"]
    for inside in fold_masks(ev):
        results.append(compare_to_real(
            ev.reference[inside], ev.reference[~inside], ev.cfg,
            gen_x=None if ref_x is None else ref_x[inside], real_x=None if ref_x is None else ref_x[~inside],
            real_groups=groups[~inside], gen_groups=groups[inside], seed=seed, **options))
    return mean_over_folds(results)


def _evaluation(ev: EvalSets, names: list[str], results: dict[str, dict[str, Any]],
                settings: dict[str, Any]) -> dict[str, Any]:
    """The evaluation as saved to metrics.json, but for its ``seconds``."""
    cfg = ev.cfg
    notes = list(ev.info["notes"])
    for name in names:
        notes += [f"{name}: {line}" for line in results[name]["notes"]]
    return {
        "format": _FORMAT,
        **{k: v for k, v in ev.info.items() if k != "notes"},
        "sets": names,
        "labels": {s: _set_label(s, ev.info) for s in names},
        "columns": list(results[names[0]]["row"]),
        "table": {s: results[s]["row"] for s in names},
        "intervals": {s: results[s]["intervals"] for s in names},
        "mgeval": {s: results[s]["mgeval"] for s in names},
        "tests": {s: {"seq": results[s]["seq_test"], "fresh_d": results[s]["d_test"],
                      "fresh_d_full": results[s]["d_full_test"]} for s in names},
        "settings": {
            **settings, "d_batch_size": D_BATCH_SIZE,
            "d_learning_rate": FRESH_D_LEARNING_RATE, "d_beta_1": FRESH_D_BETA_1,
            "d_arch": cfg.d_arch, "d_input": d_input_kind(cfg), "seq_splits": SEQ_SPLITS,
            "copy_run_length": results[names[0]]["copy_run_length"], "folds_grouped_by_piece": True,
        },
        "notes": notes,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def critic_comparison(
    ev: EvalSets,
    *,
    archs: Sequence[str] = ("cnn", "lstm", "seq"),
    sets: Sequence[str] = ("real", "random", "pretrained", "agent"),
    epochs: int = 20,
    d_splits: int = 3,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Held-out accuracy of fresh discriminators of several architectures on the same sets.

    Each architecture (``d_arch``; every other setting is the run's) is
    trained anew by :func:`discriminator_two_sample_test` to tell
    ``ev.reference`` from each set (the real set: each fold of the held-out
    pieces from the others, averaged), with folds that keep each real piece's
    windows together and the same seed for every architecture, so they see
    the same clips and folds. It answers which critic can tell the agent's
    music from real music at all: a critic at 0.5 on a set gives no signal
    about it.

    Parameters
    ----------
    ev : EvalSets
        From :func:`load_eval_sets`.
    archs : sequence of str
        Architectures ('cnn', 'lstm', 'seq').
    sets : sequence of str
        Sets of ``ev`` to test (those it lacks are left out).
    epochs, d_splits : int
        Training epochs per fold, and folds (fewer where a side has fewer pieces,
        :func:`musicrl.evaluation.two_sample.fewest_pieces`).
    seed : int
        Seed of the folds and of the discriminators' initial weights.

    Returns
    -------
    accuracy : dict
        Architecture -> set -> mean held-out accuracy over the folds.
    """
    check_int(epochs, "epochs", 1)
    check_int(d_splits, "d_splits", 2)
    out: dict[str, dict[str, float]] = {}
    for arch in archs:
        cfg = config_from_overrides({"d_arch": arch}, base=ev.cfg)
        ref_x = set_d_inputs(ev.reference, cfg)
        out[arch] = {}
        cache: dict = {}
        groups = ev.groups["reference"]

        def accuracy(real_x: np.ndarray, gen_x: np.ndarray, real_groups: Any, gen_groups: Any) -> float:
            # fewer folds when a side has fewer pieces, as compare_to_real's tests (a real fold holds two at least)
            n_splits = min(d_splits, fewest_pieces(real_x, gen_x, real_groups=real_groups, gen_groups=gen_groups))
            return discriminator_two_sample_test(
                real_x, gen_x, cfg, n_splits=n_splits, epochs=epochs, seed=seed, real_groups=real_groups,
                gen_groups=gen_groups, cache=cache)["accuracy"]

        for name in sets:
            if name == "real":
                # each fold of the held-out pieces against the others, as the real row of an evaluation
                out[arch][name] = mean_over_folds([accuracy(ref_x[~m], ref_x[m], groups[~m], groups[m])
                                                   for m in fold_masks(ev)])
            elif name in ev.sets:
                out[arch][name] = accuracy(ref_x, set_d_inputs(ev.sets[name], cfg), groups, ev.groups.get(name))
    return out


def _set_label(name: str, info: dict[str, Any]) -> str:
    if name == "real" and info.get("data", {}).get("split") == "train":
        return "real (training: no held-out)"
    return SET_LABELS.get(name, name)


def _write_plots(folder: Path, evaluation: dict[str, Any], ev: EvalSets) -> list[str]:
    # imported here, not at the top: the backend must be chosen before pyplot is first imported
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no window; a session that already drew keeps its backend
    import matplotlib.pyplot as plt

    cfg = ev.cfg
    lp = cfg.lowest_pitch
    names = evaluation["sets"]
    labels = evaluation["labels"]
    sets = {labels[s]: ev.sets[s] for s in names}
    figures = {}
    scalar = [f for f in PIECE_FEATURES if not f.endswith("histogram")]
    features = {k: piece_features(v, lowest_pitch=lp, names=scalar) for k, v in sets.items()}
    figures["features.png"] = plotting.plot_feature_hists(features)
    hists = {k: metrics.pitch_class_histogram(v, lowest_pitch=lp, pooled=True) for k, v in sets.items()}
    figures["pitch_classes.png"] = plotting.plot_pitch_class_hists(hists, title="pitch classes").figure
    figures["piano_rolls.png"] = plotting.plot_piano_rolls(sets, lowest_pitch=lp, n=3)
    mg = {labels[s]: evaluation["mgeval"][s] for s in names}
    figures["mgeval.png"] = plotting.plot_mgeval(
        mg, measure="oa_real_inter", title="MGEval overlap with the reference"
    ).figure
    written = []
    try:
        for name, fig in figures.items():
            fig.tight_layout()
            try:
                fig.savefig(folder / name, dpi=90)
            except OSError as e:
                raise MusicRLError(f"cannot write {str(folder / name)!r}: {e.strerror or e}") from None
            written.append(name)
    finally:
        for fig in figures.values():
            plt.close(fig)
    return written


def write_evaluation(run_dir: Any, evaluation: dict[str, Any], eval_sets: EvalSets | None = None) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and (given the sets) the plots into a run folder.

    Parameters
    ----------
    run_dir : str or path-like
    evaluation : dict
        From :func:`evaluate_run`.
    eval_sets : EvalSets, optional
        The pieces evaluated; without them no plot is drawn.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    folder = Path(run_dir)
    evaluation = check_evaluation(evaluation, "evaluation")
    plot_files = _write_plots(folder, evaluation, eval_sets) if eval_sets is not None else []
    return write_report_files(folder, evaluation, plot_files) + [folder / f for f in plot_files]
