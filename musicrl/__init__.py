"""musicrl: an RL agent that writes chords, taught by a discriminator that listens.

Pipeline, one module per stage::

    data / midi -> vectorize -> synth -> mel -> discriminator -> reward -> agent
"""

from .config import Config
from .errors import MusicRLError

__version__ = "0.1.0"

__all__ = ["Config", "MusicRLError", "__version__"]
