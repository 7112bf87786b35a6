"""How much of a change between two sets is the evaluation's own draw? The cheap measures over several draws.

One evaluation draws one split of the held-out pieces into the reference and
the real set, and one sample of each policy. The pitch-class overlap compares
a set's histogram with the reference's: a score of about twenty chorales,
whose keys decide much of it; the scale-degree overlap compares the same
notes counted from each piece's tonic, which the keys do not move. This
script evaluates each run again with several evaluation seeds (the run stays
the same; the reference halves and the samples change), without the fresh
discriminators, and reports:

* per run and measure, the real set (other held-out pieces: what music of
  the same source scores), the pretrained policy, the agent and their change,
  mean ± std over the draws (the std is the evaluation's noise on one run);
* the runs' changes averaged over the draws, with the sweep's verdict
  (:func:`musicrl.evaluation.sweep.paired_changes`: the mean change goes the better way
  by more than the seed-to-seed spread, and every seed's change does).

As a diagnostic beside the evaluation's pitch-class overlap, each set's
overlap is also measured against all the run's training windows
(``pc_overlap_train``): hundreds of pieces instead of twenty, so what it
shows is whether the policy's pitch classes move towards or away from the
music it learns from, with little of the reference's noise. It is not the
evaluation's measure, and judges nothing the evaluation judges.

Nothing in the run folders is written.

Usage::

    python experiments/eval_draws.py --runs runs/sweep_lp/default/seed? [--draws 5] [--n 1024] [--out FILE.md]
        [--data DIR]   # the runs' data folder, for runs moved from another checkout
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, runs_parser  # noqa: E402  (this folder, beside the script)

MEASURES = ("pitch_class_overlap", "scale_degree_overlap", "in_key_rate", "consonant_chord_rate", "seq_clf_acc")
TRAIN_OVERLAP = "pc_overlap_train"
SETS = ("real", "pretrained", "agent")


def main(argv: list[str] | None = None) -> int:
    # an evaluation draws 1024 pieces per set: the same n makes draw 0 that evaluation
    parser = runs_parser(__doc__, "pieces per set", n_default=1024)
    parser.add_argument("--draws", type=int, default=5, help="evaluation seeds seed .. seed + draws - 1 (default 5)")
    parser.add_argument("--data", metavar="DIR", help="the runs' data folder instead of the one each run recorded")
    args = parser.parse_args(argv)
    if args.draws < 2:
        parser.error(f"--draws must be at least 2 to measure the draws' spread, got {args.draws}")

    import numpy as np

    from musicrl.music.data import seqs_to_windows
    from musicrl.evaluation.evaluate import evaluate_run
    from musicrl.evaluation.sets import load_eval_sets
    from musicrl.music.metrics import pitch_class_overlap
    from musicrl.evaluation.sweep import BETTER, paired_changes

    measures = (*MEASURES, TRAIN_OVERLAP)
    better = {**BETTER, TRAIN_OVERLAP: BETTER["pitch_class_overlap"]}

    t0 = time.perf_counter()
    lines = [
        f"Cheap measures of each run over {args.draws} evaluation draws (seeds {args.seed} to "
        f"{args.seed + args.draws - 1}, n = {args.n} per set): mean ± std over the draws",
        "",
        "| run | measure | real (held out) | pretrained | agent | change | draws with the change the better way |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    averaged = []
    for i, run in enumerate(args.runs):
        path = Path(run)
        table = {s: {m: [] for m in measures} for s in SETS}
        for k in range(args.seed, args.seed + args.draws):
            evaluation = evaluate_run(path, n=args.n, seed=k, d_test=False, data_dir=args.data, plots=False,
                                      write=False, progress=False)
            if "pretrained" not in evaluation["table"]:
                parser.error(f"{path} has no 'pretrained' checkpoint: there is no change to measure")
            # the same seed draws the same sets as the evaluation above
            ev = load_eval_sets(path, n=args.n, seed=k, n_d_train=0, data_dir=args.data)
            cfg = ev.cfg
            # the windows the teacher-forced steps learn from
            train_windows = seqs_to_windows(ev.train_seqs, n_steps=cfg.n_steps, hop=cfg.window_hop,
                                            n_pitches=cfg.n_pitches)
            for s in SETS:
                for m in MEASURES:
                    table[s][m].append(float(evaluation["table"][s][m]))
                table[s][TRAIN_OVERLAP].append(
                    pitch_class_overlap(ev.sets[s], train_windows, lowest_pitch=cfg.lowest_pitch))
        for m in measures:
            real = np.array(table["real"][m])
            before, after = np.array(table["pretrained"][m]), np.array(table["agent"][m])
            change = after - before
            cells = [f"{x.mean():.3f} ± {x.std(ddof=1):.3f}" for x in (real, before, after)]
            better_way = int(np.sum(better[m] * change > 0))
            lines.append(f"| {path.parent.name}/{path.name} | {m} | " + " | ".join(cells)
                         + f" | {change.mean():+.3f} ± {change.std(ddof=1):.3f} | {better_way} of {args.draws} |")
        for s in SETS:
            # paired_changes pairs a run's sets by (experiment, seed): the run's place in --runs is key enough
            averaged.append({"experiment": path.parent.name, "seed": i, "set": s,
                             **{m: float(np.mean(table[s][m])) for m in MEASURES}})
            # the diagnostic goes under the evaluation's name, as a row of its own, so the sweep's verdict judges it
            averaged.append({"experiment": f"{path.parent.name} ({TRAIN_OVERLAP})", "seed": i, "set": s,
                             "pitch_class_overlap": float(np.mean(table[s][TRAIN_OVERLAP]))})

    lines += [
        "",
        "The runs' changes averaged over the draws (agent - pretrained, paired by run):",
        "",
        "| experiment | measure | better | pretrained | agent | change | seed spread | beats |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for c in paired_changes(averaged):
        if c["measure"] in MEASURES:
            diagnostic = c["experiment"].endswith(f" ({TRAIN_OVERLAP})")
            if diagnostic:
                c = {**c, "experiment": c["experiment"].removesuffix(f" ({TRAIN_OVERLAP})"), "measure": TRAIN_OVERLAP}
            lines.append(f"| {c['experiment']} | {c['measure']} | {c['better']} | {c['before']:.3f} | "
                         f"{c['after']:.3f} | {c['change']:+.3f} | {c['spread']:.3f} | "
                         f"{'yes' if c['beats'] else 'no'} |")
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
