"""A trained run read back: its policy at a checkpoint, and pieces drawn from it.

Everything here only reads a run folder (see :mod:`musicrl.store.runs`), so
evaluation and the command line can use a run without the training loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .agent import ChordPolicy, build_policy
from ..config import load_config
from ..errors import MusicRLError
from ..store.checkpoint import latest_checkpoint, load_checkpoint
from ..store.runs import run_paths, write_samples

__all__ = ["checkpoint_vocab", "load_policy", "sample_from_run"]


def checkpoint_vocab(path: str | Path) -> np.ndarray | None:
    """The chord vocabulary stored in a checkpoint folder.

    Parameters
    ----------
    path : str or path-like
        A checkpoint folder (holding ``arrays.npz``).

    Returns
    -------
    vocab : np.ndarray, shape=(n_chords, n_pitches), or None
        None for a policy without a vocabulary head.

    Raises
    ------
    MusicRLError
        If the folder's arrays cannot be read.
    """
    path = Path(path)
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            return z["vocab"] if "vocab" in z.files else None
    except (OSError, ValueError) as e:
        raise MusicRLError(f"cannot read checkpoint {str(path)!r}: {e}") from None


def _checkpoint_path(checkpoints_dir: Path, which: str) -> Path:
    if which == "latest":
        path = latest_checkpoint(checkpoints_dir)
        if path is None:
            raise MusicRLError(f"no checkpoint in {str(checkpoints_dir)!r}")
        return path
    path = checkpoints_dir / which
    if not (path / "state.json").is_file():
        raise MusicRLError(f"no checkpoint {which!r} in {str(checkpoints_dir)!r}")
    return path


def load_policy(run_dir: str | Path, checkpoint: str = "latest") -> ChordPolicy:
    """The policy of a run's checkpoint, ready to sample.

    Parameters
    ----------
    run_dir : str or path-like
        A run folder.
    checkpoint : str
        ``'latest'``, ``'pretrained'`` (the policy right after pretraining,
        before any adversarial update) or a checkpoint folder name such as
        ``'iter-0000500'``.

    Returns
    -------
    policy : ChordPolicy

    Raises
    ------
    MusicRLError
        If the run has no such checkpoint.
    """
    paths = run_paths(run_dir)
    cfg = load_config(paths.config)
    path = _checkpoint_path(paths.checkpoints, checkpoint)
    policy = build_policy(cfg, checkpoint_vocab(path))
    load_checkpoint(path, objects={"policy": policy})
    return policy


def sample_from_run(
    run_dir: str | Path,
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    checkpoint: str = "latest",
    temperature: float | None = None,
    wav: bool = True,
) -> list[Path]:
    """Write ``n`` pieces of a run's policy as ``gen_000.mid`` / ``gen_000.wav``, ...

    Parameters
    ----------
    run_dir : str or path-like
        A run folder.
    n : int
        Number of pieces.
    out_dir : str or path-like
        Folder to write to (created if missing).
    seed : int
        Seed of the draws (the same seed gives the same pieces).
    checkpoint : str
        'latest', 'pretrained' or a checkpoint folder name.
    temperature : float, optional
        Sampling temperature (default: the run's ``sample_temperature``).
    wav : bool
        Also render WAV files with the General MIDI soundfont.

    Returns
    -------
    paths : list of Path
        The MIDI files written.

    Raises
    ------
    MusicRLError
        For an ``n`` that is not a positive int, or a missing checkpoint.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MusicRLError(f"n must be a positive int, got {n!r}")
    cfg = load_config(run_paths(run_dir).config)
    policy = load_policy(run_dir, checkpoint)
    if temperature is None:
        temperature = cfg.sample_temperature
    rng = np.random.default_rng(seed)
    gen_seqs = policy.sample(int(n), rng, n_steps=cfg.n_steps, temperature=temperature).seqs
    paths, _ = write_samples(out_dir, gen_seqs, cfg, wav=wav)
    return paths
