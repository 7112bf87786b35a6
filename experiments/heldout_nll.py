"""Does the policy learn the music or the training pieces? Its NLL on training and held-out windows.

The evaluation samples the policies; this scores real music under them
instead. For the policy after pretraining alone and at the end of each run it
gives the negative log-likelihood per chord (nats) of windows of the training
pieces and of the held-out chorales (the evaluation's own held-out windows,
``load_eval_sets``). Held-out chords outside the policy's vocabulary can only
come through its ``<other>`` branch and cost tens of nats each, so the
held-out NLL is also given over the vocabulary chords alone. Training NLL
falling while held-out NLL rises is a policy learning its training windows by
heart. The table is the mean ± std over the runs given.

Usage::

    python experiments/heldout_nll.py --runs runs/sweep10b/default/seed? [--n 512] [--out FILE.md]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, runs_parser  # noqa: E402  (this folder, beside the script)


def main(argv: list[str] | None = None) -> int:
    parser = runs_parser(__doc__, "windows of each kind at most")
    args = parser.parse_args(argv)

    import numpy as np

    from musicrl.learning.agent import in_vocabulary
    from musicrl.music.data import seqs_to_windows
    from musicrl.evaluation.evaluate import load_eval_sets
    from musicrl.learning.load import load_policy

    t0 = time.perf_counter()
    columns = ("training windows", "held-out windows", "held-out, vocabulary chords", "held-out chords in vocabulary")
    rows: dict[str, list[list[float]]] = {"pretrained": [], "agent": []}
    for run in args.runs:
        ev = load_eval_sets(run, n=args.n, seed=args.seed, n_d_train=0)
        if "pretrained" not in ev.sets:
            print(f"{run}: no pretrained checkpoint, left out")
            continue
        cfg = ev.cfg
        held = ev.sets["real"]
        train = seqs_to_windows(ev.train_seqs, n_steps=cfg.n_steps, hop=cfg.window_hop)
        pick = np.random.default_rng([args.seed, 8]).permutation(len(train))[: len(held)]
        train = train[np.sort(pick)]
        for label, checkpoint in (("pretrained", "pretrained"), ("agent", "latest")):
            policy = load_policy(run, checkpoint)
            held_lp = policy.log_prob(held)
            if policy.vocab is not None:
                in_vocab = in_vocabulary(policy.vocab, held)
            else:
                in_vocab = np.ones(held_lp.shape, bool)
            rows[label].append([-policy.log_prob(train).mean(), -held_lp.mean(), -held_lp[in_vocab].mean(),
                                in_vocab.mean()])
    if not rows["agent"]:
        parser.error("none of the runs has a pretrained checkpoint")

    lines = [
        f"Negative log-likelihood per chord in nats ({len(rows['agent'])} runs, {len(held)} windows of each kind; "
        "mean ± std over runs)",
        "",
        "| policy | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, values in rows.items():
        values = np.asarray(values)
        lines.append(f"| {label} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in
                                                   zip(values.mean(0), values.std(0))) + " |")
    change = np.asarray(rows["agent"]) - np.asarray(rows["pretrained"])
    lines.append("| agent - pretrained, paired | " + " | ".join(f"{m:+.3f} ± {s:.3f}" for m, s in
                                                              zip(change.mean(0), change.std(0))) + " |")
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
