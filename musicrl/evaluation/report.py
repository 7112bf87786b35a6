"""The evaluation's files and tables: metrics.json, report.md, and several runs side by side.

Everything here reads or writes what an evaluation measured
(:func:`musicrl.evaluation.evaluate.evaluate_run`); nothing is measured
again, so reading evaluations (``python -m musicrl compare``, a sweep's
tables) needs neither TensorFlow nor the runs' data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MusicRLError
from .checks import read_json
from .listen import listening_summary

__all__ = [
    "COLUMN_DOCS",
    "COMPARISON_FILE",
    "EVALUATION_FILE",
    "EVAL_SETS",
    "PLOT_FILES",
    "REPORT_FILE",
    "SET_LABELS",
    "check_evaluation",
    "format_cell",
    "comparison_report",
    "comparison_table",
    "format_table",
    "format_value",
    "load_evaluation",
    "report_markdown",
    "write_comparison",
    "write_report_files",
]

EVALUATION_FILE = "metrics.json"
"""File of a run folder holding the numbers of its evaluation."""
REPORT_FILE = "report.md"
"""File of a run folder holding the evaluation report."""
COMPARISON_FILE = "compare.md"
"""File written by a comparison of several runs."""
PLOT_FILES = ("features.png", "pitch_classes.png", "piano_rolls.png", "mgeval.png")
"""Plots of an evaluation, written next to its report."""

EVAL_SETS: tuple[str, ...] = ("real", "random", "pretrained", "agent")
"""The sets of an evaluation, in table order."""
SET_LABELS: dict[str, str] = {
    "real": "real (held-out)",
    "random": "random progressions",
    "pretrained": "pretrained only",
    "agent": "agent",
}
"""How the table names each set."""

COLUMN_DOCS: dict[str, str] = {
    "fresh_d_acc": "held-out accuracy of a freshly trained discriminator (the run's architecture, never the "
                   "training D) telling the reference clips from the set's; 0.5 = indistinguishable, "
                   "1 = always told apart",
    "fresh_d_full_acc": "accuracy of a freshly trained discriminator that learned from windows of the training "
                        "pieces against as many other pieces of the set, scored on the reference clips and the "
                        "set's; 0.5 = indistinguishable (not measured for the real set, which has no second sample)",
    "seq_clf_acc": "cross-validated accuracy of a logistic regression on per-piece feature vectors "
                   "(register, pitch classes, chord qualities, every scalar feature); 0.5 = indistinguishable",
    "mgeval_kl": "MGEval: KL divergence (nats) from the reference's intra-set distances to the set-to-reference "
                 "distances, mean over the features (0 = as close to the reference as it is to itself)",
    "mgeval_oa": "MGEval: overlapping area of the same two distance densities, mean over the features (1 = best)",
    "copy_rate": "share of pieces that repeat a run of chords of a training piece verbatim",
    "empty_step_rate": "share of steps that are rests",
    "polyphony": "mean notes per chord",
    "n_pitches_used": "distinct pitches per piece",
    "pitch_range": "semitones from the lowest to the highest note of a piece",
    "used_pitch_classes": "distinct pitch classes per piece",
    "pitch_class_entropy": "entropy in bits of a piece's pitch-class histogram, mean over pieces",
    "qualified_note_rate": "share of notes lasting at least two steps (MuseGAN's qualified notes)",
    "in_key_rate": "share of notes in the piece's estimated key",
    "key_correlation": "correlation of a piece's pitch classes with its best Krumhansl-Kessler key profile",
    "consonant_chord_rate": "share of chords that are triads or seventh chords",
    "voice_leading": "semitones moved per voice between successive chords",
    "tonal_distance": "distance of the tonal centroids of successive chords (Harte et al.)",
    "repetition_rate": "share of steps equal to the previous step",
    "distinct_chord_ratio": "distinct chords of a piece over its steps, mean over pieces",
    "distinct_chord_ratio_set": "distinct chords of the whole set over all its steps",
    "distinct_chords_common": "distinct chords of the set once pitches under 1 % of the notes are dropped",
    "top3_pitch_share": "share of notes on the set's three most used pitches (high = collapse)",
    "pitch_class_overlap": "overlap of the set's pitch-class histogram with the reference's (1 = the same)",
    "scale_degree_overlap": "overlap of the set's scale-degree histogram (pitch classes counted from each piece's tonic) "
                            "with the reference's: blind to the pieces' keys",
}
"""One line per table column, for the report's legend."""


def _number(value: Any) -> float:
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")


def format_value(value: Any) -> str:
    """A table cell: 'n/a' for a missing or NaN value, whole numbers as such, else 3 decimals."""
    v = _number(value)
    if not np.isfinite(v):
        return "n/a"
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def format_cell(evaluation: dict[str, Any], set_name: str, column: str) -> str:
    """A set's value of a column, with its interval as ``value [low, high]`` when the evaluation has one."""
    cell = format_value(evaluation["table"].get(set_name, {}).get(column))
    low, high = (_number(v) for v in (evaluation.get("intervals", {}).get(set_name, {}).get(column) or (None, None)))
    if cell == "n/a" or not (np.isfinite(low) and np.isfinite(high)):
        return cell
    return f"{cell} [{format_value(low)}, {format_value(high)}]"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def check_evaluation(evaluation: Any, where: str) -> dict[str, Any]:
    """``evaluation``, or a MusicRLError naming ``where`` when it lacks the table, sets or columns."""
    if (
        not isinstance(evaluation, dict)
        or not isinstance(evaluation.get("table"), dict)
        or not isinstance(evaluation.get("sets"), list)
        or not isinstance(evaluation.get("columns"), list)
    ):
        raise MusicRLError(f"{where} is not an evaluation written by 'python -m musicrl evaluate'")
    return evaluation


def format_table(evaluation: dict[str, Any], *, columns: Sequence[str] | None = None) -> str:
    """The evaluation table in markdown: one row per set, one column per measure, each value with its
    95 % interval in brackets where the evaluation has one (:func:`format_cell`).

    Parameters
    ----------
    evaluation : dict
        From :func:`evaluate_run` or :func:`load_evaluation`.
    columns : sequence of str, optional
        Columns to show (default: all, in the evaluation's order).

    Returns
    -------
    table : str
    """
    evaluation = check_evaluation(evaluation, "evaluation")
    columns = list(columns) if columns is not None else list(evaluation["columns"])
    sizes = evaluation.get("sizes", {})
    labels = evaluation.get("labels", {})
    rows = []
    for s in evaluation["sets"]:
        rows.append([labels.get(s, s), format_value(sizes.get(s))] + [format_cell(evaluation, s, c) for c in columns])
    return _markdown(["set", "n"] + columns, rows)


def _mgeval_table(evaluation: dict[str, Any]) -> str:
    names = evaluation["sets"]
    features = list(next(iter(evaluation["mgeval"].values()), {}))
    rows = []
    for f in features:
        cells = []
        for s in names:
            m = evaluation["mgeval"].get(s, {}).get(f, {})
            cells.append(f"{format_value(m.get('kl_real_inter'))} / {format_value(m.get('oa_real_inter'))}")
        rows.append([f] + cells)
    return _markdown(["feature"] + [evaluation["labels"].get(s, s) for s in names], rows)


def _json_ready(obj: Any) -> Any:
    """NaN and inf become null (JSON has no NaN); NumPy values become Python ones."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def _reference_text(data: dict[str, Any], split: str) -> str:
    """The report's line on the real clips, as this evaluation drew them (or as an older one did)."""
    reference = (f"- reference: {data.get('reference_windows')} windows of {data.get('reference_pieces')} {split} "
                 f"pieces of `{data.get('root')}`")
    if "real_folds" in data:
        return (f"{reference}, every one of them; the real row: the same pieces dealt into {data['real_folds']} "
                f"folds, each scored against the others, and the mean over the folds")
    return (f"{reference}; the real row: {data.get('real_windows')} windows of the {data.get('real_pieces')} "
            f"other {split} pieces")


def _sizes_text(sizes: Any) -> str:
    if not sizes:
        return "not run"
    return ", ".join(f"{k} {v}" for k, v in sizes.items()) + " clips"


def report_markdown(evaluation: dict[str, Any], plot_files: Sequence[str], *, listening: str | None = None) -> str:
    """The text of ``report.md``: the run, the table, its legend, MGEval per feature, the plots and notes.

    ``listening`` is the markdown of the run's listening tests
    (:func:`~musicrl.evaluation.listen.listening_summary`), shown in a
    section of its own when given.
    """
    data = evaluation.get("data", {})
    settings = evaluation.get("settings", {})
    split = "held-out" if data.get("split") == "heldout" else "training"
    pre = evaluation.get("pretrained_checkpoint")
    lines = [
        f"# Evaluation of run `{evaluation.get('name')}`",
        "",
        f"- run: `{evaluation.get('run')}`",
        f"- agent: checkpoint `{evaluation.get('checkpoint')}` (iteration {evaluation.get('iteration')})",
        f"- pretrained only: " + (f"checkpoint `{pre}` ({evaluation.get('pretrain_steps')} maximum-likelihood steps)"
                                  if pre else "none in this run"),
        f"- generated sets: {evaluation.get('n')} pieces each, sampled at temperature "
        f"{evaluation.get('sample_temperature')}; seed {evaluation.get('seed')}",
        _reference_text(data, split),
        f"- fresh discriminator: a new `{settings.get('d_arch')}` D on {settings.get('d_input')} inputs per set, "
        f"{settings.get('d_splits')}-fold, {settings.get('d_epochs')} epoch(s), batch {settings.get('d_batch_size')}"
        + (f", Adam at {settings['d_learning_rate']:g} (beta_1 {settings.get('d_beta_1'):g}) for every run"
           if "d_learning_rate" in settings else "")
        + ("" if settings.get("d_test", True) else " (not run)"),
        f"- fresh discriminator trained on the training pieces (`fresh_d_full_acc`): the same D trained "
        f"{settings.get('d_epochs')} epoch(s) on windows of the training pieces against another sample of "
        f"each set's source ({_sizes_text(evaluation.get('d_train_sizes'))}), then scored on the reference and "
        f"the set",
        f"- the two cross-validated tests: folds keep each real piece's windows together, so a classifier cannot score "
        f"by recognising a piece it trained on; the larger of the two sets is subsampled to the smaller, so chance "
        f"is 0.5",
        f"- copy rate: runs of {settings.get('copy_run_length')} chords of the training pieces",
        "- intervals: " + (
            f"95 % intervals in brackets: Wilson's for the accuracies (over the clips each test scored, the "
            f"windows of one piece counting once) and the copy rate (over the set's pieces), a bootstrap "
            f"({settings['bootstrap_resamples']} resamples) for the set measures that draws again the set's "
            f"pieces, the windows of a piece together"
            + (" (the reference is the same in every evaluation of the run, so it is not drawn again; the real "
               "row's is, and its interval is the mean of its folds')" if "real_folds" in data
               else " and the reference's")
            + "; none for MGEval's (a KDE comparison per resample) nor for the counts of distinct chords of the "
            "whole set"
            if "bootstrap_resamples" in settings else "none (an evaluation written before they were measured)"),
        f"- evaluated {evaluation.get('written')}"
        + (f" in {evaluation['seconds']['total']:.1f} s" if "total" in evaluation.get("seconds", {}) else ""),
        "",
        "Every set is measured against the same reference clips. The real row is music from the same source "
        "measured the same way (each fold of it against the others): a generator matches the data on a measure "
        "when it scores as the real row does (0.5 for the two classifier accuracies).",
        "",
        "## Table",
        "",
        format_table(evaluation),
        "",
        "## Columns",
        "",
    ]
    lines += [f"- `{c}`: {COLUMN_DOCS[c]}" for c in evaluation["columns"] if c in COLUMN_DOCS]
    lines += [
        "",
        "## MGEval per feature",
        "",
        "KL divergence / overlapping area of the reference's intra-set distances and the set-to-reference "
        "distances of each per-piece feature (0 / 1: the set is as close to the reference as the reference is "
        "to itself).",
        "",
        _mgeval_table(evaluation),
    ]
    if plot_files:
        lines += ["", "## Plots", ""]
        captions = {
            "features.png": "Per-piece features of each set",
            "pitch_classes.png": "Pitch-class histograms (all notes of each set)",
            "piano_rolls.png": "A few pieces of each set",
            "mgeval.png": "MGEval overlapping area per feature",
        }
        lines += [f"![{captions.get(f, f)}]({f})\n" for f in plot_files]
    if listening:
        lines += ["", listening.strip()]
    if evaluation.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in evaluation["notes"]]
    return "\n".join(lines) + "\n"


def write_report_files(folder: Path, evaluation: dict[str, Any], plot_files: Sequence[str] = ()) -> list[Path]:
    """Write ``metrics.json`` and ``report.md`` (which shows ``plot_files``) into ``folder``; their paths.

    ``report.md`` includes the tallies of the listening tests held on the run,
    where there are any.
    """
    evaluation = check_evaluation(evaluation, "evaluation")
    _write_text(folder / EVALUATION_FILE, json.dumps(_json_ready(evaluation), indent=1) + "\n")
    _write_text(folder / REPORT_FILE, report_markdown(evaluation, plot_files, listening=listening_summary(folder)))
    return [folder / EVALUATION_FILE, folder / REPORT_FILE]


def load_evaluation(path: Any) -> dict[str, Any]:
    """Read the ``metrics.json`` of an evaluated run (a run folder or the file itself).

    Missing values (null in the file) come back as NaN; ``intervals`` (set ->
    column -> (low, high)) is empty for an evaluation written without them.

    Raises
    ------
    MusicRLError
        If there is no such file, or it is not an evaluation.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MusicRLError(f"{str(path)!r} does not exist")
    file = path / EVALUATION_FILE if path.is_dir() else path
    if not file.is_file():
        raise MusicRLError(
            f"no evaluation in {str(path)!r} (no {EVALUATION_FILE}): "
            f"run 'python -m musicrl evaluate --run {path}' first"
        )
    evaluation = check_evaluation(read_json(file), repr(str(file)))
    evaluation["table"] = {
        s: {c: _number(v) for c, v in row.items()} for s, row in evaluation["table"].items()
    }
    # an evaluation written before intervals were measured has none
    evaluation["intervals"] = {
        s: {c: tuple(_number(v) for v in (pair or (None, None))) for c, pair in row.items()}
        for s, row in (evaluation.get("intervals") or {}).items()
    }
    return evaluation


def _run_labels(evaluations: Sequence[dict[str, Any]]) -> list[str]:
    names = [str(e.get("name") or f"run{i + 1}") for i, e in enumerate(evaluations)]
    if len(set(names)) < len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    return names


def comparison_table(
    evaluations: Sequence[dict[str, Any]],
    *,
    labels: Sequence[str] | None = None,
    sets: Sequence[str] | None = None,
) -> str:
    """Several runs' evaluations side by side, in markdown: one row per measure, one column per set and run.

    Columns are grouped by set (the real sets of all runs, then their random
    sets, ...), so the runs' values of a set stand next to each other.

    Parameters
    ----------
    evaluations : sequence of dict
        From :func:`evaluate_run` or :func:`load_evaluation`.
    labels : sequence of str, optional
        Names of the runs (default: their folder names).
    sets : sequence of str, optional
        Sets to show (default: every set of :data:`EVAL_SETS` that a run has).

    Returns
    -------
    table : str
    """
    evaluations = [check_evaluation(e, f"evaluation {i + 1}") for i, e in enumerate(evaluations)]
    if not evaluations:
        raise MusicRLError("comparison_table needs at least one evaluation")
    labels = list(labels) if labels is not None else _run_labels(evaluations)
    if len(labels) != len(evaluations):
        raise MusicRLError(f"{len(labels)} labels for {len(evaluations)} evaluations")
    present = [s for s in EVAL_SETS if any(s in e["sets"] for e in evaluations)]
    present += [s for e in evaluations for s in e["sets"] if s not in present]
    sets = list(sets) if sets is not None else present
    columns = [c for e in evaluations for c in e["columns"]]
    columns = list(dict.fromkeys(["n"] + columns))
    header = ["measure"] + [f"{s}: {lab}" for s in sets for lab in labels]
    rows = []
    for c in columns:
        cells = []
        for s in sets:
            for e in evaluations:
                if s not in e["sets"]:
                    cells.append("-")
                elif c == "n":
                    cells.append(format_value(e.get("sizes", {}).get(s)))
                else:
                    cells.append(format_cell(e, s, c))
        rows.append([c] + cells)
    return _markdown(header, rows)


def comparison_report(evaluations: Sequence[dict[str, Any]], *, labels: Sequence[str] | None = None) -> str:
    """A markdown page comparing runs: which run is which, then :func:`comparison_table`."""
    labels = list(labels) if labels is not None else _run_labels(evaluations)
    lines = ["# Comparison of runs", ""]
    for lab, e in zip(labels, evaluations):
        lines.append(
            f"- `{lab}`: `{e.get('run')}`, checkpoint `{e.get('checkpoint')}` (iteration {e.get('iteration')}), "
            f"n = {e.get('n')}, seed {e.get('seed')}"
        )
    lines += ["", comparison_table(evaluations, labels=labels), ""]
    lines += [f"- `{c}`: {COLUMN_DOCS[c]}" for c in dict.fromkeys(
        c for e in evaluations for c in e["columns"]) if c in COLUMN_DOCS]
    return "\n".join(lines) + "\n"


def write_comparison(
    out_dir: Any, evaluations: Sequence[dict[str, Any]], *, labels: Sequence[str] | None = None
) -> Path:
    """Write :func:`comparison_report` to ``out_dir/compare.md`` (the folder is created)."""
    folder = Path(out_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MusicRLError(f"cannot create folder {str(folder)!r}: {e.strerror or e}") from None
    path = folder / COMPARISON_FILE
    _write_text(path, comparison_report(evaluations, labels=labels))
    return path
