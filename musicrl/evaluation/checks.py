"""Input checks shared by the evaluation modules: counts, and JSON files of a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MusicRLError

__all__ = ["check_int", "read_json"]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, or a MusicRLError naming ``name`` when it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MusicRLError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or a MusicRLError naming the file when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise MusicRLError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise MusicRLError(f"{str(path)!r} is not valid JSON: {e}") from None
