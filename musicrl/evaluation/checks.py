"""Input checks shared by the evaluation modules: counts, and JSON files of a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MusicRLError

__all__ = ["check_int", "piece_codes", "read_json"]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, or a MusicRLError naming ``name`` when it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MusicRLError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def piece_codes(groups: Any, n: int, name: str) -> np.ndarray:
    """The piece of each of ``n`` clips as codes 0..k-1 (each clip its own piece when ``groups`` is None)."""
    if groups is None:
        return np.arange(n)
    arr = np.asarray(groups)
    if arr.shape != (n,):
        raise MusicRLError(f"{name} must have one label per clip, shape ({n},), got shape {arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(n)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or a MusicRLError naming the file when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise MusicRLError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise MusicRLError(f"{str(path)!r} is not valid JSON: {e}") from None
