"""Where in a piece do its notes leave the key? In-key share step by step, before and after the critic.

The in-key share of the evaluation is one number per piece. This splits it by
step, each step's notes still measured against the key of the whole piece,
for the held-out chorales, the policy after pretraining alone and the policy
at the end of each run: the sets of the run's evaluation (``load_eval_sets``).
Training may mend a piece's opening and spoil its close, which one number per
piece hides. The table is the mean ± std over the runs given, in blocks of a
quarter of the piece and the last step.

Usage::

    python experiments/in_key_by_step.py --runs runs/sweep10b/default/seed? [--n 512] [--out FILE.md]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, runs_parser  # noqa: E402  (this folder, beside the script)


def main(argv: list[str] | None = None) -> int:
    parser = runs_parser(__doc__, "pieces per set")
    args = parser.parse_args(argv)

    import numpy as np

    from musicrl.evaluation.sets import load_eval_sets
    from musicrl.music.metrics import in_key_rate

    t0 = time.perf_counter()
    rows: dict[str, list[np.ndarray]] = {"real (held out)": [], "pretrained": [], "agent": []}
    n_steps = None
    for run in args.runs:
        # the evaluation's own sets: the same draws, at the run's sampling temperature
        ev = load_eval_sets(run, n=args.n, seed=args.seed, n_d_train=0)
        if "pretrained" not in ev.sets:
            print(f"{run}: no pretrained checkpoint, left out")
            continue
        if n_steps is not None and ev.cfg.n_steps != n_steps:
            parser.error(f"{run} has {ev.cfg.n_steps} steps per piece, the runs before it {n_steps}")
        n_steps, lp = ev.cfg.n_steps, ev.cfg.lowest_pitch
        for label, name in (("real (held out)", "real"), ("pretrained", "pretrained"), ("agent", "agent")):
            rows[label].append(in_key_rate(ev.sets[name], lowest_pitch=lp, per_step=True, pooled=True))
    if n_steps is None:
        parser.error("none of the runs has a pretrained checkpoint")
    n_real = len(ev.sets["real"])

    quarter = max(1, n_steps // 4)
    blocks = [(f"steps {a + 1}-{min(a + quarter, n_steps)}", slice(a, a + quarter))
              for a in range(0, n_steps, quarter)]
    blocks.append(("last step", slice(n_steps - 1, n_steps)))

    def cell(values: list[float], sign: str = "") -> str:
        return f"{np.mean(values):{sign}.3f} ± {np.std(values):.3f}"

    lines = [
        f"In-key share by position in the piece ({len(rows['agent'])} runs, {args.n} pieces per policy, "
        f"{n_real} held-out windows; notes pooled over the pieces at each step, each piece in its own key; "
        "mean ± std over runs)",
        "",
        "| set | " + " | ".join(name for name, _ in blocks) + " |",
        "|---|" + "---:|" * len(blocks),
    ]
    for label, per_run in rows.items():
        lines.append(f"| {label} | " + " | ".join(cell([float(np.nanmean(r[sl])) for r in per_run])
                                                 for _, sl in blocks) + " |")
    pre, agent = np.array(rows["pretrained"]), np.array(rows["agent"])
    lines.append("| agent - pretrained, paired | " + " | ".join(
        cell([float(np.nanmean(a[sl]) - np.nanmean(p[sl])) for a, p in zip(agent, pre)], "+") for _, sl in blocks)
        + " |")
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
