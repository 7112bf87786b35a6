"""Fuzz: mutated MIDI files through ``load_midi`` and ``midi_to_seq``, at length.

Each input is one of the valid seed files of ``musicrl/tests/test_robustness.py``
(a progression, a multi-track file with tempo/meta/controller/sysex events, a
format-0 file with running status, tied notes, drums only) with 1..``--max-ops``
mutations from the same engine the tests use: bit flips, byte sets,
truncation, insertion, deletion, duplication, chunk-length and header-field
corruption, and nasty events (tempo 0, the largest delta time, a sysex
claiming 256 MB, ...) spliced into a track. Each input is written to a file
and read with ``load_midi``, then quantized with ``midi_to_seq`` (both rules).

An input is *accepted* (a valid seq came out), *rejected* (a MusicRLError
naming the file) or a *crash* (any other exception, an error that does not
name the file, a bad seq, or more than ``--time-box`` seconds). Crashing
inputs are saved to ``--save-crashes``. The summary prints the counts, the
most common rejection reasons and the slowest input; the exit code is 1 if
anything crashed.

``--worst-case`` instead times the largest inputs the limits allow (a file
of ``MAX_MIDI_BYTES`` of packed notes or of tempo changes, ``MAX_MIDI_TRACKS``
tracks, a piece of ``MAX_SEQ_STEPS`` steps). Timings are wall-clock on a
shared machine; the 1-minute load average is printed with them.

Usage::

    python benchmarks/fuzz_midi.py [--n 100000] [--seed 0] [--max-ops 4] [--save-crashes DIR]
    python benchmarks/fuzz_midi.py --worst-case
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from musicrl.errors import MusicRLError  # noqa: E402
from musicrl.music.midi import MAX_MIDI_BYTES, MAX_MIDI_TRACKS, load_midi  # noqa: E402
from musicrl.tests.test_robustness import (  # noqa: E402
    BYTE_MUTATIONS,
    CHUNK_MUTATIONS,
    GRID,
    ONE_NOTE,
    _Hang,
    mutate,
    seed_midi_bytes,
    smf,
    tempo_event,
    time_box,
    varint,
)
from musicrl.music.vectorize import MAX_SEQ_STEPS, midi_to_seq  # noqa: E402


def _reason(message: str, path: str) -> str:
    """A rejection message without the file name and numbers, to count alike reasons together."""
    text = message.replace(repr(path), "FILE").replace(path, "FILE")
    text = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?(e[+-]?\d+)?", "N", text)
    return text[:110]


def _check_seq(seq: np.ndarray) -> None:
    if not (seq.ndim == 2 and seq.shape[1] == GRID["n_pitches"] and 1 <= seq.shape[0] <= MAX_SEQ_STEPS):
        raise AssertionError(f"bad seq shape {seq.shape}")
    if seq.dtype != np.float32 or not np.all((seq == 0) | (seq == 1)):
        raise AssertionError("seq is not float32 multi-hot")


def fuzz(n: int, seed: int, max_ops: int, time_limit: float, save_crashes: Path | None) -> int:
    rng = np.random.default_rng(seed)
    draw = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
    seeds = seed_midi_bytes()
    mutations = BYTE_MUTATIONS + CHUNK_MUTATIONS
    counts = collections.Counter()
    reasons = collections.Counter()
    crashes = []
    slowest = (0.0, b"")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-midi-") as tmp:
        path = Path(tmp) / "input.mid"
        for i in range(n):
            blob = mutate(seeds[draw(0, len(seeds) - 1)], draw, mutations, max_ops=max_ops)
            path.write_bytes(blob)
            quantize = ("sample", "cover")[i % 2]
            t0 = time.perf_counter()
            try:
                with time_box(time_limit, "one input"):
                    midi = load_midi(path)
                    seq = midi_to_seq(midi, **GRID, quantize=quantize, name=f"MIDI file {str(path)!r}")
                _check_seq(seq)
                counts["accepted"] += 1
            except MusicRLError as e:
                if str(path) not in str(e):
                    crashes.append((i, blob, f"error without the file name: {e}"))
                else:
                    counts["rejected"] += 1
                    reasons[_reason(str(e), str(path))] += 1
            except (Exception, _Hang) as e:  # noqa: BLE001 - every other outcome is a finding
                crashes.append((i, blob, "".join(traceback.format_exception_only(type(e), e)).strip()))
            dt = time.perf_counter() - t0
            if dt > slowest[0]:
                slowest = (dt, blob)
            if (i + 1) % 10_000 == 0:
                rate = (i + 1) / (time.perf_counter() - t_start)
                print(f"  {i + 1} inputs, {counts['accepted']} accepted, {counts['rejected']} rejected, "
                      f"{len(crashes)} crashes ({rate:.0f} inputs/s)", flush=True)
    elapsed = time.perf_counter() - t_start

    print(f"inputs run: {n} in {elapsed:.1f} s ({n / elapsed:.0f} inputs/s, load {os.getloadavg()[0]:.1f})")
    print(f"accepted: {counts['accepted']}")
    print(f"rejected: {counts['rejected']} (MusicRLError naming the file)")
    print(f"crashes: {len(crashes)}")
    print(f"slowest input: {slowest[0] * 1000:.0f} ms ({len(slowest[1])} bytes)")
    print("most common rejection reasons:")
    for reason, count in reasons.most_common(15):
        print(f"  {count:7d}  {reason}")
    if crashes:
        print("crashes (first 20):")
        for i, _, what in crashes[:20]:
            print(f"  input {i}: {what}")
        if save_crashes is not None:
            save_crashes.mkdir(parents=True, exist_ok=True)
            for i, blob, _ in crashes:
                (save_crashes / f"crash-{i:07d}.mid").write_bytes(blob)
            print(f"saved {len(crashes)} crashing inputs to {save_crashes}")
    return 1 if crashes else 0


def worst_case() -> int:
    """Time the largest inputs the limits let through."""
    header_and_track = 22 + len(tempo_event(0))
    n_notes = (MAX_MIDI_BYTES - header_and_track) // 3 - 2
    # running status: each event is a 1-byte delta and 2 data bytes, notes alternately on and off
    packed = b"\x00\x90\x30\x50" + b"".join(
        bytes([1, 0x30 + (k // 2) % 40, 0x50 if k % 2 == 0 else 0]) for k in range(1, n_notes)
    )
    # each a 1-tick delta and a 6-byte tempo event
    n_tempos = (MAX_MIDI_BYTES - header_and_track - len(ONE_NOTE)) // 7
    tempos = b"".join(b"\x01" + tempo_event(400_000 + k % 1000)[1:] for k in range(n_tempos)) + ONE_NOTE
    tracks = [varint(480 * (k % 64)) + b"\x90\x3c\x50\x83\x60\x80\x3c\x00" for k in range(MAX_MIDI_TRACKS)]
    # one tick per beat keeps the note within pretty_midi's largest tick
    long_piece = b"\x00\x90\x3c\x50" + varint(MAX_SEQ_STEPS) + b"\x80\x3c\x00"
    cases = {
        f"{MAX_MIDI_BYTES} bytes of packed notes": smf(packed, fmt=0),
        f"{MAX_MIDI_BYTES} bytes of tempo changes": smf(tempos, fmt=0),
        f"{MAX_MIDI_TRACKS} tracks": smf(*tracks),
        f"a note of {MAX_SEQ_STEPS} beats": smf(long_piece, division=1),
    }
    status = 0
    with tempfile.TemporaryDirectory(prefix="fuzz-midi-") as tmp:
        for what, blob in cases.items():
            path = Path(tmp) / "worst.mid"
            path.write_bytes(blob)
            t0 = time.perf_counter()
            try:
                midi = load_midi(path)
                t1 = time.perf_counter()
                seq = midi_to_seq(midi, **GRID)
                outcome = f"seq {seq.shape}"
            except MusicRLError as e:
                t1 = time.perf_counter()
                outcome = f"refused: {_reason(str(e), str(path))}"
            except Exception as e:  # noqa: BLE001
                t1 = time.perf_counter()
                outcome = f"CRASH {type(e).__name__}: {e}"
                status = 1
            t2 = time.perf_counter()
            print(f"{what} ({len(blob)} bytes): load {t1 - t0:.2f} s, quantize {t2 - t1:.2f} s, "
                  f"{outcome} (load {os.getloadavg()[0]:.1f})", flush=True)
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs to run (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    parser.add_argument("--max-ops", type=int, default=4, help="most mutations per input (default 4)")
    parser.add_argument("--time-box", type=float, default=30.0, help="seconds before an input counts as a hang")
    parser.add_argument("--save-crashes", type=Path, default=None, metavar="DIR", help="write crashing inputs here")
    parser.add_argument("--worst-case", action="store_true", help="time the largest inputs the limits allow")
    args = parser.parse_args(argv)
    if args.worst_case:
        return worst_case()
    return fuzz(args.n, args.seed, args.max_ops, args.time_box, args.save_crashes)


if __name__ == "__main__":
    sys.exit(main())
