"""Does the policy learn the music or the training pieces? Its NLL on training and held-out chorales.

The evaluation samples the policies; this scores real music under them
instead. For the policy after pretraining alone and at the end of each run it
gives the teacher-forced negative log-likelihood in nats per chord step of
windows of the training pieces and of the held-out chorales (the evaluation's
own held-out windows, ``load_eval_sets``), and of the whole held-out pieces,
each read from its first chord. Held-out chords outside the policy's
vocabulary can only come through its ``<other>`` branch and cost tens of nats
each, so the held-out NLL is also given over the vocabulary chords alone.
Training NLL falling while held-out NLL rises is a policy learning its
training windows by heart. The tables are the mean ± std over the runs given.

A chord step is one frame of the binary piano roll (one beat with the default
``step_beats=1``), the unit of the published polyphonic-music figures, so
the whole-piece column is printed beside them, with how our data and split
differ from theirs (:data:`PUBLISHED`, :func:`comparison_notes`).

Usage::

    python experiments/heldout_nll.py --runs runs/sweep10b/default/seed? [--n 512] [--out FILE.md]
"""
from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, runs_parser  # noqa: E402  (this folder, beside the script)


# Published JSB Chorales results: test-set NLL in nats per quarter-note frame of the
# 88-key binary piano roll, on the split of Boulanger-Lewandowski et al. (2012)
PUBLISHED = (
    ("RNN-NADE (Boulanger-Lewandowski et al. 2012)", 5.19),
    ("TCN (Bai, Kolter & Koltun 2018)", 8.10),
)


def piece_nll(policy, pieces) -> tuple[float, float, float]:
    """NLL in nats per chord step of whole pieces, each from its first chord, pooled over every step.

    Pieces are padded with rests after their end to one batch; a step's
    log-probability depends on the steps before it only, so the padding
    changes nothing that is counted. Returns the NLL over every step, over the
    steps whose chord is in the policy's vocabulary, and the share of those.
    """
    import numpy as np

    from musicrl.learning.agent import in_vocabulary

    batch = np.zeros((len(pieces), max(len(p) for p in pieces), pieces[0].shape[1]), np.float32)
    counted = np.zeros(batch.shape[:2], bool)
    for i, piece in enumerate(pieces):
        batch[i, : len(piece)] = piece
        counted[i, : len(piece)] = True
    nll = -policy.log_prob(batch)
    in_vocab = in_vocabulary(policy.vocab, batch) if policy.vocab is not None else np.ones(nll.shape, bool)
    return float(nll[counted].mean()), float(nll[counted & in_vocab].mean()), float(in_vocab[counted].mean())


def comparison_notes(cfg, root: str, n_pieces: int, n_steps_total: int) -> list[str]:
    """How our held-out pieces and their scoring differ from the published JSB Chorales set and split."""
    return [
        "How these numbers differ from the published ones (same unit, different data and split):",
        "",
        f"- Data: our pieces are those of `{root}` (by default the Bach chorales of the music21 corpus, "
        "350 distinct harmonizations), not the 382 chorales of the published set; the held-out pieces are "
        f"about {cfg.holdout_fraction:.0%} of ours, chosen by a hash of the file name ({n_pieces} pieces, "
        f"{n_steps_total} steps here), not its fixed test split of 77, so a piece of their test set may be among "
        "our training pieces and the other way round.",
        f"- Frames: one step is {cfg.step_beats:g} beat(s), what sounds on the beat (`quantize={cfg.quantize}`: "
        "notes between beats are not seen); the roll has "
        f"{cfg.n_pitches} pitches from MIDI {cfg.lowest_pitch}, notes outside folded in by octaves, where the "
        "published roll has 88 keys.",
        "- Model: the policy was trained on windows of "
        f"{cfg.n_steps} steps cut every {cfg.window_hop} steps, each read from its own first chord; the "
        "whole-piece column reads each held-out piece from its "
        "first chord to its end, as the published models do, so it also asks the policy to carry longer contexts "
        "than it trained on. The agent row is the policy after adversarial training, which does not maximise "
        "likelihood; the pretrained row is the maximum-likelihood policy.",
        "- A chord outside the policy's vocabulary is only reachable through its `<other>` branch (tens of nats), "
        "which a piano-roll model does not have; the vocabulary-chord column leaves those steps out.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = runs_parser(__doc__, "windows of each kind at most")
    args = parser.parse_args(argv)

    import numpy as np

    from musicrl.learning.agent import in_vocabulary
    from musicrl.music.data import load_folder, seqs_to_windows
    from musicrl.evaluation.sets import load_eval_sets
    from musicrl.learning.load import load_policy

    t0 = time.perf_counter()
    columns = ("training windows", "held-out windows", "held-out, vocabulary chords", "held-out chords in vocabulary")
    whole_columns = ("held-out pieces, whole", "whole, vocabulary chords", "chords in vocabulary")
    rows: dict[str, list[list[float]]] = {"pretrained": [], "agent": []}
    whole_rows: dict[str, list[tuple[float, float, float]]] = {"pretrained": [], "agent": []}
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
        # every held-out piece, also those shorter than a window: the split does not depend on n_steps
        # (nor on a curriculum of lengths, which must stay below n_steps)
        root = ev.info["data"]["root"]
        data = load_folder(root, dataclasses.replace(cfg, n_steps=1, curriculum_start=0))
        pieces = data.heldout_seqs or data.train_seqs
        if not data.heldout_seqs:
            print(f"{run}: the data has no held-out pieces; the whole-piece column reads training pieces")
        for label, checkpoint in (("pretrained", "pretrained"), ("agent", "latest")):
            policy = load_policy(run, checkpoint)
            held_lp = policy.log_prob(held)
            if policy.vocab is not None:
                in_vocab = in_vocabulary(policy.vocab, held)
            else:
                in_vocab = np.ones(held_lp.shape, bool)
            rows[label].append([-policy.log_prob(train).mean(), -held_lp.mean(), -held_lp[in_vocab].mean(),
                                in_vocab.mean()])
            whole_rows[label].append(piece_nll(policy, pieces))
    if not rows["agent"]:
        parser.error("none of the runs has a pretrained checkpoint")

    def table(columns: tuple[str, ...], rows: dict) -> list[str]:
        lines = ["| policy | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for label, values in rows.items():
            values = np.asarray(values)
            lines.append(f"| {label} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in
                                                       zip(values.mean(0), values.std(0))) + " |")
        change = np.asarray(rows["agent"]) - np.asarray(rows["pretrained"])
        lines.append("| agent - pretrained, paired | " + " | ".join(f"{m:+.3f} ± {s:.3f}" for m, s in
                                                                  zip(change.mean(0), change.std(0))) + " |")
        return lines

    n_runs, n_steps_total = len(rows["agent"]), sum(len(p) for p in pieces)
    lines = [
        f"Negative log-likelihood per chord in nats ({n_runs} runs, {len(held)} windows of each kind; "
        "mean ± std over runs)",
        "",
        *table(columns, rows),
        "",
        f"Whole held-out pieces, each from its first chord: nats per chord step, pooled over the {n_steps_total} "
        f"steps of {len(pieces)} pieces (mean ± std over runs)",
        "",
        *table(whole_columns, whole_rows),
        "",
        "Published JSB Chorales figures, test-set nats per quarter-note frame:",
        "",
        "| model | nats per frame |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in PUBLISHED),
        *(f"| ours, {label}, whole held-out pieces | {np.mean([r[0] for r in values]):.2f} |"
          for label, values in whole_rows.items()),
        "",
        *comparison_notes(cfg, root, len(pieces), n_steps_total),
    ]
    return emit(lines, t0, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
