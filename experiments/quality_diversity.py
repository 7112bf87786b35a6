"""Does the critic beat maximum likelihood's quality-diversity curve, not only one of its points?

Each policy is sampled at every temperature from the same random numbers and scored against every
window of its run's held-out chorales (the real row: each fold of them against the others,
:func:`musicrl.evaluation.sets.fold_masks`, once for all the runs that share those pieces): quality
(in-key share, consonant chords, scale-degree overlap with the chorales, the feature classifier's
accuracy at telling the set from the chorales, lower is better) and diversity (distinct chords per
piece, pitch-class entropy per piece). A point is the mean over the policy's runs (seeds); its error
bar is the 95 % half-width of that mean from the seed spread and each evaluation's own noise
together (bootstrap over pieces for set measures, binomial for the classifier), as the sweep's
verdict uses.

The first policy given is the control: every other policy's points are
judged against the control's curve at their own diversity
(:func:`musicrl.evaluation.frontier.gap_to_curve`), for every pair of a
quality and a diversity measure. A policy *beats the curve* at a temperature
when it is above it on at least one pair and below it on none, every quality
measure judged at least once (a point more or less diverse than the whole
curve cannot be judged against it on that diversity measure).

When every policy has as many runs as the control, each is also judged
*paired by seed* (:func:`musicrl.evaluation.frontier.paired_gap_to_curve`):
runs are paired by their order on the command line, the i-th run of a policy
against the curve of the control's i-th run, so give every policy's runs in
the same seed order. Runs with one seed share the data split and the
pretrained policy; the mean of the per-run gaps, judged against the spread of
those gaps, cancels what they share. The rule for beating the curve is the
same.

Beside the curve, each set's long-range structure
(:func:`musicrl.evaluation.compare.long_range_measures`: the same key in
both halves, the last chord on the tonic, the self-similarity of 4-chord
segments, the in-key share of the first and last quarter) and its copies of
8-chord runs of the training pieces are reported by temperature and, paired
by seed, as each policy minus the control; they are
not judged against the curve, since held-out windows end anywhere in their
pieces and nearer the real row is better, not more.

Usage::

    python experiments/quality_diversity.py \\
        --policy "maximum likelihood" runs/len32/no_critic/seed? \\
        --policy agent runs/len32/default/seed? \\
        [--policy pretrained runs/len32/default/seed{0,1,2}:pretrained] \\
        [--temperatures 0.6 0.7 0.8 0.9 1.0 1.1 1.2] [--n 256] --out experiments/results/qd32

Writes ``<out>/qd.md`` (the tables and verdicts), ``qd.json`` (every number,
the paired verdicts under ``paired_verdicts``, the
long-range differences under ``long_range_differences``) and ``qd.png`` (quality
against diversity, one line per policy). Each scored set is kept in
``<out>/cache/`` (or ``--cache``), so a later call with more policies scores
only the new ones; the cache key names the reference the sets are scored
against (:data:`REFERENCE`), so a set scored against another is scored again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# measure: higher is better
QUALITY = {"in_key_rate": True, "consonant_chord_rate": True, "scale_degree_overlap": True, "seq_clf_acc": False}
DIVERSITY = ("distinct_chord_ratio", "pitch_class_entropy")
LABELS = {"in_key_rate": "in-key share", "consonant_chord_rate": "consonant chords",
          "scale_degree_overlap": "scale-degree overlap", "seq_clf_acc": "feature classifier acc. (0.5 = real)",
          "distinct_chord_ratio": "distinct chords per step",
          "pitch_class_entropy": "pitch-class entropy (bits)"}
MEASURES = (*QUALITY, *DIVERSITY)
# Reported beside the curve, not judged against it: what only a whole piece shows (the names of
# musicrl.evaluation.compare.LONG_RANGE; windows of the chorales end anywhere, so nearer the real row is better,
# not more), and how often a piece copies an 8-chord run of a training piece, since a policy that has learnt
# its few long training windows by heart scores well on every quality measure.
LONG_RANGE = ("key_consistency", "ends_on_tonic", "self_similarity", "in_key_first_quarter", "in_key_last_quarter",
              "copy_rate")
LABELS.update({"key_consistency": "same key in both halves", "ends_on_tonic": "ends on the tonic chord",
               "self_similarity": "4-chord self-similarity", "in_key_first_quarter": "in-key share, first quarter",
               "in_key_last_quarter": "in-key share, last quarter",
               "copy_rate": "copies 8 chords of a training piece"})
SCORED = (*MEASURES, *LONG_RANGE)
# what every set is scored against, in the cache key: a set scored against another reference is not read back
REFERENCE = ("every held-out piece, the same in every draw; the real row by folds of two pieces at least, "
             "longest first; a side cut down for the classifier keeps every piece it can")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", nargs="+", action="append", required=True, metavar=("NAME", "RUN"),
                        help="a policy's name and its run folders (RUN or RUN:CHECKPOINT, default latest); "
                             "the first --policy is the control; when every policy has as many runs as the "
                             "control, runs are also paired by their order on the command line (give them "
                             "in the same seed order)")
    parser.add_argument("--temperatures", nargs="+", type=float, default=[0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    parser.add_argument("--n", type=int, default=256, help="pieces per set (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=300, help="bootstrap resamples per set (default 300)")
    parser.add_argument("--out", required=True, help="folder of qd.md, qd.json and qd.png")
    parser.add_argument("--cache", help="folder of the scored sets (default <out>/cache), to share between calls")
    args = parser.parse_args(argv)
    if len(args.policy) < 2 or any(len(p) < 2 for p in args.policy):
        parser.error("give at least two --policy NAME RUN [RUN ...]: the control first")
    return args


def _score(seqs, reference, groups, args, rng, *, lowest_pitch, train_seqs, gen_groups=None,
           resample_reference=False) -> dict:
    """Each measure of one set against ``reference`` (and its copies of ``train_seqs``): (value, 95 % half-width
    of this evaluation alone)."""
    import numpy as np

    from musicrl.evaluation.compare import (COPY_RUN_LENGTH, SEQ_SPLITS, long_range_measures, row_intervals,
                                            set_measure_intervals)
    from musicrl.evaluation.intervals import half_width
    from musicrl.evaluation.two_sample import fewest_pieces, seq_two_sample_test
    from musicrl.music.metrics import copy_rate, summarize

    lp = lowest_pitch
    row = summarize(seqs, lowest_pitch=lp, reference_seqs=reference)
    # as the evaluation's test: fewer folds when a side has fewer pieces (a fold of the real row holds two at least)
    n_splits = min(SEQ_SPLITS, fewest_pieces(reference, seqs, real_groups=groups, gen_groups=gen_groups))
    test = seq_two_sample_test(reference, seqs, lowest_pitch=lp, seed=args.seed, real_groups=groups,
                               gen_groups=gen_groups, n_splits=n_splits)
    row["seq_clf_acc"] = test["accuracy"]
    row["copy_rate"] = copy_rate(seqs, train_seqs, run_length=COPY_RUN_LENGTH)
    boot = set_measure_intervals(seqs, reference, lowest_pitch=lp, real_groups=groups, gen_groups=gen_groups,
                                 n_resamples=args.resamples, resample_reference=resample_reference, rng=rng)
    result = {"row": {m: row[m] for m in (*MEASURES, "copy_rate")}, "seq_test": test, "d_test": {},
              "d_full_test": {}}
    n_gen = len(seqs) if gen_groups is None else len(np.unique(gen_groups))
    intervals = row_intervals(result, boot, n_real_pieces=len(np.unique(groups)), n_gen_pieces=n_gen)
    long_range = long_range_measures(seqs, lowest_pitch=lp, groups=gen_groups, n_resamples=args.resamples, rng=rng)
    return {**{m: (row[m], half_width(intervals[m])) for m in (*MEASURES, "copy_rate")},
            **{m: (value, half_width((low, high))) for m, (value, low, high) in long_range.items()}}


def _score_real(ev, args, rng) -> dict:
    """The held-out pieces' own scores: each fold against the others (whose draw is noise), the mean."""
    from musicrl.evaluation.sets import fold_masks, mean_over_folds

    groups = ev.groups["reference"]
    return mean_over_folds([_score(ev.reference[m], ev.reference[~m], groups[~m], args, rng,
                                   lowest_pitch=ev.cfg.lowest_pitch, train_seqs=ev.train_seqs,
                                   gen_groups=groups[m], resample_reference=True)
                            for m in fold_masks(ev)])


def _measure(args) -> tuple[dict, dict]:
    """{policy: {temperature: {measure: [(value, eval half-width) per run]}}} and the real held-out row."""
    import numpy as np

    from musicrl.evaluation.sets import load_eval_sets
    from musicrl.learning.load import load_policy

    points: dict = {}
    eval_sets: dict = {}

    def evaluation(run: str):
        # the held-out sets are drawn only for a run with a set still to score
        if run not in eval_sets:
            eval_sets[run] = load_eval_sets(run, n=args.n, seed=args.seed)
        return eval_sets[run]

    def scored(run: str, what: str, temperature: float | None, score) -> dict:
        # a set already scored (by an earlier call with the same cache) is read back, not drawn again
        key = json.dumps([str(Path(run).resolve()), what, temperature, args.n, args.seed, args.resamples, SCORED,
                          REFERENCE])
        cache = Path(args.cache or Path(args.out) / "cache") / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
        if cache.exists():
            return json.loads(cache.read_text())
        ev = evaluation(run)
        rng = np.random.default_rng([args.seed, 1 if temperature is None else 3])
        out = score(ev, rng)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, **out}))
        return out

    runs_seen: set = set()
    reals: list = []
    for name, *specs in args.policy:
        for spec in specs:
            run, _, checkpoint = spec.partition(":")
            if run not in runs_seen:
                runs_seen.add(run)
                scores = scored(run, "real", None, lambda ev, rng: _score_real(ev, args, rng))
                scores = {m: tuple(scores[m]) for m in SCORED}
                # runs that share their held-out pieces score them with the same draws: one measurement, which
                # would narrow the real row's interval with every run if it were counted once per run
                if scores not in reals:
                    reals.append(scores)
            loaded: list = []  # the policy, loaded for the first set not in the cache

            def sample(ev, temperature, run=run, checkpoint=checkpoint or "latest", loaded=loaded):
                if not loaded:
                    loaded.append(load_policy(run, checkpoint))
                draws = np.random.default_rng([args.seed, 2])
                return loaded[0].sample(args.n, draws, n_steps=ev.cfg.n_steps, temperature=temperature).seqs

            for temperature in args.temperatures:
                result = scored(run, checkpoint or "latest", temperature, lambda ev, rng, t=temperature: _score(
                    sample(ev, t), ev.reference, ev.groups["reference"], args, rng, lowest_pitch=ev.cfg.lowest_pitch,
                    train_seqs=ev.train_seqs))
                cell = points.setdefault(name, {}).setdefault(temperature, {m: [] for m in SCORED})
                for m in SCORED:
                    cell[m].append(tuple(result[m]))
            print(f"  {name}: {spec} done", flush=True)
    return points, {m: [scores[m] for scores in reals] for m in SCORED}


def _summary(cells: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean over runs and its 95 % half-width from the seed spread and the evaluations' noise."""
    import numpy as np

    from musicrl.evaluation.sweep import mean_interval

    values = [v for v, _ in cells]
    return float(np.nanmean(values)), mean_interval(values, [hw for _, hw in cells])


def _judge_all(policies: list[str], temperatures: list[float], judge) -> dict:
    """{policy: {temperature: {quality: {diversity: judge(policy, temperature, quality, diversity, higher)}}}}."""
    out: dict = {}
    for name in policies:
        for t in temperatures:
            for q, higher in QUALITY.items():
                for d in DIVERSITY:
                    out.setdefault(name, {}).setdefault(t, {}).setdefault(q, {})[d] = judge(name, t, q, d, higher)
    return out


def _verdicts(table: dict, control: str, temperatures: list[float]) -> dict:
    """{policy: {temperature: {quality: {diversity: CurveGap as dict}}}} against the control's curve."""
    from musicrl.evaluation.frontier import gap_to_curve

    curve = table[control]

    def judge(name: str, t: float, q: str, d: str, higher: bool) -> dict:
        point = table[name][t]
        return gap_to_curve([curve[c][d][0] for c in temperatures], [curve[c][q][0] for c in temperatures],
                            [curve[c][q][1] for c in temperatures], point[d][0], point[q][0], point[q][1],
                            higher_is_better=higher)._asdict()

    return _judge_all([name for name in table if name != control], temperatures, judge)


def _paired_verdicts(points: dict, control: str, temperatures: list[float]) -> dict:
    """As :func:`_verdicts`, each run against the curve of the control's run of the same order: the mean
    gap's CurveGap as dict, with ``runs``, each run's own."""
    import numpy as np

    from musicrl.evaluation.frontier import paired_gap_to_curve

    def split(cells) -> tuple[np.ndarray, np.ndarray]:
        # [..., (value, eval half-width)] -> values, half-widths
        a = np.asarray(cells, dtype=np.float64)
        return a[..., 0], a[..., 1]

    # per measure, each control run's curve over the temperatures: shape (runs, temperatures)
    curves = {m: split(np.swapaxes([points[control][c][m] for c in temperatures], 0, 1)) for m in MEASURES}

    def judge(name: str, t: float, q: str, d: str, higher: bool) -> dict:
        (x, _), (y, hw) = split(points[name][t][d]), split(points[name][t][q])
        paired = paired_gap_to_curve(curves[d][0], curves[q][0], curves[q][1], x, y, hw, higher_is_better=higher)
        return {**paired.mean._asdict(), "runs": [g._asdict() for g in paired.runs]}

    return _judge_all([name for name in points if name != control], temperatures, judge)


def _beats(per_quality: dict) -> bool:
    """Above the curve on at least one pair of measures and below it on none, every quality measure judged
    against at least one diversity measure (a point outside the curve's range of a diversity is not judged)."""
    verdicts = [g["verdict"] for by_d in per_quality.values() for g in by_d.values()]
    judged = all(any(g["verdict"] != "outside" for g in by_d.values()) for by_d in per_quality.values())
    return judged and "below" not in verdicts and "above" in verdicts


def _verdict_table(verdicts: dict, heading: str) -> list[str]:
    """One row per policy and temperature: each pair of measures' verdict and whether it beats the curve."""
    lines = ["", heading, "",
             "| policy | temperature | " + " | ".join(f"{LABELS[q]} vs {LABELS[d]}" for q in QUALITY
                                                   for d in DIVERSITY) + " | beats the curve |",
             "|---|---:|" + "---|" * (len(QUALITY) * len(DIVERSITY) + 1)]
    for name, by_t in verdicts.items():
        for t, per_q in by_t.items():
            gaps = [per_q[q][d] for q in QUALITY for d in DIVERSITY]
            cells = [g["verdict"] if g["verdict"] == "outside"
                     else f"{g['verdict']} ({g['gap']:+.3f} ± {g['margin']:.3f})" for g in gaps]
            lines.append(f"| {name} | {t:g} | " + " | ".join(cells) + f" | {'yes' if _beats(per_q) else 'no'} |")
    return lines


def _markdown(table: dict, real: dict, verdicts: dict | None, paired: dict | None, control: str, args,
              n_runs: dict) -> list[str]:
    def cell(v: tuple[float, float]) -> str:
        return f"{v[0]:.3f} ± {v[1]:.3f}"

    lines = [f"Quality and diversity by sampling temperature, {args.n} pieces per set, mean over runs ± 95 % "
             "half-width (seed spread and evaluation noise)", "",
             "| policy | runs | temperature | " + " | ".join(LABELS[m] for m in MEASURES) + " |",
             "|---|---:|---:|" + "---:|" * len(MEASURES),
             "| real (held out) | | | " + " | ".join(cell(real[m]) for m in MEASURES) + " |"]
    for name, by_t in table.items():
        for t, row in by_t.items():
            lines.append(f"| {name} | {n_runs[name]} | {t:g} | " + " | ".join(cell(row[m]) for m in MEASURES) + " |")
    if verdicts is None:
        return lines + ["", "No curve to judge against: one temperature."]
    lines += _verdict_table(verdicts, f"Against the curve of **{control}** (gap: quality minus the curve's at the "
                                      "same diversity, positive = better; margin: 95 % half-width)")
    if paired is None:
        return lines + ["", f"Not paired by seed: the policies do not all have as many runs as **{control}**."]
    return lines + _verdict_table(
        paired, f"Paired by seed against **{control}**: each run against the curve of the {control} run given in "
                "the same place on the command line (gap: the mean over runs of each run's gap, positive = better; "
                "margin: 95 % half-width from the gaps' spread over runs and each gap's own margin)")


def _paired_differences(points: dict, control: str) -> dict:
    """{policy: {temperature: {measure: (mean over runs of the run's value minus its control run's, 95 %
    half-width)}}}, runs paired by their order, for the long-range measures."""
    import numpy as np

    out: dict = {}
    for name, by_t in points.items():
        if name == control:
            continue
        for t, cells in by_t.items():
            for m in LONG_RANGE:
                (ours, ours_hw), (theirs, theirs_hw) = (np.asarray(c, dtype=np.float64).T
                                                        for c in (cells[m], points[control][t][m]))
                out.setdefault(name, {}).setdefault(t, {})[m] = _summary(list(zip(ours - theirs,
                                                                                   np.hypot(ours_hw, theirs_hw))))
    return out


def _long_range_lines(table: dict, real: dict, differences: dict | None, control: str, n_runs: dict) -> list[str]:
    """The long-range measures by temperature, and each policy minus the control, paired by seed."""
    def cell(v: tuple[float, float], sign: str = "") -> str:
        return f"{v[0]:{sign}.3f} ± {v[1]:.3f}"

    head = "| " + " | ".join(LABELS[m] for m in LONG_RANGE) + " |"
    lines = ["", "Long-range structure and copying (reported, not judged against the curve: the held-out windows "
             "end anywhere in their pieces, so nearer the real row is better, not more)", "",
             "| policy | runs | temperature " + head, "|---|---:|---:|" + "---:|" * len(LONG_RANGE),
             "| real (held out) | | | " + " | ".join(cell(real[m]) for m in LONG_RANGE) + " |"]
    for name, by_t in table.items():
        for t, row in by_t.items():
            lines.append(f"| {name} | {n_runs[name]} | {t:g} | " + " | ".join(cell(row[m]) for m in LONG_RANGE) + " |")
    if differences:
        lines += ["", f"Minus **{control}** at the same temperature, paired by seed (mean of the per-run differences "
                  "± 95 % half-width from their spread and each evaluation's noise)", "",
                  "| policy | temperature " + head, "|---|---:|" + "---:|" * len(LONG_RANGE)]
        for name, by_t in differences.items():
            for t, row in by_t.items():
                lines.append(f"| {name} | {t:g} | " + " | ".join(cell(row[m], "+") for m in LONG_RANGE) + " |")
    return lines


def _plot(table: dict, real: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(QUALITY), len(DIVERSITY), figsize=(5.2 * len(DIVERSITY), 3.6 * len(QUALITY)))
    for i, q in enumerate(QUALITY):
        for j, d in enumerate(DIVERSITY):
            ax = axes[i, j]
            for name, by_t in table.items():
                ts = sorted(by_t)
                x, y = [by_t[t][d] for t in ts], [by_t[t][q] for t in ts]
                ax.errorbar([v for v, _ in x], [v for v, _ in y], xerr=[h for _, h in x], yerr=[h for _, h in y],
                            marker="o", ms=3, capsize=2, label=name)
                for t, (xv, _), (yv, _) in zip(ts, x, y):
                    if t in (ts[0], ts[-1]):
                        ax.annotate(f"T={t:g}", (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.errorbar([real[d][0]], [real[q][0]], xerr=[real[d][1]], yerr=[real[q][1]], marker="*", ms=10,
                        color="k", capsize=2, label="real (held out)")
            ax.set_xlabel(LABELS[d])
            ax.set_ylabel(LABELS[q])
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Quality against diversity over sampling temperatures (95 % intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    points, real_cells = _measure(args)
    table = {name: {t: {m: _summary(cells[m]) for m in SCORED} for t, cells in by_t.items()}
             for name, by_t in points.items()}
    real = {m: _summary(real_cells[m]) for m in SCORED}
    control = args.policy[0][0]
    n_runs = {name: len(specs) for name, *specs in args.policy}
    # a curve joins two temperatures at least; pairing by order needs one control run for every run of a policy
    curve, pairs = len(set(args.temperatures)) > 1, len(set(n_runs.values())) == 1
    verdicts = _verdicts(table, control, args.temperatures) if curve else None
    paired = _paired_verdicts(points, control, args.temperatures) if curve and pairs else None
    differences = _paired_differences(points, control) if pairs else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = _markdown(table, real, verdicts, paired, control, args, n_runs)
    lines += _long_range_lines(table, real, differences, control, n_runs)
    (out / "qd.md").write_text("\n".join(lines) + "\n")
    def by_temperature(nested: dict) -> dict:
        return {name: {str(t): row for t, row in by_t.items()} for name, by_t in nested.items()}

    (out / "qd.json").write_text(json.dumps(
        {"policies": {name: specs for name, *specs in args.policy}, "temperatures": args.temperatures, "n": args.n,
         "seed": args.seed, "real": real, "table": by_temperature(table),
         "verdicts": None if verdicts is None else by_temperature(verdicts),
         "paired_verdicts": None if paired is None else by_temperature(paired),
         "long_range_differences": None if differences is None else by_temperature(differences),
         "per_run": by_temperature(points)}, indent=1) + "\n")
    _plot(table, real, out / "qd.png")
    print("\n".join(lines))
    print(f"\nwrote {out}/qd.md, qd.json, qd.png ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
