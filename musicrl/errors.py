"""The one error type of the package."""

__all__ = ["MusicRLError"]


class MusicRLError(ValueError):
    """Raised for bad input: a corrupt MIDI file, a wrong shape, NaNs, a bad setting.

    The message names the offending thing (a file, an argument, a config field)
    and says what was expected, so a caller can skip the input and report why.
    """
