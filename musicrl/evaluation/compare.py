"""One row of the evaluation table: every comparison of one set with real clips (pure).

:func:`compare_to_real` puts a set through the measures of
:func:`musicrl.music.metrics.summarize`, the copy rate, MGEval
(:mod:`musicrl.evaluation.mgeval`) and the two-sample tests
(:mod:`musicrl.evaluation.two_sample`) against the same real clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MusicRLError
from ..learning.discriminator import check_d_seqs
from ..music import metrics
from ..music.vectorize import check_seqs
from ..seeding import as_rng
from .checks import check_int
from .mgeval import mgeval_compare, nanmean
from .two_sample import discriminator_train_test, discriminator_two_sample_test, seq_two_sample_test, set_d_inputs

__all__ = ["COPY_RUN_LENGTH", "D_BATCH_SIZE", "HEADLINE_COLUMNS", "SEQ_SPLITS", "compare_to_real"]

HEADLINE_COLUMNS: tuple[str, ...] = (
    "fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "mgeval_kl", "mgeval_oa", "copy_rate",
)
"""The table's first columns; every key of :func:`musicrl.music.metrics.summarize` follows."""

COPY_RUN_LENGTH = 8
"""Chords of a run copied from a training piece, for ``copy_rate``."""
SEQ_SPLITS = 5
"""Folds of the feature-classifier test (fewer for tiny sets)."""
D_BATCH_SIZE = 32
"""Batch size of the fresh discriminators."""


def compare_to_real(
    gen_seqs: np.ndarray,
    real_seqs: np.ndarray,
    cfg: Any,
    *,
    train_seqs: Any = None,
    copy_run_length: int = COPY_RUN_LENGTH,
    d_test: bool = True,
    d_epochs: int = 5,
    d_splits: int = 3,
    gen_x: np.ndarray | None = None,
    real_x: np.ndarray | None = None,
    train_real_x: np.ndarray | None = None,
    train_gen_x: np.ndarray | None = None,
    d_cache: dict | None = None,
    real_groups: Any = None,
    gen_groups: Any = None,
    seed: Any = 0,
) -> dict[str, Any]:
    """Every comparison of one set with real clips: one row of the evaluation table.

    * every scalar of :func:`musicrl.music.metrics.summarize` of ``gen_seqs``
      (``pitch_class_overlap`` against ``real_seqs``);
    * ``copy_rate``: :func:`musicrl.music.metrics.copy_rate` against the training
      pieces, with runs of ``min(copy_run_length, n_steps)`` chords;
    * MGEval (:func:`mgeval_compare`) against ``real_seqs``, per feature and
      as ``mgeval_kl`` / ``mgeval_oa``, the means over the features of
      ``kl_real_inter`` / ``oa_real_inter``;
    * ``seq_clf_acc``: :func:`seq_two_sample_test` (logistic regression,
      5-fold, fewer folds for tiny sets);
    * ``fresh_d_acc``: :func:`discriminator_two_sample_test`, a new
      discriminator of ``cfg``'s architecture trained for ``d_epochs`` epochs
      in each of ``d_splits`` folds;
    * ``fresh_d_full_acc``: :func:`discriminator_train_test`, a new
      discriminator trained for ``d_epochs`` epochs on ``train_real_x``
      against ``train_gen_x`` and scored on the two sets.

    A measure that cannot be taken (no training pieces, fewer than two clips
    or groups per class for a test, ``d_test=False``, no ``train_gen_x``) is
    NaN, with a line in ``notes``.

    Parameters
    ----------
    gen_seqs, real_seqs : np.ndarray, shape=(batch, cfg.n_steps, cfg.n_pitches)
        The set, and the real clips it is compared with (held out from training).
    cfg : Config
    train_seqs : np.ndarray or list of np.ndarray, optional
        The training pieces (any lengths), for ``copy_rate``.
    copy_run_length : int
        Chords of a copied run (shortened to ``n_steps`` for shorter clips).
    d_test : bool
        Run the fresh-discriminator test (the slow part).
    d_epochs, d_splits : int
        Its training epochs per fold, and folds.
    gen_x, real_x : np.ndarray, optional
        D inputs of the two sets when already computed (e.g. the real clips'
        mels shared by several sets).
    train_real_x, train_gen_x : np.ndarray, optional
        D inputs of real clips of the training pieces and of another sample of
        the set's source, for ``fresh_d_full_acc``.
    d_cache : dict, optional
        Passed to the discriminator tests (one dict for several sets compiles
        the fresh discriminator once).
    real_groups, gen_groups : array-like, optional
        The piece each clip was cut from, for the two tests' folds (overlapping
        windows of one piece must not be split between training and test
        folds, or a classifier scores by recognising the piece).
    seed : int or np.random.Generator

    Returns
    -------
    result : dict
        ``row`` (dict of column -> float: :data:`HEADLINE_COLUMNS`, then the
        summary), ``mgeval`` (per feature, see :func:`mgeval_compare`),
        ``seq_test``, ``d_test`` and ``d_full_test`` (the tests' results, empty when not run),
        ``copy_run_length`` and ``notes`` (list of str).
    """
    gen, real = _check_sets(gen_seqs, real_seqs, cfg, check_d=d_test, gen_x=gen_x, real_x=real_x)
    d_epochs = check_int(d_epochs, "d_epochs", 1)
    d_splits = check_int(d_splits, "d_splits", 2)
    rng = as_rng(seed)
    notes: list[str] = []
    lp = cfg.lowest_pitch
    summary = metrics.summarize(gen, lowest_pitch=lp, reference_seqs=real)
    run_length = min(check_int(copy_run_length, "copy_run_length", 1), gen.shape[1])
    copy = _copy_rate(gen, train_seqs, run_length, notes)

    mg = mgeval_compare(gen, real, lowest_pitch=lp, seed=rng)
    n_small = _fewest_clips_or_groups(gen, real, gen_groups, real_groups)
    groups = {"real_groups": real_groups, "gen_groups": gen_groups}
    seq_res = _feature_classifier(real, gen, lp, n_small, int(rng.integers(2**31 - 1)), groups, notes)
    d_seed = int(rng.integers(2**31 - 1))
    d_res: dict[str, float] = {}
    if not d_test:
        notes.append("fresh-discriminator test not run")
    elif n_small >= 2:
        real_x = set_d_inputs(real, cfg) if real_x is None else real_x
        gen_x = set_d_inputs(gen, cfg) if gen_x is None else gen_x
        d_res = _noted(notes, "fresh-discriminator test not run", lambda: discriminator_two_sample_test(
            real_x, gen_x, cfg, n_splits=min(d_splits, n_small), epochs=d_epochs, batch_size=D_BATCH_SIZE,
            seed=d_seed, cache=d_cache, **groups))
    else:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the fresh-discriminator test")

    d_full_seed = int(rng.integers(2**31 - 1))
    d_full: dict[str, float] = {}
    if d_test and train_real_x is not None and train_gen_x is not None:
        d_full = _noted(notes, "fresh_d_full_acc not measured", lambda: discriminator_train_test(
            train_real_x, train_gen_x, set_d_inputs(real, cfg) if real_x is None else real_x,
            set_d_inputs(gen, cfg) if gen_x is None else gen_x, cfg, epochs=d_epochs, batch_size=D_BATCH_SIZE,
            seed=d_full_seed, cache=d_cache))
    elif d_test:
        notes.append("no second sample of the set to train on: fresh_d_full_acc not measured")

    row = {
        "fresh_d_acc": d_res.get("accuracy", float("nan")),
        "fresh_d_full_acc": d_full.get("accuracy", float("nan")),
        "seq_clf_acc": seq_res.get("accuracy", float("nan")),
        "mgeval_kl": nanmean([v["kl_real_inter"] for v in mg.values()]),
        "mgeval_oa": nanmean([v["oa_real_inter"] for v in mg.values()]),
        "copy_rate": copy,
        **summary,
    }
    return {
        "row": {k: float(v) for k, v in row.items()},
        "mgeval": mg,
        "seq_test": seq_res,
        "d_test": d_res,
        "d_full_test": d_full,
        "copy_run_length": run_length,
        "notes": notes,
    }


def _check_sets(gen_seqs: Any, real_seqs: Any, cfg: Any, *, check_d: bool, gen_x: Any, real_x: Any) -> tuple:
    """The two sets as seqs on ``cfg``'s grid, both non-empty."""
    gen = check_seqs(gen_seqs, n_pitches=cfg.n_pitches, name="gen_seqs")
    real = check_seqs(real_seqs, n_pitches=cfg.n_pitches, name="real_seqs")
    if check_d:
        # D reads cfg.n_steps steps: a set of another length fails here, not after minutes of synthesis
        if gen_x is None:
            check_d_seqs(gen, cfg, name="gen_seqs")
        if real_x is None:
            check_d_seqs(real, cfg, name="real_seqs")
    if len(gen) == 0 or len(real) == 0:
        raise MusicRLError(f"compare_to_real needs clips in both sets, got {len(gen)} and {len(real)}")
    return gen, real


def _copy_rate(gen: np.ndarray, train_seqs: Any, run_length: int, notes: list[str]) -> float:
    if train_seqs is not None and len(train_seqs):
        return metrics.copy_rate(gen, train_seqs, run_length=run_length)
    notes.append("no training pieces: copy_rate not measured")
    return float("nan")


def _fewest_clips_or_groups(gen: np.ndarray, real: np.ndarray, gen_groups: Any, real_groups: Any) -> int:
    """Clips, or groups where given, of the smaller side: each test needs two of each set."""
    return min(
        len(gen), len(real),
        len(gen) if gen_groups is None else np.unique(np.asarray(gen_groups)).size,
        len(real) if real_groups is None else np.unique(np.asarray(real_groups)).size,
    )


def _noted(notes: list[str], what: str, test: Any) -> dict[str, float]:
    """``test()``, or an empty result and a note when its inputs do not allow it."""
    try:
        return test()
    except MusicRLError as e:
        notes.append(f"{what}: {e}")
        return {}


def _feature_classifier(real: np.ndarray, gen: np.ndarray, lowest_pitch: int, n_small: int, seed: int,
                        groups: dict[str, Any], notes: list[str]) -> dict[str, float]:
    if n_small < 2:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the feature-classifier test")
        return {}
    return _noted(notes, "feature-classifier test not run", lambda: seq_two_sample_test(
        real, gen, lowest_pitch=lowest_pitch, n_splits=min(SEQ_SPLITS, n_small), seed=seed, **groups))
