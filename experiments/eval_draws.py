"""How much of a change between two sets is the evaluation's own draw? The cheap measures over several draws.

One evaluation draws one split of the held-out pieces into the reference and
the real set, and one sample of each policy. The pitch-class overlap compares
a set's histogram with the reference's: a score of about twenty chorales,
whose keys decide much of it. This script evaluates each run again with
several evaluation seeds (the run stays the same; the reference halves and the
samples change), without the fresh discriminators, and reports:

* per run and measure, the real set (other held-out pieces: what music of
  the same source scores), the pretrained policy, the agent and their change,
  mean ± std over the draws (the std is the evaluation's noise on one run);
* the runs' changes averaged over the draws, with the sweep's verdict
  (:func:`musicrl.sweep.paired_changes`: the mean change goes the better way
  by more than the seed-to-seed spread, and every seed's change does).

Nothing in the run folders is written.

Usage::

    python experiments/eval_draws.py --runs runs/sweep_lp/default/seed? [--draws 5] [--n 256] [--out FILE.md]
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, runs_parser  # noqa: E402  (this folder, beside the script)

MEASURES = ("pitch_class_overlap", "in_key_rate", "consonant_chord_rate", "seq_clf_acc")
SETS = ("real", "pretrained", "agent")


def main(argv: list[str] | None = None) -> int:
    # the sweep's evaluation draws 256 pieces per set: the same n makes draw 0 that evaluation
    parser = runs_parser(__doc__, "pieces per set", n_default=256)
    parser.add_argument("--draws", type=int, default=5, help="evaluation seeds seed .. seed + draws - 1 (default 5)")
    args = parser.parse_args(argv)
    if args.draws < 2:
        parser.error(f"--draws must be at least 2 to measure the draws' spread, got {args.draws}")

    import numpy as np

    from musicrl.evaluate import evaluate_run
    from musicrl.sweep import BETTER, paired_changes

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
        table = {s: {m: [] for m in MEASURES} for s in SETS}
        for k in range(args.seed, args.seed + args.draws):
            evaluation = evaluate_run(path, n=args.n, seed=k, d_test=False, plots=False, write=False,
                                      progress=False)
            if "pretrained" not in evaluation["table"]:
                parser.error(f"{path} has no 'pretrained' checkpoint: there is no change to measure")
            for s in SETS:
                for m in MEASURES:
                    table[s][m].append(float(evaluation["table"][s][m]))
        for m in MEASURES:
            real = np.array(table["real"][m])
            before, after = np.array(table["pretrained"][m]), np.array(table["agent"][m])
            change = after - before
            cells = [f"{x.mean():.3f} ± {x.std(ddof=1):.3f}" for x in (real, before, after)]
            better_way = int(np.sum(BETTER[m] * change > 0))
            lines.append(f"| {path.parent.name}/{path.name} | {m} | " + " | ".join(cells)
                         + f" | {change.mean():+.3f} ± {change.std(ddof=1):.3f} | {better_way} of {args.draws} |")
        for s in SETS:
            # paired_changes pairs a run's sets by (experiment, seed): the run's place in --runs is key enough
            averaged.append({"experiment": path.parent.name, "seed": i, "set": s,
                             **{m: float(np.mean(table[s][m])) for m in MEASURES}})

    lines += [
        "",
        "The runs' changes averaged over the draws (agent - pretrained, paired by run):",
        "",
        "| experiment | measure | better | pretrained | agent | change | seed spread | beats |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for c in paired_changes(averaged):
        if c["measure"] in MEASURES:
            lines.append(f"| {c['experiment']} | {c['measure']} | {c['better']} | {c['before']:.3f} | "
                         f"{c['after']:.3f} | {c['change']:+.3f} | {c['spread']:.3f} | "
                         f"{'yes' if c['beats'] else 'no'} |")
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
