"""One place where randomness enters: seeds and generators."""

from __future__ import annotations

import os
import random

import numpy as np

from .errors import MusicRLError

__all__ = ["as_rng", "seed_everything"]



def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a ``np.random.Generator`` for a seed, or the generator itself.

    Parameters
    ----------
    seed : int, np.random.Generator or None
        A non-negative integer seed, an existing generator (returned as is, so
        callers share its stream), or None for fresh OS entropy.

    Returns
    -------
    rng : np.random.Generator
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MusicRLError(f"seed must be a non-negative int or a np.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def seed_everything(seed: int, *, deterministic_ops: bool = False) -> np.random.Generator:
    """Seed Python, NumPy and (when imported) TensorFlow/Keras; return a fresh generator.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    deterministic_ops : bool
        Also ask TensorFlow for deterministic kernels, so that the same seed and
        config reproduce the same numbers on the CPU (slower on a GPU).

    Returns
    -------
    rng : np.random.Generator
        A generator seeded with ``seed``, for the caller's own draws.
    """
    rng = as_rng(seed)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import sys

    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        if deterministic_ops:
            tf.config.experimental.enable_op_determinism()
    return rng
