"""Fixtures shared by the test modules."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from musicrl.config import Config


@pytest.fixture
def rng():
    """A seeded generator, so every test draws the same numbers on every run."""
    return np.random.default_rng(20201)


@pytest.fixture
def cfg():
    """The default settings, shortened to 8 steps to keep tests quick."""
    return Config(n_steps=8)


@pytest.fixture(scope="module")
def restore_op_determinism():
    """Switch TensorFlow's op determinism back off after a module whose runs turn it on."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    yield
    if not was:
        tf_config.disable_op_determinism()
