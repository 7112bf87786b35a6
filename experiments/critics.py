"""Which critic can tell the agent's music from real music? Fresh discriminators of each architecture.

For a trained run, every architecture ('cnn' and 'lstm' over log-mels, 'seq'
over the symbolic chords) is trained anew to tell held-out real clips from
random progressions, from the pretrained-only policy's pieces and from the
agent's (``musicrl.evaluation.evaluate.critic_comparison``: grouped folds, the same
clips and seed for every architecture), and the held-out accuracies are
printed as a markdown table (0.5: the critic cannot tell the sets apart).

Usage::

    python experiments/critics.py --run runs/<name> [--n 256] [--epochs 20] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit  # noqa: E402  (this folder, beside the script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--n", type=int, default=256, help="pieces per set (default 256)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per fold (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    from musicrl.evaluation.evaluate import critic_comparison
    from musicrl.evaluation.report import SET_LABELS
    from musicrl.evaluation.sets import load_eval_sets

    t0 = time.perf_counter()
    ev = load_eval_sets(args.run, n=args.n, seed=args.seed)
    acc = critic_comparison(ev, epochs=args.epochs, seed=args.seed)
    sets = list(next(iter(acc.values())))
    lines = [
        f"Held-out accuracy of fresh critics, real clips against each set (run `{args.run}`, "
        f"n = {args.n}, {args.epochs} epochs, 3 grouped folds)",
        "",
        "| critic | " + " | ".join(SET_LABELS[s] for s in sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    lines += [f"| {arch} | " + " | ".join(f"{acc[arch][s]:.3f}" for s in sets) + " |" for arch in acc]
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
