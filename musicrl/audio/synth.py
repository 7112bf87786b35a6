"""Audio from chords: a fast additive synthesizer, and a soundfont renderer for listening.

Training uses :func:`seq_to_wav`: real and generated music take the same path
(``seq -> seq_to_wav``), so the discriminator never hears a difference in
rendering, only in the chords.

The additive synthesizer
------------------------
Every active pitch of step ``t`` sounds for exactly that step: it is struck at
the step's first sample and its envelope ends at the step's last sample. A pitch
held over several steps is struck again at every step (like ``seq_to_midi`` with
``hold='restrike'``), so a seq and its audio correspond step for step.

One note of pitch ``p`` (frequency ``f = 440 * 2 ** ((p - 69) / 12)`` Hz) is::

    note[n] = env[n] * sum_k a_k * sin(2 * pi * k * f * n / sr),   k = 1..n_harmonics

with ``n`` counted from the note's onset (every note starts at phase 0, so all
notes of a pitch are the same waveform), partials at or above ``sr / 2`` left
out (no aliasing), and ``a_k`` proportional to ``1 / k`` with
``sum_k a_k = 1 / MAX_VOICES``. ``env`` rises linearly from 0 over ``attack``
seconds and falls linearly to 0 over the last ``release`` seconds of the step
(both shortened in proportion when they do not fit in one step).

Loudness is fixed, never normalized per clip: a note's peak is at most
``1 / MAX_VOICES = 1 / 48``, so any chord of up to 48 notes (every pitch of the
default 48-pitch range at once) stays within [-1, 1]. The log-mel's fixed
reference then makes loudness comparable across clips.

Phases are computed in float64 from the note's onset, so they stay exact over
clips of any length; samples are returned as float32.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pretty_midi

from ..errors import MusicRLError
from ..music.vectorize import check_seqs

__all__ = [
    "MAX_VOICES",
    "default_sf2_path",
    "midi_to_wav_soundfont",
    "note_waves",
    "seq_to_wav",
    "step_samples",
    "write_wav",
]

MAX_VOICES = 48
"""Simultaneous notes that always stay within [-1, 1]: each note peaks at ``1 / MAX_VOICES``."""


def step_samples(step_seconds: float, sr: int) -> int:
    """Samples in one chord step: ``round(step_seconds * sr)`` (as ``Config.step_samples``)."""
    return int(round(float(step_seconds) * int(sr)))


def _check_synth_settings(sr, step_seconds, lowest_pitch, n_pitches, n_harmonics, attack, release):
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise MusicRLError(f"sr must be a positive int (Hz), got {sr!r}")
    for name, value in (("step_seconds", step_seconds), ("attack", attack), ("release", release)):
        if not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise MusicRLError(f"{name} must be a finite number of seconds, got {value!r}")
    if not step_seconds > 0:
        raise MusicRLError(f"step_seconds must be > 0, got {step_seconds!r}")
    if step_samples(step_seconds, sr) < 1:
        raise MusicRLError(f"step_seconds={step_seconds!r} is shorter than one sample at sr={sr}")
    if attack < 0 or release < 0:
        raise MusicRLError(f"attack and release must be >= 0 s, got attack={attack!r}, release={release!r}")
    if isinstance(n_harmonics, bool) or not isinstance(n_harmonics, (int, np.integer)) or n_harmonics < 1:
        raise MusicRLError(f"n_harmonics must be an int >= 1, got {n_harmonics!r}")
    if isinstance(lowest_pitch, bool) or not isinstance(lowest_pitch, (int, np.integer)):
        raise MusicRLError(f"lowest_pitch must be an int MIDI pitch, got {lowest_pitch!r}")
    if not (0 <= lowest_pitch and lowest_pitch + n_pitches <= 128):
        raise MusicRLError(
            f"lowest_pitch={lowest_pitch} with {n_pitches} pitch columns puts pitches outside MIDI 0..127"
        )


def _envelope(n: int, attack_n: int, release_n: int) -> np.ndarray:
    """Linear attack from 0 and linear release to 0 within ``n`` samples."""
    if attack_n + release_n > n:
        scale = n / (attack_n + release_n)
        attack_n, release_n = int(attack_n * scale), int(release_n * scale)
    i = np.arange(n, dtype=np.float64)
    env = np.ones(n)
    if attack_n > 0:
        env = np.minimum(env, i / attack_n)
    if release_n > 0:
        # reaches 0 one sample after the step, where the next note starts at 0
        env = np.minimum(env, (n - i) / release_n)
    return env


@functools.lru_cache(maxsize=16)
def _note_waves_cached(sr, n, lowest_pitch, n_pitches, n_harmonics, attack_n, release_n):
    env = _envelope(n, attack_n, release_n)
    t = np.arange(n, dtype=np.float64) / sr
    k = np.arange(1, n_harmonics + 1, dtype=np.float64)
    amps = (1.0 / k) / np.sum(1.0 / k) / MAX_VOICES
    waves = np.zeros((n_pitches, n), dtype=np.float64)
    for i in range(n_pitches):
        f0 = 440.0 * 2.0 ** ((lowest_pitch + i - 69) / 12.0)
        for kk, a in zip(k, amps):
            if kk * f0 >= sr / 2:
                break
            # phase in float64, wrapped before the sine: exact at any clip length
            phase = np.mod(kk * f0 * t, 1.0) * (2.0 * np.pi)
            waves[i] += a * np.sin(phase)
    waves *= env
    out = waves.astype(np.float32)
    out.setflags(write=False)
    return out


def note_waves(
    *,
    sr: int,
    step_seconds: float,
    lowest_pitch: int,
    n_pitches: int,
    n_harmonics: int,
    attack: float,
    release: float,
) -> np.ndarray:
    """The waveform of one note of every pitch column, as :func:`seq_to_wav` plays it.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    step_seconds : float
        Length of a chord step (and of a note) in seconds.
    lowest_pitch : int
        MIDI pitch of row 0.
    n_pitches : int
        Number of pitches (rows).
    n_harmonics : int
        Harmonic partials per note.
    attack, release : float
        Envelope ramp times in seconds.

    Returns
    -------
    waves : np.ndarray, shape=(n_pitches, step_samples), dtype=float32
        Read-only (cached per settings). ``seq_to_wav`` of a one-step seq with
        only pitch ``i`` on is exactly ``waves[i]``.
    """
    if isinstance(n_pitches, bool) or not isinstance(n_pitches, (int, np.integer)) or n_pitches < 1:
        raise MusicRLError(f"n_pitches must be an int >= 1, got {n_pitches!r}")
    _check_synth_settings(sr, step_seconds, lowest_pitch, n_pitches, n_harmonics, attack, release)
    return _note_waves_cached(
        int(sr),
        step_samples(step_seconds, sr),
        int(lowest_pitch),
        int(n_pitches),
        int(n_harmonics),
        int(round(attack * sr)),
        int(round(release * sr)),
    )


def seq_to_wav(
    seqs: np.ndarray,
    *,
    sr: int,
    step_seconds: float,
    lowest_pitch: int,
    n_harmonics: int,
    attack: float,
    release: float,
) -> np.ndarray:
    """Synthesize seqs with the additive synthesizer (the training renderer).

    Parameters
    ----------
    seqs : array-like, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)
        Multi-hot chords; column ``p`` is MIDI pitch ``lowest_pitch + p``.
    sr : int
        Sample rate in Hz.
    step_seconds : float
        Length of a chord step in seconds; a step lasts
        ``round(step_seconds * sr)`` samples.
    lowest_pitch : int
        MIDI pitch of column 0.
    n_harmonics : int
        Harmonic partials per note (amplitudes ``~ 1/k``; partials at or above
        ``sr / 2`` are left out).
    attack, release : float
        Linear envelope ramps in seconds at the start and end of every step.

    Returns
    -------
    wavs : np.ndarray, shape=(batch, n_steps * step_samples), dtype=float32
        A single seq gives batch 1. Deterministic: a clip's samples do not
        depend on the other clips of the batch. Within [-1, 1] for chords of
        up to :data:`MAX_VOICES` notes; never normalized per clip.

    Raises
    ------
    MusicRLError
        On a malformed seq (see ``vectorize.check_seqs``) or a bad setting.
    """
    seqs = check_seqs(seqs, name="seqs")
    batch, n_steps, n_pitches = seqs.shape
    waves = note_waves(
        sr=sr, step_seconds=step_seconds, lowest_pitch=lowest_pitch, n_pitches=n_pitches,
        n_harmonics=n_harmonics, attack=attack, release=release,
    )
    n = waves.shape[1]
    out = np.zeros((batch, n_steps, n), dtype=np.float32)
    active = seqs > 0
    # one pass per sounding pitch, always in pitch order: a clip's sum does not
    # depend on which other clips share the batch
    for p in np.flatnonzero(active.any(axis=(0, 1))):
        b, t = np.nonzero(active[:, :, p])
        out[b, t] += waves[p]
    return out.reshape(batch, n_steps * n)


# --- soundfont rendering (listening and export) --------------------------------


def default_sf2_path() -> Path:
    """The General MIDI soundfont shipped inside pretty_midi (``TimGM6mb.sf2``)."""
    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def midi_to_wav_soundfont(
    midi: pretty_midi.PrettyMIDI,
    *,
    sr: int,
    sf2_path: str | os.PathLike | None = None,
    tail: float = 1.0,
    gain_db: float = 0.0,
) -> np.ndarray:
    """Render a piece with a General MIDI soundfont, offline (for listening and export).

    Each instrument plays on its own MIDI channel with its program (drums on
    channel 10), with its notes, pitch bends and control changes. The stereo
    output of the soundfont synthesizer is averaged to mono.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        The piece.
    sr : int
        Sample rate in Hz.
    sf2_path : str or path-like, optional
        A ``.sf2`` soundfont (default: :func:`default_sf2_path`).
    tail : float
        Seconds rendered after the last note ends, so releases ring out.
    gain_db : float
        Output gain in dB.

    Returns
    -------
    wav : np.ndarray, shape=(n_samples,), dtype=float32
        ``n_samples = round((midi.get_end_time() + tail) * sr)``. Not
        normalized; soundfont voices can exceed [-1, 1] on loud dense pieces.

    Raises
    ------
    MusicRLError
        If the soundfont is missing or unreadable, or a setting is bad.
    """
    import tinysoundfont

    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise MusicRLError(f"sr must be a positive int (Hz), got {sr!r}")
    if not (np.isfinite(tail) and tail >= 0):
        raise MusicRLError(f"tail must be a finite number of seconds >= 0, got {tail!r}")
    if not isinstance(midi, pretty_midi.PrettyMIDI):
        raise MusicRLError(f"midi must be a pretty_midi.PrettyMIDI, got {type(midi).__name__}")
    path = Path(sf2_path) if sf2_path is not None else default_sf2_path()
    if not path.is_file():
        raise MusicRLError(f"soundfont file {str(path)!r} does not exist")

    synth = tinysoundfont.Synth(gain=float(gain_db), samplerate=int(sr))
    try:
        sfid = synth.sfload(str(path))
    except Exception as e:  # the binding raises plain exceptions on bad files
        raise MusicRLError(f"cannot load soundfont {str(path)!r}: {e}") from None

    # (sample, order, callable): notes off before notes on at the same instant
    events: list[tuple[int, int, object]] = []
    channels = [c for c in range(16) if c != 9]
    for i, inst in enumerate(midi.instruments):
        chan = 9 if inst.is_drum else channels[i % len(channels)]
        try:
            synth.program_select(chan, sfid, 128 if inst.is_drum else 0, 0 if inst.is_drum else inst.program,
                                 is_drums=inst.is_drum)
        except Exception:
            # a soundfont without this preset: fall back to the first one
            synth.program_select(chan, sfid, 0, 0, is_drums=inst.is_drum)
        for cc in inst.control_changes:
            events.append((int(round(cc.time * sr)), 1,
                           functools.partial(synth.control_change, chan, cc.number, cc.value)))
        for pb in inst.pitch_bends:
            events.append((int(round(pb.time * sr)), 1,
                           functools.partial(synth.pitchbend, chan, int(pb.pitch) + 8192)))
        for note in inst.notes:
            if note.end <= note.start:  # inaudible, and its off would precede its on
                continue
            events.append((int(round(note.end * sr)), 0, functools.partial(synth.noteoff, chan, note.pitch)))
            events.append((int(round(note.start * sr)), 2,
                           functools.partial(synth.noteon, chan, note.pitch, note.velocity)))
    events.sort(key=lambda e: (e[0], e[1]))

    n_samples = int(round((midi.get_end_time() + float(tail)) * sr))
    out = np.zeros((n_samples, 2), dtype=np.float32)
    pos = 0
    for when, _, action in events + [(n_samples, 3, None)]:
        when = min(max(when, 0), n_samples)
        if when > pos:
            buf = synth.generate_simple(when - pos)
            out[pos:when] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
            pos = when
        if action is not None:
            action()
    return out.mean(axis=1)


def write_wav(path: str | os.PathLike, wav: np.ndarray, *, sr: int, subtype: str = "PCM_16") -> None:
    """Write a mono waveform to a WAV file atomically (a temporary file, then a rename).

    Parameters
    ----------
    path : str or path-like
        Destination ``.wav`` file.
    wav : np.ndarray, shape=(n_samples,)
        Samples in [-1, 1] (values outside are clipped by integer subtypes).
    sr : int
        Sample rate in Hz.
    subtype : str
        soundfile subtype, e.g. ``'PCM_16'`` or ``'FLOAT'``.

    Raises
    ------
    MusicRLError
        On a wrong shape, NaN/inf, or a failed write.
    """
    import soundfile

    arr = np.asarray(wav)
    if arr.ndim != 1:
        raise MusicRLError(f"wav must have shape (n_samples,), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise MusicRLError(f"wav must be floating point samples, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise MusicRLError("wav contains NaN or inf")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise MusicRLError(f"sr must be a positive int (Hz), got {sr!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        soundfile.write(str(tmp), arr, int(sr), subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write WAV file {str(path)!r}: {e}") from None
