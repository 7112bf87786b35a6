"""MIDI in and out: reading files safely, and random music to compare against.

Two kinds of random piece, both ``pretty_midi.PrettyMIDI``:

* :func:`rand_progression`: a chord progression of stacked triads and sevenths
  (random root, quality, inversion), the "random progressions" baseline;
* :func:`rand_noise`: random pitch sets, the crudest baseline.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import pretty_midi

from ..errors import MusicRLError
from ..seeding import as_rng

__all__ = [
    "CHORD_QUALITIES",
    "MAX_MIDI_BYTES",
    "MAX_MIDI_TRACKS",
    "load_midi",
    "midi_from_bytes",
    "rand_midis",
    "rand_noise",
    "rand_progression",
    "save_midi",
]

# Intervals above the root, in semitones.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "major": (0, 4, 7),
    "minor": (0, 3, 7),
    "diminished": (0, 3, 6),
    "augmented": (0, 4, 8),
    "dominant7": (0, 4, 7, 10),
    "major7": (0, 4, 7, 11),
    "minor7": (0, 3, 7, 10),
    "half-diminished7": (0, 3, 6, 10),
}

# Files larger than this are refused before parsing. Parsing takes a few
# microseconds per byte of dense events (mido is pure Python), so this keeps
# a hostile file of packed notes to tens of seconds and bounded memory; real
# pieces, even long piano performances, are well below it.
MAX_MIDI_BYTES = 4 * 1024 * 1024

# Files whose header declares more tracks than this are refused before parsing
# (real files have at most a few dozen; each track becomes instruments).
MAX_MIDI_TRACKS = 1024


def load_midi(path: str | os.PathLike) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file, never modifying it.

    Parameters
    ----------
    path : str or path-like
        A ``.mid`` / ``.midi`` file.

    Returns
    -------
    midi : pretty_midi.PrettyMIDI

    Raises
    ------
    MusicRLError
        Naming the file and the reason: missing, a directory or other
        non-regular file, unreadable, empty, too large (more than
        ``MAX_MIDI_BYTES`` bytes or ``MAX_MIDI_TRACKS`` tracks), or not
        parseable as MIDI.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise MusicRLError(f"cannot read MIDI file {str(path)!r}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MusicRLError(f"{str(path)!r} is a directory, not a MIDI file")
    if not stat.S_ISREG(st.st_mode):
        # opening a pipe would block until something writes to it
        raise MusicRLError(f"{str(path)!r} is not a regular file (a pipe, socket or device)")
    _check_size(st.st_size, str(path))
    try:
        with path.open("rb") as f:
            # bounded, in case the file grew since it was measured
            data = f.read(MAX_MIDI_BYTES + 1)
    except OSError as e:
        raise MusicRLError(f"cannot read MIDI file {str(path)!r}: {e.strerror or e}") from None
    _check_size(len(data), str(path))
    return midi_from_bytes(data, name=str(path))


def _check_size(size: int, name: str) -> None:
    if size == 0:
        raise MusicRLError(f"MIDI file {name!r} is empty (0 bytes)")
    if size > MAX_MIDI_BYTES:
        raise MusicRLError(f"MIDI file {name!r} is larger than the {MAX_MIDI_BYTES} bytes allowed")


def _check_header(data: bytes, name: str) -> None:
    """Refuse before parsing what the parsers would misread or take long on."""

    def bad(reason: str) -> MusicRLError:
        return MusicRLError(f"MIDI file {name!r} could not be parsed: {reason}")

    if len(data) < 14:
        raise bad(f"truncated: {len(data)} bytes, shorter than a MIDI header")
    length, fmt, n_tracks, division = struct.unpack(">IHHH", data[4:14])
    if length < 6:
        raise bad(f"a header chunk of {length} bytes, expected 6")
    if fmt > 2:
        raise bad(f"format {fmt}, expected 0, 1 or 2")
    if n_tracks == 0:
        raise bad("the header declares no tracks")
    if n_tracks > MAX_MIDI_TRACKS:
        raise MusicRLError(
            f"MIDI file {name!r} declares {n_tracks} tracks, more than the {MAX_MIDI_TRACKS} allowed"
        )
    if division & 0x8000:
        raise bad("SMPTE time division is not supported (only ticks per quarter note)")
    if division == 0:
        raise bad("a time division of 0 ticks per quarter note")


def midi_from_bytes(data: bytes, *, name: str = "<bytes>") -> pretty_midi.PrettyMIDI:
    """Parse MIDI file contents; any failure becomes a :class:`MusicRLError` naming ``name``."""
    import io

    if not data:
        raise MusicRLError(f"MIDI file {name!r} is empty (0 bytes)")
    if not data.startswith(b"MThd"):
        raise MusicRLError(f"{name!r} is not a MIDI file (no 'MThd' header)")
    _check_size(len(data), name)
    _check_header(data, name)
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about odd but legal files (e.g. tempo events off track 0)
            warnings.simplefilter("ignore")
            midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except MusicRLError:
        raise
    except RecursionError:
        raise MusicRLError(f"MIDI file {name!r} could not be parsed: nesting too deep") from None
    except MemoryError:
        raise MusicRLError(f"MIDI file {name!r} could not be parsed: out of memory") from None
    except EOFError:
        raise MusicRLError(f"MIDI file {name!r} could not be parsed: unexpected end of data (truncated)") from None
    except ZeroDivisionError:
        raise MusicRLError(f"MIDI file {name!r} could not be parsed: a tempo of 0 (division by zero)") from None
    except Exception as e:  # mido and pretty_midi raise many types on corrupt data
        reason = str(e) or type(e).__name__
        if not isinstance(e, (OSError, ValueError)):
            # e.g. IndexError from a meta event shorter than its kind needs
            reason = f"malformed event data ({type(e).__name__}: {reason})"
        raise MusicRLError(f"MIDI file {name!r} could not be parsed: {reason}") from None
    return midi


def save_midi(midi: pretty_midi.PrettyMIDI, path: str | os.PathLike) -> None:
    """Write ``midi`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        midi.write(str(tmp))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write MIDI file {str(path)!r}: {e.strerror or e}") from None


def _check_range(pitch_range: tuple[int, int]) -> tuple[int, int]:
    lo, hi = (int(p) for p in pitch_range)
    if not 0 <= lo < hi <= 127:
        raise MusicRLError(f"pitch_range must be (low, high) with 0 <= low < high <= 127, got {pitch_range}")
    return lo, hi


def _check_common(n_chords: int, chord_beats: float, bpm: float, program: int) -> None:
    if int(n_chords) < 1:
        raise MusicRLError(f"n_chords must be >= 1, got {n_chords}")
    if not chord_beats > 0:
        raise MusicRLError(f"chord_beats must be > 0, got {chord_beats}")
    if not bpm > 0:
        raise MusicRLError(f"bpm must be > 0, got {bpm}")
    if not 0 <= program <= 127:
        raise MusicRLError(f"program must be a General MIDI program 0..127, got {program}")


def _chords_to_midi(
    chords: list[list[int]], *, chord_beats: float, bpm: float, program: int, velocity: int
) -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=program)
    dur = chord_beats * 60.0 / bpm
    for i, chord in enumerate(chords):
        for pitch in chord:
            inst.notes.append(
                pretty_midi.Note(velocity=velocity, pitch=int(pitch), start=i * dur, end=(i + 1) * dur)
            )
    midi.instruments.append(inst)
    return midi


def rand_progression(
    rng: int | np.random.Generator | None = None,
    *,
    n_chords: int = 16,
    chord_beats: float = 1.0,
    bpm: float = 120.0,
    pitch_range: tuple[int, int] = (48, 76),
    program: int = 19,
    velocity: int = 80,
) -> pretty_midi.PrettyMIDI:
    """A random chord progression: each chord a triad or seventh in a random inversion.

    Roots, qualities (:data:`CHORD_QUALITIES`) and inversions are drawn
    independently per chord, so the result has chords but no harmony: the
    "random progressions" baseline.

    Parameters
    ----------
    rng : int, np.random.Generator or None
        Seed or generator.
    n_chords : int
        Number of chords.
    chord_beats : float
        Length of each chord in beats.
    bpm : float
        Tempo in beats per minute.
    pitch_range : (int, int)
        Lowest and highest MIDI pitch (inclusive) a note may take.
    program : int
        General MIDI program of the instrument.
    velocity : int
        MIDI velocity of every note.

    Returns
    -------
    rand_midi : pretty_midi.PrettyMIDI
        One instrument, ``n_chords`` chords of ``chord_beats * 60 / bpm`` s each.
    """
    rng = as_rng(rng)
    lo, hi = _check_range(pitch_range)
    _check_common(n_chords, chord_beats, bpm, program)
    if hi - lo < 12:
        raise MusicRLError(f"pitch_range must span at least an octave for chords, got {pitch_range}")
    qualities = list(CHORD_QUALITIES.values())
    chords = []
    for _ in range(int(n_chords)):
        intervals = np.array(qualities[rng.integers(len(qualities))])
        inversion = rng.integers(len(intervals))
        # an inversion lifts the lowest notes by an octave
        intervals = np.sort(np.where(np.arange(len(intervals)) < inversion, intervals + 12, intervals))
        intervals -= intervals[0]
        root = rng.integers(lo, hi - intervals[-1] + 1)
        chords.append(sorted(int(p) for p in root + intervals))
    return _chords_to_midi(chords, chord_beats=chord_beats, bpm=bpm, program=program, velocity=velocity)


def rand_noise(
    rng: int | np.random.Generator | None = None,
    *,
    n_chords: int = 16,
    chord_beats: float = 1.0,
    bpm: float = 120.0,
    pitch_range: tuple[int, int] = (36, 83),
    notes_per_chord: tuple[int, int] = (1, 6),
    program: int = 19,
    velocity: int = 80,
) -> pretty_midi.PrettyMIDI:
    """Random pitch sets: each step a uniformly drawn set of distinct pitches.

    Parameters
    ----------
    rng : int, np.random.Generator or None
        Seed or generator.
    n_chords : int
        Number of steps.
    chord_beats, bpm, program, velocity
        As in :func:`rand_progression`.
    pitch_range : (int, int)
        Lowest and highest MIDI pitch (inclusive).
    notes_per_chord : (int, int)
        Smallest and largest number of pitches per step (inclusive).

    Returns
    -------
    rand_midi : pretty_midi.PrettyMIDI
    """
    rng = as_rng(rng)
    lo, hi = _check_range(pitch_range)
    _check_common(n_chords, chord_beats, bpm, program)
    kmin, kmax = (int(k) for k in notes_per_chord)
    if not 1 <= kmin <= kmax <= hi - lo + 1:
        raise MusicRLError(
            f"notes_per_chord must be (min, max) with 1 <= min <= max <= {hi - lo + 1}, got {notes_per_chord}"
        )
    chords = []
    for _ in range(int(n_chords)):
        k = rng.integers(kmin, kmax + 1)
        chords.append(sorted(int(p) for p in rng.choice(np.arange(lo, hi + 1), size=k, replace=False)))
    return _chords_to_midi(chords, chord_beats=chord_beats, bpm=bpm, program=program, velocity=velocity)


def rand_midis(
    n: int,
    rng: int | np.random.Generator | None = None,
    *,
    kind: str = "progression",
    **kwargs,
) -> list[pretty_midi.PrettyMIDI]:
    """``n`` random pieces from one generator.

    Parameters
    ----------
    n : int
        Number of pieces.
    rng : int, np.random.Generator or None
        Seed or generator; the pieces differ from one another.
    kind : {'progression', 'noise'}
        :func:`rand_progression` or :func:`rand_noise`.
    **kwargs
        Passed to the generator.

    Returns
    -------
    rand_midis : list of pretty_midi.PrettyMIDI
    """
    makers = {"progression": rand_progression, "noise": rand_noise}
    if kind not in makers:
        raise MusicRLError(f"kind must be one of {sorted(makers)}, got {kind!r}")
    rng = as_rng(rng)
    return [makers[kind](rng, **kwargs) for _ in range(int(n))]
