"""Where in a piece do its notes leave the key? In-key share step by step, before and after the critic.

The in-key share of the evaluation is one number per piece. This splits it by
step, each step's notes still measured against the key of the whole piece,
for the held-out chorales, the policy after pretraining alone and the policy
at the end of each run, all sampled as the evaluation samples them. A critic
paid only for its judgment of the finished piece may teach the opening and
spoil the ending, which one number per piece hides. The table is the mean ±
std over the runs given, in blocks of a quarter of the piece and the last step.

Usage::

    python experiments/in_key_by_step.py --runs runs/sweep10b/default/seed? [--n 512] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit  # noqa: E402  (this folder, beside the script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="trained run folders")
    parser.add_argument("--n", type=int, default=512, help="pieces per set (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    import numpy as np

    from musicrl.evaluate import load_eval_sets
    from musicrl.metrics import in_key_rate
    from musicrl.train import load_policy

    t0 = time.perf_counter()
    rows: dict[str, list[np.ndarray]] = {"real (held out)": [], "pretrained": [], "agent": []}
    n_steps = None
    for run in args.runs:
        ev = load_eval_sets(run, n=args.n, seed=args.seed)
        n_steps, lp = ev.cfg.n_steps, ev.cfg.lowest_pitch
        sets = {"real (held out)": ev.sets["real"]}
        for name, label in (("pretrained", "pretrained"), ("latest", "agent")):
            # the same random numbers for both policies, as the temperature study draws them
            draws = np.random.default_rng([args.seed, 2])
            sets[label] = load_policy(run, name).sample(args.n, draws, n_steps=n_steps).seqs
        for label, seqs in sets.items():
            rows[label].append(in_key_rate(seqs, lowest_pitch=lp, per_step=True, pooled=True))

    quarter = max(1, n_steps // 4)
    blocks = [(f"steps {a + 1}-{min(a + quarter, n_steps)}", slice(a, a + quarter)) for a in range(0, n_steps, quarter)]
    blocks.append(("last step", slice(n_steps - 1, n_steps)))

    def cell(values: list[float], sign: str = "") -> str:
        return f"{np.mean(values):{sign}.3f} ± {np.std(values):.3f}"

    lines = [
        f"In-key share by position in the piece ({len(args.runs)} runs, n = {args.n} per set, notes pooled "
        "over the pieces at each step, each piece in its own key; mean ± std over runs)",
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
