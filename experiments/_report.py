"""What the study scripts of this folder share: their command line over runs, and their ending
(print a markdown table and the time taken, and save it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def runs_parser(doc: str, n_help: str, n_default: int = 512) -> argparse.ArgumentParser:
    """A parser of ``--runs`` (trained run folders), ``--n``, ``--seed`` and ``--out``; ``doc`` is the script's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="trained run folders")
    parser.add_argument("--n", type=int, default=n_default, help=f"{n_help} (default {n_default})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this markdown file")
    return parser


def emit(lines: list[str], t0: float, out: str | None) -> int:
    """Print the table of ``lines`` and the seconds since ``t0``; write the table to ``out`` if given."""
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if out:
        Path(out).write_text(text)
    return 0
