"""What does a colder sampling temperature buy? The pretrained and trained policies at several temperatures.

A generator trained against a critic is often only trading diversity for
quality, which lowering the temperature of the maximum-likelihood model does
too (Caccia et al., "Language GANs falling short", 2020). For each run, the
policy after pretraining alone and the policy at the end are sampled at each
temperature, from the same random numbers, and scored against the run's
held-out chorales with the symbolic measures of the evaluation and its
feature classifier (no fresh discriminator: these are the cheap ones). The table is the mean ± std over
the runs given.

Usage::

    python experiments/temperature.py --runs runs/sweep10/default/seed? [--temperatures 1 0.9 0.8 0.7]
        [--n 256] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit  # noqa: E402  (this folder, beside the script)

MEASURES = ("in_key_rate", "consonant_chord_rate", "pitch_class_overlap", "distinct_chord_ratio",
            "top3_pitch_share", "voice_leading", "seq_clf_acc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="trained run folders")
    parser.add_argument("--temperatures", nargs="+", type=float, default=[1.0, 0.9, 0.8, 0.7])
    parser.add_argument("--n", type=int, default=256, help="pieces per set (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    import numpy as np

    from musicrl.evaluation.sets import fold_masks, load_eval_sets, mean_over_folds
    from musicrl.evaluation.compare import SEQ_SPLITS
    from musicrl.evaluation.two_sample import fewest_pieces, seq_two_sample_test
    from musicrl.music.metrics import summarize
    from musicrl.learning.load import load_policy

    t0 = time.perf_counter()
    rows: dict[tuple[str, float], list[dict]] = {}
    reals = []
    for run in args.runs:
        ev = load_eval_sets(run, n=args.n, seed=args.seed)
        lp = ev.cfg.lowest_pitch

        def measure(seqs, reference=ev.reference, groups=None, reference_groups=ev.groups["reference"]):
            row = summarize(seqs, lowest_pitch=lp, reference_seqs=reference)
            # fewer folds when a side has fewer pieces, as the evaluation's test (a real fold holds two at least)
            n_splits = min(SEQ_SPLITS, fewest_pieces(reference, seqs, real_groups=reference_groups, gen_groups=groups))
            test = seq_two_sample_test(reference, seqs, lowest_pitch=lp, seed=args.seed, n_splits=n_splits,
                                       real_groups=reference_groups, gen_groups=groups)
            return {**row, "seq_clf_acc": test["accuracy"]}

        # each fold of the held-out pieces against the others: never a piece against itself
        pieces = ev.groups["reference"]
        reals.append(mean_over_folds([measure(ev.reference[m], ev.reference[~m], pieces[m], pieces[~m])
                                      for m in fold_masks(ev)]))
        for name in ("pretrained", "latest"):
            policy = load_policy(run, name)
            for temperature in args.temperatures:
                draws = np.random.default_rng([args.seed, 2])
                seqs = policy.sample(args.n, draws, n_steps=ev.cfg.n_steps, temperature=temperature).seqs
                row = measure(seqs)
                rows.setdefault(("pretrained" if name == "pretrained" else "agent", temperature), []).append(row)

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}"

    lines = [
        f"Symbolic measures against held-out chorales by sampling temperature ({len(args.runs)} runs, "
        f"n = {args.n} per set, mean ± std over runs)",
        "",
        "| policy | temperature | " + " | ".join(MEASURES) + " |",
        "|---|---:|" + "---:|" * len(MEASURES),
        "| real (held out) | | " + " | ".join(cell([r[m] for r in reals]) for m in MEASURES) + " |",
    ]
    for (policy, temperature), rs in rows.items():
        lines.append(f"| {policy} | {temperature:g} | " + " | ".join(cell([r[m] for r in rs]) for m in MEASURES)
                     + " |")
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
