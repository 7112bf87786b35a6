"""The ending the study scripts of this folder share: print a markdown table, the time taken, and save it."""

from __future__ import annotations

import time
from pathlib import Path


def emit(lines: list[str], t0: float, out: str | None) -> int:
    """Print the table of ``lines`` and the seconds since ``t0``; write the table to ``out`` if given."""
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if out:
        Path(out).write_text(text)
    return 0
