"""musicrl: an RL agent that writes chords, taught by a discriminator that listens.

Pipeline, one module per stage::

    data / midi -> vectorize -> synth -> mel -> discriminator -> reward -> agent
"""

import gymnasium

from .config import Config
from .errors import MusicRLError

__version__ = "0.1.0"

ENV_ID = "musicrl/Chords-v0"
"""Gymnasium id of :class:`musicrl.learning.env.MusicEnv`: ``gymnasium.make(ENV_ID, cfg=cfg, discriminator=d)``."""

__all__ = ["ENV_ID", "Config", "MusicRLError", "__version__"]

# The entry point is a string, so TensorFlow loads only when an environment is made.
# No max_episode_steps here: the length is cfg.n_steps, which the env's spec reports
# and at which the env terminates by itself. A reload must not register twice.
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="musicrl.learning.env:MusicEnv")
