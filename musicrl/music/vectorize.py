"""Chord sequences: MIDI on a fixed grid of chord steps, and back.

A ``seq`` is a multi-hot array of shape ``(n_steps, n_pitches)``: row ``t`` is
the chord of step ``t``, column ``p`` is MIDI pitch ``lowest_pitch + p``. A
batch of seqs is ``(batch, n_steps, n_pitches)``. Steps are measured in beats
(quarter notes), so a piece with tempo changes lands on the same grid as one
without; a seq is played back at a fixed ``bpm``.
"""

from __future__ import annotations

import numpy as np
import pretty_midi

from ..errors import MusicRLError

__all__ = ["MAX_SEQ_STEPS", "check_seqs", "midi_to_seq", "midis_to_seqs", "seq_to_midi"]

MAX_SEQ_STEPS = 100_000
"""Default cap on the steps of one piece in :func:`midi_to_seq` (about 14 hours
at one beat per step and 120 bpm): a corrupt file with a note at a huge time
would otherwise allocate gigabytes."""


def check_seqs(seqs: np.ndarray, *, n_pitches: int | None = None, name: str = "seqs") -> np.ndarray:
    """Validate a seq or a batch of seqs and return it as a float32 batch.

    Parameters
    ----------
    seqs : array-like, shape=(n_steps, n_pitches) or (batch, n_steps, n_pitches)
        Multi-hot chords (0 or 1).
    n_pitches : int, optional
        Required size of the last axis.
    name : str
        How to call the input in error messages.

    Returns
    -------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches), dtype=float32

    Raises
    ------
    MusicRLError
        On a wrong number of axes, a wrong pitch axis, NaN/inf, or values
        other than 0 and 1.
    """
    arr = np.asarray(seqs)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise MusicRLError(
            f"{name} must have shape (n_steps, n_pitches) or (batch, n_steps, n_pitches), "
            f"got shape {arr.shape}"
        )
    if n_pitches is not None and arr.shape[-1] != n_pitches:
        raise MusicRLError(f"{name} must have {n_pitches} pitch columns, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise MusicRLError(f"{name} must have at least one step, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise MusicRLError(f"{name} must be numeric multi-hot, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} contains NaN or inf")
    if not np.all((arr == 0) | (arr == 1)):
        raise MusicRLError(f"{name} must be multi-hot (only 0 and 1)")
    return arr


def _note_beats(midi: pretty_midi.PrettyMIDI, times: np.ndarray, name: str) -> np.ndarray:
    """Times in seconds -> positions in beats, following every tempo change."""
    # notes share onsets and ends, and each conversion is a Python call
    uniq, inverse = np.unique(times, return_inverse=True)
    try:
        with np.errstate(all="ignore"):
            ticks = np.array([midi.time_to_tick(t) for t in uniq], dtype=np.float64)
    except (OverflowError, ValueError):
        raise MusicRLError(f"{name} has note times too large to place on the grid") from None
    return ticks[inverse.reshape(-1)] / midi.resolution


def midi_to_seq(
    midi: pretty_midi.PrettyMIDI,
    *,
    step_beats: float = 1.0,
    lowest_pitch: int = 36,
    n_pitches: int = 48,
    out_of_range: str = "fold",
    quantize: str = "sample",
    name: str = "midi",
    max_steps: int = MAX_SEQ_STEPS,
) -> np.ndarray:
    """Quantize a piece to a grid of chord steps.

    Every non-drum instrument is merged. Times are converted to beats through
    the file's tempo map, so tempo changes do not move the grid. Two rules:

    * ``'sample'`` (default): a pitch sounds in step ``t`` when one of its
      notes sounds at the step's sampling point, a quarter of a step after the
      step starts (so slightly late onsets of performed MIDI still count).
      Notes that sound at no sampling point (passing tones and ornaments
      shorter than a step) are dropped, as in the JSB chorale data sets, so a
      step holds the chord that sounds on the beat.
    * ``'cover'``: a pitch sounds in step ``t`` when its notes cover at least
      half of the step; a note too short to cover half of any step still
      sounds in the step of its onset, so no note is lost (passing tones then
      add to the chord).

    Steps with nothing sounding stay empty (rests).

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        The piece.
    step_beats : float
        Length of a step in beats (quarter notes).
    lowest_pitch : int
        MIDI pitch of column 0.
    n_pitches : int
        Number of pitch columns.
    out_of_range : {'fold', 'drop'}
        Pitches outside the columns are moved by octaves into range ('fold'),
        or ignored ('drop').
    quantize : {'sample', 'cover'}
        The rule above.
    name : str
        How to call the piece in error messages (e.g. its file name).
    max_steps : int
        Longest piece accepted, in steps (default :data:`MAX_SEQ_STEPS`).

    Returns
    -------
    seq : np.ndarray, shape=(n_steps, n_pitches), dtype=float32
        ``n_steps`` runs up to the last step in which a note sounds. Notes
        that end before they start are ignored.

    Raises
    ------
    MusicRLError
        If the piece has no pitched notes (empty, or drums only), none left
        after quantization, a note time is negative or not finite, a pitch is
        outside MIDI 0..127, the piece lasts more than ``max_steps`` steps, or
        a setting is impossible.
    """
    if not step_beats > 0:
        raise MusicRLError(f"step_beats must be > 0, got {step_beats}")
    if not (0 <= lowest_pitch and n_pitches >= 1 and lowest_pitch + n_pitches <= 128):
        raise MusicRLError(
            f"lowest_pitch={lowest_pitch}, n_pitches={n_pitches} must keep pitches within 0..127"
        )
    if quantize not in ("sample", "cover"):
        raise MusicRLError(f"quantize must be 'sample' or 'cover', got {quantize!r}")
    if out_of_range not in ("fold", "drop"):
        raise MusicRLError(f"out_of_range must be 'fold' or 'drop', got {out_of_range!r}")
    if n_pitches < 12 and out_of_range == "fold":
        raise MusicRLError("out_of_range='fold' needs at least 12 pitch columns")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise MusicRLError(f"max_steps must be a positive int, got {max_steps!r}")
    notes = [(n.pitch, n.start, n.end) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    try:
        arr = np.array(notes, dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise MusicRLError(f"{name} has notes with non-numeric pitches or times") from None
    if not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} has notes with NaN or infinite pitches or times")
    if np.any(arr[:, 1:] < 0):
        raise MusicRLError(f"{name} has notes at negative times")
    if np.any((arr[:, 0] < 0) | (arr[:, 0] > 127)):
        raise MusicRLError(f"{name} has notes with pitches outside MIDI 0..127")
    arr = arr[arr[:, 2] > arr[:, 1]]
    if not len(arr):
        raise MusicRLError(f"{name} has no pitched notes (empty or drums only)")
    pitch = arr[:, 0].astype(np.int64)
    beats = _note_beats(midi, arr[:, 1:].T.ravel(), name).reshape(2, -1) / step_beats
    start, end = beats[0], beats[1]
    # checked before either rule allocates (n_steps, n_pitches)
    if not end.max() <= max_steps:
        raise MusicRLError(
            f"{name} lasts {end.max():.6g} steps of {step_beats:g} beats, more than max_steps={max_steps}"
        )
    col = pitch - lowest_pitch
    if out_of_range == "fold":
        col = np.where(col < 0, col % 12, col)
        top = n_pitches - 12
        col = np.where(col >= n_pitches, top + (col - top) % 12, col)
    keep = (col >= 0) & (col < n_pitches)
    if not keep.any():
        raise MusicRLError(f"{name} has no notes within pitches {lowest_pitch}..{lowest_pitch + n_pitches - 1}")
    col, start, end = col[keep], start[keep], end[keep]
    if quantize == "sample":
        return _sample_rule(col, start, end, n_pitches=n_pitches, name=name)
    return _cover_rule(col, start, end, n_pitches=n_pitches)


def _sample_rule(col, start, end, *, n_pitches: int, name: str) -> np.ndarray:
    # sampling points sit at k + 1/4; a note [s, e) holds those with s <= k + 1/4 < e
    first = np.ceil(start - 0.25 - 1e-9).astype(np.int64)
    last = np.ceil(end - 0.25 - 1e-9).astype(np.int64) - 1
    held = last >= first
    if not held.any():
        raise MusicRLError(f"{name} has no notes left after quantization (all shorter than a step, off the beat)")
    col, first, last = col[held], np.maximum(first[held], 0), last[held]
    seq = np.zeros((int(last.max()) + 1, n_pitches), dtype=np.float32)
    for c, a, b in zip(col, first, last):
        seq[a : b + 1, c] = 1.0
    return seq


def _cover_rule(col, start, end, *, n_pitches: int) -> np.ndarray:
    n_steps = max(1, int(np.floor(end.max() + 1e-9)))
    seq = np.zeros((n_steps, n_pitches), dtype=np.float32)
    cover = np.zeros((n_steps, n_pitches), dtype=np.float64)
    steps = np.arange(n_steps, dtype=np.float64)
    for c, s, e in zip(col, start, end):
        lo = int(np.floor(s))
        hi = min(n_steps, int(np.ceil(e)))
        t = steps[lo:hi]
        # overlap of [s, e) with each step [t, t + 1), in steps
        overlap = np.clip(np.minimum(e, t + 1) - np.maximum(s, t), 0, None)
        cover[lo:hi, c] += overlap
        if not np.any(overlap >= 0.5 - 1e-9):
            seq[min(lo, n_steps - 1), c] = 1.0
    seq[cover >= 0.5 - 1e-9] = 1.0
    return seq


def seq_to_midi(
    seq: np.ndarray,
    *,
    step_beats: float = 1.0,
    bpm: float = 120.0,
    lowest_pitch: int = 36,
    hold: str = "restrike",
    program: int = 19,
    velocity: int = 80,
) -> pretty_midi.PrettyMIDI:
    """Write a seq as a one-instrument piece at a fixed tempo.

    Parameters
    ----------
    seq : np.ndarray, shape=(n_steps, n_pitches)
        Multi-hot chords.
    step_beats : float
        Length of a step in beats.
    bpm : float
        Tempo in beats per minute; a step lasts ``step_beats * 60 / bpm`` s.
    lowest_pitch : int
        MIDI pitch of column 0.
    hold : {'restrike', 'tie'}
        A pitch on in consecutive steps is struck again at every step
        ('restrike') or held as one long note ('tie').
    program : int
        General MIDI program of the instrument.
    velocity : int
        MIDI velocity of every note.

    Returns
    -------
    midi : pretty_midi.PrettyMIDI
        ``midi_to_seq`` of it, with the same ``step_beats`` and
        ``lowest_pitch``, gives ``seq`` back exactly (trailing empty steps
        aside, since a MIDI file ends at its last note).
    """
    seqs = check_seqs(seq, name="seq")
    if seqs.shape[0] != 1:
        raise MusicRLError(f"seq must be a single seq (n_steps, n_pitches), got shape {np.shape(seq)}")
    if hold not in ("tie", "restrike"):
        raise MusicRLError(f"hold must be 'tie' or 'restrike', got {hold!r}")
    if not (step_beats > 0 and bpm > 0):
        raise MusicRLError(f"step_beats and bpm must be > 0, got {step_beats}, {bpm}")
    if not 0 <= program <= 127:
        raise MusicRLError(f"program must be a General MIDI program 0..127, got {program}")
    seq = seqs[0] > 0
    n_steps, n_pitches = seq.shape
    if not (0 <= lowest_pitch and lowest_pitch + n_pitches <= 128):
        raise MusicRLError(f"lowest_pitch={lowest_pitch} puts seq pitches outside MIDI 0..127")
    dur = step_beats * 60.0 / bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=program)
    for p in range(n_pitches):
        on = seq[:, p]
        t = 0
        while t < n_steps:
            if not on[t]:
                t += 1
                continue
            end = t + 1
            if hold == "tie":
                while end < n_steps and on[end]:
                    end += 1
            inst.notes.append(
                pretty_midi.Note(velocity=velocity, pitch=lowest_pitch + p, start=t * dur, end=end * dur)
            )
            t = end
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    midi.instruments.append(inst)
    return midi


def midis_to_seqs(
    midis,
    *,
    n_steps: int,
    step_beats: float = 1.0,
    lowest_pitch: int = 36,
    n_pitches: int = 48,
    out_of_range: str = "fold",
    quantize: str = "sample",
) -> np.ndarray:
    """Quantize several pieces to one batch of equal-length seqs.

    Each piece goes through :func:`midi_to_seq`; its first ``n_steps`` steps
    are kept, and a shorter piece is padded with rests (empty steps) at the
    end. E.g. ``midis_to_seqs(midi.rand_midis(n, rng), n_steps=16)`` gives
    ``rand_seqs``.

    Parameters
    ----------
    midis : sequence of pretty_midi.PrettyMIDI
        The pieces (at least one).
    n_steps : int
        Steps of every output seq.
    step_beats, lowest_pitch, n_pitches, out_of_range, quantize
        As in :func:`midi_to_seq`.

    Returns
    -------
    seqs : np.ndarray, shape=(len(midis), n_steps, n_pitches), dtype=float32

    Raises
    ------
    MusicRLError
        If ``midis`` is empty, ``n_steps`` is not a positive int, or a piece
        cannot be quantized (the message names the piece by its index).
    """
    midis = list(midis)
    if not midis:
        raise MusicRLError("midis_to_seqs needs at least one piece, got none")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise MusicRLError(f"n_steps must be a positive int, got {n_steps!r}")
    seqs = np.zeros((len(midis), int(n_steps), int(n_pitches)), dtype=np.float32)
    for i, midi in enumerate(midis):
        if not isinstance(midi, pretty_midi.PrettyMIDI):
            raise MusicRLError(f"midis[{i}] must be a pretty_midi.PrettyMIDI, got {type(midi).__name__}")
        seq = midi_to_seq(
            midi, step_beats=step_beats, lowest_pitch=lowest_pitch, n_pitches=n_pitches,
            out_of_range=out_of_range, quantize=quantize, name=f"midis[{i}]",
        )[:n_steps]
        seqs[i, : len(seq)] = seq
    return seqs
