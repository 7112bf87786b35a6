"""The sets an evaluation of a run compares: real held-out music, random progressions, the policies.

:func:`load_eval_sets` reads a run folder (its settings, checkpoints and
real data) and draws every set: every window of the held-out pieces (the
reference every generated set is compared with; dealt into folds of whole
pieces for the real row, each fold against the others), random progressions
(:func:`rand_progression_seqs`), the policy after pretraining alone and the
trained agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..config import load_config
from ..errors import MusicRLError
from ..learning.load import load_policy
from ..music.data import load_folder, resolve_data_dir, seqs_to_windows
from ..music.midi import rand_midis
from ..music.vectorize import midis_to_seqs
from ..seeding import as_rng
from ..store.checkpoint import latest_checkpoint, load_checkpoint
from ..store.runs import CONFIG_FILE, is_run_dir, run_paths
from .checks import check_int, read_json

__all__ = ["D_TRAIN_N", "EVAL_N", "EvalSets", "REAL_FOLDS", "fold_masks", "load_eval_sets", "mean_over_folds",
           "rand_progression_seqs"]

EVAL_N = 1024
"""Pieces per generated set of an evaluation: the set measures' noise between two evaluations falls as
one over its square root (half that of 256 pieces), for about a seventh more time."""
D_TRAIN_N = 1024
"""At most this many clips of each kind for the discriminator trained on the training pieces (4 per piece
of a generated set below that)."""
REAL_FOLDS = 4
"""Folds of the held-out pieces behind the real row (fewer when a fold would hold fewer than two pieces)."""


def rand_progression_seqs(n: int, cfg: Any, *, seed: Any = 0) -> np.ndarray:
    """The random baseline on a config's grid: ``n`` random progressions as seqs (``rand_seqs``).

    Each piece is :func:`musicrl.music.midi.rand_progression` (a triad or seventh
    chord in a random inversion per step, no harmony) of ``cfg.n_steps``
    chords of ``cfg.step_beats`` beats, with notes between MIDI 48 and 76
    (clipped to the grid's columns), quantized by
    :func:`musicrl.music.vectorize.midis_to_seqs` as real music is.

    Parameters
    ----------
    n : int
        Number of pieces.
    cfg : Config
        The grid (``n_steps``, ``step_beats``, ``lowest_pitch``, ``n_pitches``, ``quantize``).
    seed : int or np.random.Generator

    Returns
    -------
    rand_seqs : np.ndarray, shape=(n, cfg.n_steps, cfg.n_pitches), dtype=float32
    """
    n = check_int(n, "n", 1)
    top = cfg.lowest_pitch + cfg.n_pitches - 1
    lo, hi = max(48, cfg.lowest_pitch), min(76, top)
    if hi - lo < 12:
        # chords need an octave; notes above the grid are folded into it by octaves
        lo, hi = cfg.lowest_pitch, min(127, cfg.lowest_pitch + max(12, cfg.n_pitches - 1))
    rand_midis_ = rand_midis(
        n, as_rng(seed), kind="progression", n_chords=cfg.n_steps, chord_beats=cfg.step_beats,
        bpm=cfg.bpm, pitch_range=(lo, hi), program=cfg.program, velocity=cfg.velocity,
    )
    return midis_to_seqs(rand_midis_, n_steps=cfg.n_steps, n_pitches=cfg.n_pitches, **cfg.grid_kwargs())


class EvalSets(NamedTuple):
    """The pieces an evaluation of a run compares (see :func:`load_eval_sets`)."""

    cfg: Any
    """The run's settings."""
    sets: dict[str, np.ndarray]
    """Set name (of :data:`musicrl.evaluation.report.EVAL_SETS`) -> seqs; 'pretrained' only when the run has
    that checkpoint. 'real' is every held-out window, as ``reference`` is."""
    reference: np.ndarray
    """The real clips every generated set is compared with: every window of the held-out pieces."""
    groups: dict[str, np.ndarray]
    """For 'real' and 'reference': the index of the piece each window was cut from."""
    folds: np.ndarray
    """The fold of each window of ``reference``: the real row scores each fold against the other folds."""
    train_seqs: list[np.ndarray]
    """The run's training pieces (full length), for the copy rate."""
    d_train: dict[str, np.ndarray]
    """What the trained-on-training-pieces discriminator test learns from: 'real', windows of the training
    pieces; 'random', 'pretrained', 'agent', other draws of the same source (empty when ``n_d_train`` is 0)."""
    info: dict[str, Any]
    """Where everything came from: checkpoints, data, sizes, and ``notes``."""


def _check_run_dir(run_dir: Any) -> Path:
    path = Path(run_dir).expanduser()
    if not path.exists():
        raise MusicRLError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise MusicRLError(f"{str(path)!r} is not a folder: give a run folder such as runs/<name>")
    if not is_run_dir(path):
        raise MusicRLError(f"{str(path)!r} is not a run folder (no {CONFIG_FILE}): give a folder such as runs/<name>")
    return path


def _windows(real_data: Any, seqs: list) -> np.ndarray:
    """The clips the run trained on, cut from ``seqs`` (pieces of ``real_data``) as training cuts them."""
    return seqs_to_windows(seqs, n_steps=real_data.n_steps, hop=real_data.window_hop, n_pitches=real_data.n_pitches)


def _heldout(real_data: Any, rng: np.random.Generator, n_folds: int) -> tuple:
    """Every window of the held-out pieces, the piece of each, its fold, an info dict and notes.

    The pieces are dealt into ``n_folds`` folds (fewer when there are fewer
    than two pieces a fold, two at least) of about equal windows: each fold is the real row's set once,
    against the other folds as its reference. With fewer than four pieces the windows are
    dealt instead, each window its own group.
    """
    notes = []
    pieces, names, split = real_data.heldout_seqs, real_data.heldout_names, "heldout"
    if not pieces:
        pieces, names, split = real_data.train_seqs, real_data.train_names, "train"
        notes.append("the data set has no held-out pieces (holdout_fraction is 0 or the set is tiny): the real "
                     "clips are training pieces, so the real row's copy rate is 1 and the agent may have seen them")
    per_piece = [_windows(real_data, [p]) for p in pieces]
    windows = np.concatenate(per_piece) if per_piece else np.zeros((0, real_data.n_steps, real_data.n_pitches))
    if len(windows) < 2:
        raise MusicRLError(
            f"the run's data has {len(windows)} real window(s) of {real_data.n_steps} steps outside "
            "training: at least 2 are needed to evaluate"
        )
    if len(pieces) >= 4:
        groups = np.concatenate([np.full(len(w), i) for i, w in enumerate(per_piece)])
        k = max(2, min(n_folds, len(pieces) // 2))
        piece_fold = _deal_pieces([len(w) for w in per_piece], k, rng)
        folds = piece_fold[groups]
        fold_names = [[names[i] for i in range(len(pieces)) if piece_fold[i] == f] for f in range(k)]
    else:
        groups = np.arange(len(windows))
        folds = np.zeros(len(windows), dtype=np.int64)
        folds[rng.permutation(len(windows))[: len(windows) // 2]] = 1
        fold_names = [list(names), list(names)]
        notes.append(f"{len(pieces)} real piece(s), too few for two folds of two pieces: their windows are dealt into "
                     "two folds, so the real row is optimistic")
    info = {"split": split, "reference_pieces": len(pieces), "reference_windows": len(windows),
            "reference_names": list(names), "real_folds": len(fold_names), "fold_names": fold_names}
    return windows, groups, folds, info, notes


def _deal_pieces(n_windows: list[int], n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """The fold of each piece: two pieces a fold at least (the real row's two-sample tests need two
    pieces on each side), then about equal windows a fold. The pieces come longest first (ties in a
    random order); each goes to the fold with the fewest windows so far among those still short of
    two pieces, or among all once none is."""
    if len(n_windows) < 2 * n_folds:
        raise MusicRLError(f"{n_folds} folds of two pieces need {2 * n_folds} pieces, got {len(n_windows)}")
    piece_fold = np.zeros(len(n_windows), dtype=np.int64)
    windows, pieces = np.zeros(n_folds), np.zeros(n_folds, dtype=np.int64)
    shuffled = rng.permutation(len(n_windows))
    for i in shuffled[np.argsort(-np.asarray(n_windows)[shuffled], kind="stable")]:
        open_folds = np.flatnonzero(pieces < 2) if (pieces < 2).any() else np.arange(n_folds)
        piece_fold[i] = open_folds[np.argmin(windows[open_folds])]
        windows[piece_fold[i]] += n_windows[i]
        pieces[piece_fold[i]] += 1
    return piece_fold


def _policy_of(policy: Any, run_dir: Path, loaded: Path, wanted: Path) -> Any:
    """The policy of checkpoint ``wanted``: ``policy`` (of checkpoint ``loaded``) with its weights
    restored when both share one chord vocabulary, which keeps its compiled sampling graph."""
    try:
        vocabs = [load_checkpoint(path)[0].get("vocab") for path in (loaded, wanted)]
        if (vocabs[0] is None) == (vocabs[1] is None) and (vocabs[0] is None or np.array_equal(*vocabs)):
            load_checkpoint(wanted, objects={"policy": policy})
            return policy
    except MusicRLError:
        pass
    return load_policy(run_dir, wanted.name)


def load_eval_sets(
    run_dir: Any,
    *,
    n: int = EVAL_N,
    seed: int = 0,
    n_d_train: int | None = None,
    data_dir: Any = None,
    progress: bool = False,
) -> EvalSets:
    """The pieces an evaluation of a run compares.

    * the run's real data (the folder recorded in its ``run.json``, else its
      ``data_dir``) is loaded with the run's settings; every window of its
      held-out pieces is the ``reference`` every generated set is compared
      with, the same in every evaluation of the run, so that what moves
      between two evaluations is the generated sets alone (a draw of the
      pieces, or half of them, added the draw's noise to every measure
      against the reference). The same windows are the ``'real'`` set, the
      scores of music from the same source (a perfect generator's): its
      pieces are dealt into ``REAL_FOLDS`` folds (``folds``), each scored
      against the others, so every held-out piece is judged once and never
      against itself;
    * ``'random'``: ``n`` :func:`rand_progression_seqs`;
    * ``'pretrained'``: ``n`` pieces of the policy after pretraining alone
      (checkpoint ``pretrained``; left out when the run has none);
    * ``'agent'``: ``n`` pieces of the latest checkpoint's policy.

    The two policies sample at the run's ``sample_temperature`` from the same
    random numbers, so their difference is the training, not the draws.

    For the discriminator test that trains on other clips than it scores
    (:func:`discriminator_train_test`), ``d_train`` holds ``n_d_train``
    windows of the training pieces (all of them when there are fewer) and as
    many further draws of each generated set's source.

    Parameters
    ----------
    run_dir : str or path-like
        A run folder (``runs/<name>``) with at least one checkpoint.
    n : int
        Pieces per generated set.
    seed : int
        Seed of every draw.
    n_d_train : int, optional
        Clips of each kind to train that test on (default ``4 * n``, at most
        :data:`D_TRAIN_N`; 0: none).
    data_dir : str or path-like, optional
        The real data's folder, instead of the one the run recorded: for a
        run moved to another machine or checkout. A note says so when its
        training or held-out pieces are not those the run was split with.
    progress : bool
        Show a progress bar while reading MIDI files.

    Returns
    -------
    eval_sets : EvalSets

    Raises
    ------
    MusicRLError
        For a missing folder, a folder that is not a run, a run without a
        checkpoint, or a data folder that cannot be loaded.
    """
    n = check_int(n, "n", 2)
    seed = check_int(seed, "seed", 0)
    n_d_train = min(4 * n, D_TRAIN_N) if n_d_train is None else check_int(n_d_train, "n_d_train", 0)
    run_dir = _check_run_dir(run_dir)
    paths = run_paths(run_dir)
    cfg = load_config(paths.config)
    latest = latest_checkpoint(paths.checkpoints)
    if latest is None:
        raise MusicRLError(
            f"run {str(run_dir)!r} has no checkpoint to evaluate: train it first (python -m musicrl train)"
        )
    pretrained = paths.checkpoints / "pretrained"
    has_pretrained = (pretrained / "state.json").is_file()
    latest_state = read_json(latest / "state.json")
    pretrain_steps = int(latest_state.get("pretrain_steps_done", 0))

    run_info = read_json(paths.run) if paths.run.is_file() else {}
    real_data, root, notes = _load_real_data(run_info, cfg, data_dir, progress)

    reference, pieces, folds, split_info, split_notes = _heldout(real_data, np.random.default_rng([seed, 0]),
                                                                REAL_FOLDS)
    notes += split_notes
    groups = {"real": pieces, "reference": pieces}
    sets = {"real": reference, "random": rand_progression_seqs(n, cfg, seed=np.random.default_rng([seed, 1]))}

    d_train: dict[str, np.ndarray] = {}
    if n_d_train:
        windows = _windows(real_data, real_data.train_seqs)
        keep = np.random.default_rng([seed, 3]).permutation(len(windows))[:n_d_train]
        d_train["real"] = windows[np.sort(keep)]
        d_train["random"] = rand_progression_seqs(n_d_train, cfg, seed=np.random.default_rng([seed, 4]))
    agent = load_policy(run_dir, latest.name)
    drawn = {"agent": _draw(agent, cfg, n, n_d_train, seed)}
    if has_pretrained:
        # only after the agent's draws: the pretrained weights may be restored into the same policy object
        drawn = {"pretrained": _draw(_policy_of(agent, run_dir, latest, pretrained), cfg, n, n_d_train, seed),
                 **drawn}
    for name, (seqs, more) in drawn.items():
        sets[name] = seqs
        if n_d_train:
            d_train[name] = more
    if latest.name == "pretrained":
        notes.append("the latest checkpoint is the pretrained one: the agent row is the policy before any "
                     "adversarial update")
    if not has_pretrained:
        notes.append("the run has no 'pretrained' checkpoint: no pretrained-only row")
    info = {
        "run": str(run_dir.resolve()),
        "name": run_dir.resolve().name,
        "checkpoint": latest.name,
        "iteration": int(latest_state.get("iteration", 0)),
        "pretrained_checkpoint": pretrained.name if has_pretrained else None,
        "pretrain_steps": pretrain_steps,
        "n": n,
        "seed": seed,
        "sample_temperature": cfg.sample_temperature,
        "data": {"root": str(root), **split_info},
        "sizes": {k: int(len(v)) for k, v in sets.items()},
        "d_train_sizes": {k: int(len(v)) for k, v in d_train.items()},
        "notes": notes,
    }
    return EvalSets(cfg=cfg, sets=sets, reference=reference, groups=groups, folds=folds,
                    train_seqs=list(real_data.train_seqs), d_train=d_train, info=info)


def fold_masks(eval_sets: EvalSets) -> list[np.ndarray]:
    """The real row's folds: for each, which windows of ``eval_sets.reference`` it holds.

    Score the windows of a mask against the others (``reference[~mask]``),
    never against the whole reference, which holds them: every held-out
    piece is then judged once, and not against itself.

    Returns
    -------
    masks : list of np.ndarray, each shape=(len(eval_sets.reference),), dtype=bool
    """
    return [eval_sets.folds == fold for fold in np.unique(eval_sets.folds)]


def mean_over_folds(results: list[Any]) -> Any:
    """Several folds' results as one: numbers averaged (NaN and None left out), alike.

    Dicts are averaged key by key (the first's keys), tuples and lists of one
    length element by element, lists of strings (notes) joined without
    repeats; integers, booleans and strings are the first fold's (a count of
    splits, a setting).

    Parameters
    ----------
    results : list
        One result per fold, of one structure.

    Returns
    -------
    mean : same structure as ``results[0]``
    """
    if not results:
        raise MusicRLError("mean_over_folds needs at least one fold's result")
    first = results[0]
    if isinstance(first, dict):
        return {k: mean_over_folds([r[k] for r in results if isinstance(r, dict) and k in r]) for k in first}
    if isinstance(first, (list, tuple)) and all(isinstance(v, str) for r in results for v in r):
        return type(first)(dict.fromkeys(v for r in results for v in r))
    if isinstance(first, (list, tuple)) and all(isinstance(r, (list, tuple)) and len(r) == len(first)
                                                for r in results):
        return type(first)(mean_over_folds(list(parts)) for parts in zip(*results))
    if isinstance(first, (float, np.floating)):
        numbers = np.asarray([r for r in results if r is not None], dtype=np.float64)
        numbers = numbers[~np.isnan(numbers)]
        return float(numbers.mean()) if numbers.size else float("nan")
    return first


def _load_real_data(run_info: dict[str, Any], cfg: Any, data_dir: Any, progress: bool) -> tuple:
    """The run's real data (from ``data_dir``, else the folder the run recorded), its folder, and notes
    on pieces that differ from those the run was split with."""
    data_info = run_info.get("data") or {}
    if data_dir is not None:
        root = str(data_dir)
    else:
        root = data_info.get("root") or run_info.get("data_dir") or str(resolve_data_dir(cfg))
    try:
        real_data = load_folder(root, cfg, progress=progress)
    except MusicRLError as e:
        hint = "" if data_dir is not None else " (a run moved from another checkout: give the folder, evaluate --data DIR)"
        raise MusicRLError(f"cannot load the run's data folder {root!r}{hint}: {e}") from None
    notes = []
    for part in ("train", "heldout"):
        then, now = data_info.get(f"{part}_names"), getattr(real_data, f"{part}_names")
        if then is not None and list(then) != list(now):
            what = "training" if part == "train" else "held-out"
            notes.append(f"the {what} pieces of {root} differ from those the run was split with "
                         f"({len(now)} now, {len(then)} then)")
    return real_data, root, notes


def _draw(policy: Any, cfg: Any, n: int, n_d_train: int, seed: int) -> tuple:
    """``n`` pieces of a policy at the run's sampling temperature, and ``n_d_train`` further ones (None
    for 0); every policy draws from the same random numbers, so policies differ by training, not by draws."""
    def sample(k: int, stream: int) -> np.ndarray:
        draws = np.random.default_rng([seed, stream])
        return policy.sample(k, draws, n_steps=cfg.n_steps, temperature=cfg.sample_temperature).seqs

    return sample(n, 2), (sample(n_d_train, 5) if n_d_train else None)
