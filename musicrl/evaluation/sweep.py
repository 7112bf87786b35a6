"""Experiments over seeds: train each configuration, evaluate it, tabulate mean and spread.

An *experiment* is a JSON file of config fields (the changes from the
defaults; ``{}`` is the default configuration), named by its file name
without ``.json``. :func:`run_sweep` trains every experiment with every seed
for the same time budget, each in a process of its own (``python -m musicrl
train``, then ``python -m musicrl evaluate``), into
``<out>/<experiment>/seed<S>/``; a run whose evaluation is already there is
not run again, so an interrupted sweep continues where it stopped.

The tables come from the runs' ``metrics.json`` files (:func:`collect`):

* ``results.csv``: one row per run and evaluation set (real, random,
  pretrained, agent);
* ``summary.csv``: per experiment and set, the mean, the standard
  deviation over seeds and the 95 % half-width of every measure;
* ``results.md``: the headline measures as mean +- the half-width of a 95 %
  interval (the seed spread and the evaluation's own noise), the
  adversarial phase's change over the same run's pretrained-only policy
  (paired by seed), and where the agents stand on the targets of
  :data:`TARGETS`.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..config import config_from_overrides, read_config_file
from scipy import stats

from ..errors import MusicRLError
from .intervals import half_width
from .report import load_evaluation

__all__ = [
    "BETTER",
    "TOWARD_REAL",
    "HEADLINE",
    "TARGETS",
    "Experiment",
    "collect",
    "load_experiment",
    "mean_interval",
    "paired_changes",
    "control_changes",
    "results_markdown",
    "run_sweep",
    "summarize",
    "target_checks",
    "write_results",
]

HEADLINE: tuple[str, ...] = (
    "fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "in_key_rate", "consonant_chord_rate", "pitch_class_overlap",
    "scale_degree_overlap", "distinct_chord_ratio", "copy_rate", "top3_pitch_share",
)
"""The measures of the markdown tables, in order."""

BETTER: dict[str, int] = {
    "fresh_d_acc": -1,
    "fresh_d_full_acc": -1,
    "seq_clf_acc": -1,
    "in_key_rate": +1,
    "consonant_chord_rate": +1,
    "pitch_class_overlap": +1,
    "scale_degree_overlap": +1,
}
"""Which way is better (+1 higher, -1 lower) for the measures the adversarial phase must improve."""

TOWARD_REAL: tuple[str, ...] = ("voice_leading", "repetition_rate", "distinct_chord_ratio", "top3_pitch_share")
"""Measures with no better direction of their own: better is closer to the held-out real set's value."""

TARGETS: dict[str, str] = {
    "fresh_d_acc": "agent at most 0.75 (and random progressions at least 0.95)",
    "fresh_d_full_acc": "agent at most 0.75 (and random progressions at least 0.95)",
    "in_key_rate": "agent within 0.05 of the real data",
    "consonant_chord_rate": "agent at least 0.7",
    "pitch_class_overlap": "agent at least 0.9",
    "distinct_chord_ratio": "agent at least half the real data's",
    "copy_rate": "agent at most 0.05 (pieces repeating 8 chords of a training piece)",
}
"""The quality targets a run is measured against, in words."""

SETS: tuple[str, ...] = ("real", "random", "pretrained", "agent")
_SEED_DIR = "seed{}"
_HW = "_hw"  # suffix of a run's half-width of a measure's interval


class Experiment(NamedTuple):
    """One configuration of a sweep: its name (the file's stem), its config fields and its file."""

    name: str
    overrides: dict[str, Any]
    path: Path


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read an experiment file: a JSON object of config fields.

    Raises
    ------
    MusicRLError
        When the file cannot be read, is not a JSON object, or a field is
        unknown or out of range (the message names the file).
    """
    path = Path(path).expanduser()
    overrides = read_config_file(path, what="experiment file")
    if "seed" in overrides:
        raise MusicRLError(f"experiment file {str(path)!r} sets 'seed': the sweep gives the seeds")
    try:
        config_from_overrides(overrides)
    except MusicRLError as e:
        raise MusicRLError(f"experiment file {str(path)!r}: {e}") from None
    return Experiment(path.stem, overrides, path)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise MusicRLError(f"seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    if len(set(seeds)) < len(seeds):
        raise MusicRLError(f"seeds must be distinct, got {seeds!r}")
    return [int(s) for s in seeds]


def run_sweep(
    experiments: Sequence[str | os.PathLike | Experiment],
    *,
    seeds: Sequence[int],
    out: str | os.PathLike,
    minutes: float | None = 10.0,
    data: str | os.PathLike | None = None,
    n: int = 1024,
    d_epochs: int = 20,
    python: str = sys.executable,
    log: Callable[[str], None] | None = None,
    controls: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """Train and evaluate every experiment with every seed, then write the tables.

    Parameters
    ----------
    experiments : sequence of path or Experiment
        Experiment files (see :func:`load_experiment`).
    seeds : sequence of int
        Seeds; each experiment runs once per seed.
    out : path-like
        Sweep folder: runs go to ``<out>/<experiment>/seed<S>/``, tables to
        ``<out>`` (see :func:`write_results`).
    minutes : float or None
        Training time per run, pretraining included (None: the
        configuration's own ``iterations`` / ``minutes``). Before an
        experiment's runs, ``python -m musicrl data`` (logged to
        ``<out>/<experiment>/data.log``) builds the chorale set and caches its
        quantized pieces, so no run's budget pays for that; a folder of the
        user's own files is checked there but, never written to, is read
        again by each run.
    data : path-like, optional
        A MIDI folder to train on (default: the configuration's data set).
    n, d_epochs : int
        Pieces per evaluation set, and epochs of the fresh discriminator
        (``python -m musicrl evaluate --n --d-epochs``).
    python : str
        The interpreter that runs the commands.
    log : callable, optional
        Receives one line per finished or skipped run (default: printed at once).
    controls : sequence of (str, str)
        ``(experiment, control)`` name pairs compared by :func:`control_changes`
        in ``results.md``.

    Returns
    -------
    rows : list of dict
        :func:`collect` of the sweep folder, after the runs.

    Raises
    ------
    MusicRLError
        On a bad experiment file or setting, or when a run's training or
        evaluation fails (the message names the run and its log file).
    """
    if log is None:
        log = lambda line: print(line, flush=True)  # noqa: E731  (a sweep runs for hours: no buffering)
    exps = [e if isinstance(e, Experiment) else load_experiment(e) for e in experiments]
    if not exps:
        raise MusicRLError("a sweep needs at least one experiment file")
    names = [e.name for e in exps]
    if len(set(names)) < len(names):
        raise MusicRLError(f"experiment names (file stems) must be distinct, got {names}")
    seeds = _check_seeds(seeds)
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise MusicRLError(f"minutes must be a positive number or None, got {minutes!r}")
    root = Path(out).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    for exp in exps:
        if any(not (root / exp.name / _SEED_DIR.format(s) / "checkpoints").is_dir() for s in seeds):
            # build (or check) the data set here, so the first run's time budget does not pay for it
            cmd = [python, "-m", "musicrl", "data", "--config", str(exp.path), "--no-progress"]
            if data is not None:
                cmd += ["--from", str(data)]
            _run_logged(cmd, root / exp.name / "data.log", env, f"{exp.name}: the data set")
        for seed in seeds:
            run_dir = root / exp.name / _SEED_DIR.format(seed)
            if (run_dir / "metrics.json").is_file():
                log(f"{exp.name} seed {seed}: evaluated already, kept")
                continue
            t0 = time.perf_counter()
            if not (run_dir / "checkpoints").is_dir():
                cmd = [python, "-m", "musicrl", "train", "--config", str(exp.path), "--seed", str(seed),
                       "--out", str(root / exp.name), "--name", run_dir.name, "--no-progress"]
                if minutes is not None:
                    cmd += ["--minutes", repr(float(minutes))]
                if data is not None:
                    cmd += ["--data", str(data)]
                _run_logged(cmd, root / exp.name / f"{run_dir.name}.train.log", env, f"{exp.name} seed {seed}")
            cmd = [python, "-m", "musicrl", "evaluate", "--run", str(run_dir), "--n", str(int(n)),
                   "--d-epochs", str(int(d_epochs)), "--no-progress"]
            _run_logged(cmd, root / exp.name / f"{run_dir.name}.evaluate.log", env, f"{exp.name} seed {seed}")
            log(f"{exp.name} seed {seed}: trained and evaluated in {time.perf_counter() - t0:.0f} s")
    rows = collect(root)
    write_results(root, rows, controls=controls)
    return rows


def _run_logged(cmd: list[str], log_file: Path, env: dict[str, str], what: str) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise MusicRLError(f"{what}: '{' '.join(cmd[1:4])}' exited with {code}; see {log_file}")


def _training_stats(run_dir: Path) -> dict[str, float]:
    """Iterations, episodes and the last D accuracies of a run, from its metrics.jsonl."""
    from ..store.runs import read_metrics

    try:
        rows = read_metrics(run_dir)
    except MusicRLError:
        return {}
    if not rows:
        return {"iterations": 0.0}
    last = rows[-1]
    tail = rows[-max(1, len(rows) // 10):]
    return {
        "iterations": float(last["iteration"]),
        "episodes": float(last.get("episodes", math.nan)),
        "d_acc_real_end": float(np.mean([r["d_acc_real"] for r in tail])),
        "d_acc_gen_end": float(np.mean([r["d_acc_gen"] for r in tail])),
        "reward_end": float(np.mean([r["reward_mean"] for r in tail])),
    }


def collect(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every evaluated run of a sweep folder: one row per run and set.

    Returns
    -------
    rows : list of dict
        ``experiment``, ``seed``, ``set``, the training stats of the run
        (``iterations``, ``episodes``, ``d_acc_real_end``, ``d_acc_gen_end``,
        ``reward_end``: means over the last tenth of the iterations), every
        column ``m`` of the evaluation table (NaN where not measured) and,
        for an evaluation with intervals, ``m_hw``: the half-width of its 95 %
        interval, the evaluation's own noise on that run. Sorted by
        experiment, seed and set.
    """
    root = Path(out).expanduser()
    if not root.is_dir():
        raise MusicRLError(f"sweep folder {str(root)!r} does not exist")
    rows = []
    for path in sorted(root.glob(f"*/{_SEED_DIR.format('*')}/metrics.json")):
        run_dir = path.parent
        try:
            seed = int(run_dir.name[len("seed"):])
        except ValueError:
            continue
        evaluation = load_evaluation(path)
        stats = _training_stats(run_dir)
        for s in evaluation["sets"]:
            values = {c: _float(v) for c, v in evaluation["table"][s].items()}
            noise = {f"{c}{_HW}": half_width(iv) for c, iv in evaluation["intervals"].get(s, {}).items()}
            rows.append({"experiment": run_dir.parent.name, "seed": seed, "set": s, **stats, **values, **noise})
    order = {s: i for i, s in enumerate(SETS)}
    rows.sort(key=lambda r: (r["experiment"], r["seed"], order.get(r["set"], len(order))))
    return rows


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _numeric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    skip = {"experiment", "seed", "set"}
    return list(dict.fromkeys(k for r in rows for k in r if k not in skip and not k.endswith(_HW)))


def _eval_noise(members: Sequence[dict[str, Any]], column: str) -> np.ndarray:
    """Each run's 95 % half-width of ``column`` from its evaluation alone (NaN where it has none)."""
    return np.array([_float(m.get(f"{column}{_HW}")) for m in members])


def _rms(x: np.ndarray) -> float:
    """Root mean square of the finite values; 0 when there are none (no evaluation noise known)."""
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def mean_interval(values: Sequence[float], eval_half_widths: Sequence[float]) -> float:
    """Half-width of a 95 % interval of the mean over seeds, from the seed spread and the evaluation noise.

    The seed part is Student's ``t`` interval of the mean (``t_{k-1} * std / sqrt(k)``, none for one
    seed); the evaluation part is the runs' root-mean-square half-width over ``sqrt(k)`` (each run's
    value is one draw of the evaluation). Independent errors: the two add in quadrature. Three seeds
    alone would trust a spread measured on three numbers; the evaluation part keeps a floor under it.

    Parameters
    ----------
    values : sequence of float, shape=(k,)
        A measure's value for each seed (NaN left out).
    eval_half_widths : sequence of float, shape=(k,)
        Each run's 95 % half-width from its evaluation (NaN where unknown).

    Returns
    -------
    half_width : float
        NaN when there is no value.
    """
    x = np.asarray(values, dtype=np.float64)
    hw = np.asarray(eval_half_widths, dtype=np.float64)
    ok = np.isfinite(x)
    k = int(ok.sum())
    if k == 0 or (k == 1 and not np.isfinite(hw[ok]).any()):
        return math.nan
    seed_part = float(stats.t.ppf(0.975, k - 1) * x[ok].std(ddof=1) / math.sqrt(k)) if k > 1 else 0.0
    return math.hypot(seed_part, _rms(hw[ok]) / math.sqrt(k))


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds, per experiment and set.

    Parameters
    ----------
    rows : sequence of dict
        From :func:`collect`.

    Returns
    -------
    summary : list of dict
        ``experiment``, ``set``, ``n_seeds``, and for every measure ``m``:
        ``m`` (mean over seeds), ``m_std`` (sample standard deviation,
        ``ddof=1``; NaN for a single seed) and ``m_ci`` (the half-width of a
        95 % interval of the mean, :func:`mean_interval`: the seed spread
        and the evaluation's own noise). NaN values are left out.
    """
    columns = _numeric_columns(rows)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["set"]), []).append(r)
    out = []
    for (exp, s), members in groups.items():
        row: dict[str, Any] = {"experiment": exp, "set": s, "n_seeds": len(members)}
        for c in columns:
            x = np.array([_float(m.get(c)) for m in members])
            x = x[np.isfinite(x)]
            row[c] = float(x.mean()) if len(x) else math.nan
            row[f"{c}_std"] = float(x.std(ddof=1)) if len(x) > 1 else math.nan
            row[f"{c}_ci"] = mean_interval([_float(m.get(c)) for m in members], _eval_noise(members, c))
        out.append(row)
    return out


def _paired_stats(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], reals: Sequence[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per measure, over ``(before, after)`` row pairs: the means, the mean change, the spread (the larger
    standard deviation of the two sides), the evaluation noise of a change and the verdict.

    Measures of :data:`BETTER` are better one way; with ``reals`` (each pair's real-set row), those of
    :data:`TOWARD_REAL` are better closer to the real value, and the verdict is on the distance.
    """
    out = []
    measures = [(m, sign) for m, sign in BETTER.items()]
    if reals is not None:
        measures += [(m, 0) for m in TOWARD_REAL]
    for m, sign in measures:
        b = np.array([_float(before.get(m)) for before, _ in pairs])
        a = np.array([_float(after.get(m)) for _, after in pairs])
        r = np.array([_float(real.get(m)) for real in reals]) if sign == 0 else np.zeros_like(a)
        ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(r)
        a, b, r = a[ok], b[ok], r[ok]
        if not len(a):
            continue
        change = a - b
        gain = sign * change if sign else np.abs(b - r) - np.abs(a - r)
        spread = max(b.std(ddof=1), a.std(ddof=1)) if len(a) > 1 else math.nan
        # one seed's change is two evaluations, each with its own noise
        eval_noise = _rms(np.hypot(_eval_noise([p[0] for p in pairs], m), _eval_noise([p[1] for p in pairs], m))[ok])
        margin = math.hypot(spread, eval_noise)
        beats = bool(len(a) > 1 and gain.mean() > margin and np.all(gain > 0))
        out.append({"measure": m, "better": {1: "higher", -1: "lower", 0: "toward real"}[sign],
                    "n_seeds": int(len(a)), "before": float(b.mean()), "after": float(a.mean()),
                    "change": float(change.mean()), "spread": float(spread), "eval_noise": eval_noise,
                    "margin": margin, "beats": beats})
    return out


def paired_changes(
    rows: Sequence[dict[str, Any]], *, before: str = "pretrained", after: str = "agent"
) -> list[dict[str, Any]]:
    """The adversarial phase's change of each measure, paired by run.

    For each experiment and measure of :data:`BETTER` (and of
    :data:`TOWARD_REAL` when the runs have their real set): the per-seed
    changes ``after - before`` (both sets come from the same run), their
    mean, the seed-to-seed spread (the larger of the two sets' standard
    deviations over seeds) and the evaluation noise of one seed's change
    (the root mean square over seeds of the two evaluations' 95 %
    half-widths added in quadrature; 0 for evaluations without intervals).
    The phase *beats* pretraining on a measure when the mean change goes the
    better way by more than the margin, the spread and the evaluation noise
    added in quadrature, and every seed's change goes that way: a change
    that the evaluation cannot tell from its own draw-to-draw noise is never
    called a win, however alike the seeds. For :data:`TOWARD_REAL` measures
    the change judged is the fall of the distance to the run's real value.

    Returns
    -------
    changes : list of dict
        ``experiment``, ``measure``, ``better`` ('higher', 'lower' or
        'toward real'), ``n_seeds``, ``before``, ``after`` (means),
        ``change`` (mean), ``spread``, ``eval_noise``, ``margin``,
        ``beats`` (bool).
    """
    by_run: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_run.setdefault((r["experiment"], r["seed"]), {})[r["set"]] = r
    out = []
    for exp in dict.fromkeys(e for e, _ in by_run):
        runs = [sets for (e, _), sets in by_run.items() if e == exp and before in sets and after in sets]
        reals = [sets["real"] for sets in runs] if all("real" in sets for sets in runs) else None
        out += [{"experiment": exp, **c} for c in _paired_stats([(s[before], s[after]) for s in runs], reals)]
    return out


def control_changes(
    rows: Sequence[dict[str, Any]], controls: Sequence[tuple[str, str]], *, set_name: str = "agent"
) -> list[dict[str, Any]]:
    """Each experiment against its control experiment, paired by seed.

    A seed gives both runs the same data split and the same pretraining, so
    the difference of their ``set_name`` rows is what the experiment's
    change did in the adversarial phase. The verdict is that of
    :func:`paired_changes`, with the control in place of the pretrained
    policy.

    Parameters
    ----------
    rows : sequence of dict
        From :func:`collect`.
    controls : sequence of (str, str)
        ``(experiment, control)`` name pairs.
    set_name : str
        The set compared (``'agent'``: the policies at the end).

    Returns
    -------
    changes : list of dict
        As :func:`paired_changes`, plus ``control``; ``before`` is the
        control's mean. Pairs without a seed evaluated in both are left out.
    """
    by = {(r["experiment"], r["seed"]): r for r in rows if r["set"] == set_name}
    real = {(r["experiment"], r["seed"]): r for r in rows if r["set"] == "real"}
    out = []
    for exp, control in controls:
        seeds = sorted(s for e, s in by if e == exp and (control, s) in by)
        if not seeds:
            continue
        pairs = [(by[(control, s)], by[(exp, s)]) for s in seeds]
        reals = [real[(exp, s)] for s in seeds] if all((exp, s) in real for s in seeds) else None
        out += [{"experiment": exp, "control": control, **c} for c in _paired_stats(pairs, reals)]
    return out


def target_checks(summary: Sequence[dict[str, Any]], experiment: str, *, set_name: str = "agent") -> list[dict]:
    """Where one experiment's ``set_name`` stands on each target of :data:`TARGETS` (means over seeds).

    Returns
    -------
    checks : list of dict
        ``measure``, ``target`` (words), ``value``, ``goal`` (the bound, from
        the real and random sets where the target depends on them), ``met``
        (bool; False when a value is missing) and ``gap`` (how far from the
        bound, 0 when met).
    """
    rows = {r["set"]: r for r in summary if r["experiment"] == experiment}
    if set_name not in rows:
        raise MusicRLError(f"experiment {experiment!r} has no {set_name!r} set in the summary")
    got = rows[set_name]
    real = rows.get("real", {})
    random = rows.get("random", {})

    def check(measure, value, goal, le):
        value, goal = _float(value), _float(goal)
        met = bool(np.isfinite(value) and np.isfinite(goal) and (value <= goal if le else value >= goal))
        gap = 0.0 if met else (abs(value - goal) if np.isfinite(value) and np.isfinite(goal) else math.nan)
        return {"measure": measure, "target": TARGETS.get(measure.split(" ")[0], ""), "value": value,
                "goal": goal, "met": met, "gap": gap}

    in_key_gap = abs(_float(got.get("in_key_rate")) - _float(real.get("in_key_rate")))
    return [
        check("fresh_d_acc", got.get("fresh_d_acc"), 0.75, True),
        check("fresh_d_acc (random)", random.get("fresh_d_acc"), 0.95, False),
        check("fresh_d_full_acc", got.get("fresh_d_full_acc"), 0.75, True),
        check("fresh_d_full_acc (random)", random.get("fresh_d_full_acc"), 0.95, False),
        {**check("in_key_rate", in_key_gap, 0.05, True), "value": _float(got.get("in_key_rate"))},
        check("consonant_chord_rate", got.get("consonant_chord_rate"), 0.7, False),
        check("pitch_class_overlap", got.get("pitch_class_overlap"), 0.9, False),
        check("distinct_chord_ratio", got.get("distinct_chord_ratio"),
              0.5 * _float(real.get("distinct_chord_ratio")), False),
        check("copy_rate", got.get("copy_rate"), 0.05, True),
    ]


def _fmt(mean: float, std: float | None = None) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f}" if std is None or not np.isfinite(std) else f"{mean:.3f} ± {std:.3f}"


def results_markdown(
    rows: Sequence[dict[str, Any]],
    *,
    experiments: Sequence[str] | None = None,
    controls: Sequence[tuple[str, str]] = (),
) -> str:
    """The sweep's results in markdown: headline measures, changes over pretraining, targets.

    Parameters
    ----------
    rows : sequence of dict
        From :func:`collect`.
    experiments : sequence of str, optional
        Experiments in table order (default: as they come in ``rows``).
    controls : sequence of (str, str)
        ``(experiment, control)`` pairs: adds a table of :func:`control_changes`.
    """
    if not rows:
        raise MusicRLError("no evaluated runs to tabulate")
    summary = summarize(rows)
    names = list(experiments) if experiments is not None else list(dict.fromkeys(r["experiment"] for r in rows))
    lines = ["## Evaluation (mean over seeds ± half-width of its 95 % interval: seed spread and evaluation noise)",
             ""]
    header = ["experiment", "set", "seeds", "iterations", *HEADLINE]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for exp in names:
        for r in summary:
            if r["experiment"] != exp:
                continue
            its = _float(r.get("iterations"))
            cells = [exp, r["set"], str(r["n_seeds"]), f"{its:.0f}" if np.isfinite(its) else "-"]
            cells += [_fmt(r.get(c, math.nan), r.get(f"{c}_ci")) for c in HEADLINE]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## The adversarial phase against pretraining alone (agent - pretrained, paired by seed)", ""]
    lines += ["| experiment | measure | better | pretrained | agent | change | seed spread | evaluation noise "
              "| beats |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for c in paired_changes(rows):
        if c["experiment"] in names:
            lines.append(
                f"| {c['experiment']} | {c['measure']} | {c['better']} | "
                f"{c['before']:.3f} | {c['after']:.3f} | {c['change']:+.3f} | {_fmt(c['spread'])} | "
                f"{_fmt(c['eval_noise'])} | {'yes' if c['beats'] else 'no'} |"
            )
    if controls:
        lines += ["", "## Against a control experiment (agent - control's agent, paired by seed)", ""]
        lines += ["| experiment | control | measure | better | control | experiment | change | seed spread "
                  "| evaluation noise | beats |", "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
        done = set()
        for c in control_changes(rows, controls):
            done.add((c["experiment"], c["control"]))
            lines.append(
                f"| {c['experiment']} | {c['control']} | {c['measure']} | "
                f"{c['better']} | {c['before']:.3f} | {c['after']:.3f} | "
                f"{c['change']:+.3f} | {_fmt(c['spread'])} | {_fmt(c['eval_noise'])} | "
                f"{'yes' if c['beats'] else 'no'} |"
            )
        for exp, control in controls:
            if (exp, control) not in done:
                lines.append(f"| {exp} | {control} | (no seed evaluated in both) | | | | | | | |")
    lines += ["", "## Targets (agent, mean over seeds)", ""]
    lines += ["| experiment | measure | value | bound | met | short by |", "|---|---|---:|---:|---|---:|"]
    for exp in names:
        if not any(r["experiment"] == exp and r["set"] == "agent" for r in summary):
            continue
        for t in target_checks(summary, exp):
            bound = ("<= " if t["measure"] in ("fresh_d_acc", "fresh_d_full_acc", "copy_rate") else ">= ")
            bound += _fmt(t["goal"])
            if t["measure"] == "in_key_rate":
                bound = "within 0.050 of real"
            lines.append(f"| {exp} | {t['measure']} | {_fmt(t['value'])} | {bound} | "
                         f"{'yes' if t['met'] else 'no'} | {'' if t['met'] else _fmt(t['gap'])} |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()})
    os.replace(tmp, path)


def write_results(
    out: str | os.PathLike, rows: Sequence[dict[str, Any]], *, controls: Sequence[tuple[str, str]] = ()
) -> list[Path]:
    """Write ``results.csv``, ``summary.csv`` and ``results.md`` (with the ``controls`` table of
    :func:`results_markdown`) into ``out``; return their paths."""
    root = Path(out).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MusicRLError(f"cannot create folder {str(root)!r}: {e.strerror or e}") from None
    paths = [root / "results.csv", root / "summary.csv", root / "results.md"]
    _write_csv(paths[0], rows)
    _write_csv(paths[1], summarize(rows))
    text = results_markdown(rows, controls=controls)
    tmp = paths[2].with_name(paths[2].name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, paths[2])
    return paths
