"""Log-mel spectrograms: a librosa reference, a batched TensorFlow path, and a fast seq path.

All three give the same numbers (to float32 round-off) for the same audio:

* :func:`wav_to_mel_librosa`: one clip with librosa, in float64; the reference.
* :func:`wav_to_mel`: a batch of clips with TensorFlow (CPU or GPU), chunked.
* :func:`seq_to_mel`: a batch of seqs straight to log-mels, equal to
  ``wav_to_mel(seq_to_wav(seqs))`` but much faster; the training path.

Conventions
-----------
Framing is librosa's ``center=True`` with zero padding (``pad_mode='constant'``,
librosa's default): ``n_fft // 2`` zeros on both sides, a periodic Hann
window, frame ``f`` centred on sample ``f * hop_length``, so a clip of
``n_samples`` has ``n_frames = 1 + n_samples // hop_length`` frames (``n_fft``
must be even). Power spectrogram (``|STFT|**2``, unnormalized FFT) through
``librosa.filters.mel`` (Slaney mel scale and area normalization, librosa's
defaults).

Decibels use a FIXED reference, never the clip's own maximum, so loudness is
comparable across clips: **0 dB is the loudest mel band of a full-scale
(amplitude 1) steady sine**, taken over sine frequencies in ``[fmin, fmax]``
(its negative-frequency image left out); see :func:`full_scale_mel_power`.
A clip within [-1, 1] stays at or below about 0 dB. Values are clipped below
at ``-top_db``; silence is exactly ``-top_db`` everywhere.

Outputs are time-major, ``(batch, n_frames, n_mels)`` float32, so Keras sees
frames as time steps.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..errors import MusicRLError
from .synth import note_waves, seq_to_wav, step_samples
from ..music.vectorize import check_seqs

__all__ = [
    "full_scale_mel_power",
    "mel_filters",
    "n_mel_frames",
    "seq_to_mel",
    "seq_to_mel_by_width",
    "wav_to_mel",
    "wav_to_mel_librosa",
]

# Upper bound on the size of the per-(pitch, offset) note spectra table of the
# fast seq path; beyond it (settings without a short repeat period) seq_to_mel
# synthesizes and transforms the audio instead.
_MAX_TABLE_BYTES = 256 * 1024 * 1024


# --- settings ------------------------------------------------------------------


def _check_mel_settings(sr, n_fft, hop_length, n_mels, fmin, fmax, top_db) -> None:
    for name, value in (("sr", sr), ("n_fft", n_fft), ("hop_length", hop_length), ("n_mels", n_mels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise MusicRLError(f"{name} must be a positive int, got {value!r}")
    if n_fft % 2:
        raise MusicRLError(f"n_fft must be even (centered frames), got {n_fft}")
    if hop_length > n_fft:
        raise MusicRLError(f"hop_length must be at most n_fft={n_fft}, got {hop_length}")
    if n_mels > n_fft // 2 + 1:
        raise MusicRLError(f"n_mels must be at most n_fft // 2 + 1 = {n_fft // 2 + 1}, got {n_mels}")
    for name, value in (("fmin", fmin), ("fmax", fmax), ("top_db", top_db)):
        if not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            raise MusicRLError(f"{name} must be a finite number, got {value!r}")
    if not 0 <= fmin < fmax <= sr / 2:
        raise MusicRLError(f"need 0 <= fmin < fmax <= sr / 2 = {sr / 2:g} Hz, got fmin={fmin}, fmax={fmax}")
    if not top_db > 0:
        raise MusicRLError(f"top_db must be > 0, got {top_db}")


def n_mel_frames(n_samples: int, *, hop_length: int) -> int:
    """Frames of a clip of ``n_samples``: ``1 + n_samples // hop_length`` (centered frames)."""
    return 1 + int(n_samples) // int(hop_length)


@functools.lru_cache(maxsize=16)
def _filters(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    import librosa

    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    fb.setflags(write=False)
    return fb


def mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The mel filterbank, ``librosa.filters.mel`` with its defaults (cached per settings).

    Returns
    -------
    fb : np.ndarray, shape=(n_mels, n_fft // 2 + 1), dtype=float32
        Read-only.
    """
    _check_mel_settings(sr, n_fft, 1, n_mels, fmin, fmax, 1.0)
    return _filters(int(sr), int(n_fft), int(n_mels), float(fmin), float(fmax))


def _window(n_fft: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", n_fft, fftbins=True)


@functools.lru_cache(maxsize=16)
def _full_scale(sr, n_fft, n_mels, fmin, fmax) -> float:
    fb = _filters(sr, n_fft, n_mels, fmin, fmax).astype(np.float64)
    # sine frequencies on a grid 16 times finer than the FFT bins
    freqs = np.linspace(fmin, fmax, int(16 * (fmax - fmin) * n_fft / sr) + 2)
    n = np.arange(n_fft)
    best = 0.0
    for chunk in np.array_split(freqs, max(1, len(freqs) // 512)):
        # positive-frequency half of a unit sine: 0.5 * exp(i w n)
        x = 0.5 * np.exp(2j * np.pi * chunk[:, None] * n[None, :] / sr) * _window(n_fft)
        power = np.abs(np.fft.fft(x, axis=-1)[:, : n_fft // 2 + 1]) ** 2
        best = max(best, float((power @ fb.T).max()))
    return best


def full_scale_mel_power(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> float:
    """The 0 dB reference: the loudest mel band of a full-scale steady sine.

    The largest mel power (unnormalized FFT, periodic Hann window,
    ``mel_filters``) that a sine of amplitude 1, at any frequency in
    ``[fmin, fmax]``, reaches in any band; its negative-frequency image is left
    out so the value does not depend on the sine's phase. Cached per settings.

    Returns
    -------
    ref : float
        Power; ``10 * log10(mel / ref)`` is the dB scale of :func:`wav_to_mel`.
    """
    _check_mel_settings(sr, n_fft, 1, n_mels, fmin, fmax, 1.0)
    return _full_scale(int(sr), int(n_fft), int(n_mels), float(fmin), float(fmax))


def _check_wavs(wavs, *, ndim_ok: tuple[int, ...], name: str = "wavs") -> np.ndarray:
    arr = np.asarray(wavs)
    if arr.ndim not in ndim_ok:
        shapes = {1: "(n_samples,)", 2: "(batch, n_samples)"}
        expected = " or ".join(shapes[d] for d in ndim_ok)
        raise MusicRLError(f"{name} must have shape {expected}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        # integer PCM would silently land ~90 dB above the full-scale reference
        raise MusicRLError(f"{name} must be floating-point samples (full scale 1.0), got dtype {arr.dtype}")
    if arr.shape[-1] < 1:
        raise MusicRLError(f"{name} must have at least one sample, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} contains NaN or inf")
    return arr


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MusicRLError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


# --- librosa reference ---------------------------------------------------------


def wav_to_mel_librosa(
    wav: np.ndarray,
    *,
    sr: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    top_db: float,
) -> np.ndarray:
    """Log-mel of one clip with librosa, in float64: the reference for :func:`wav_to_mel`.

    Parameters
    ----------
    wav : np.ndarray, shape=(n_samples,)
        Samples.
    sr, n_fft, hop_length, n_mels, fmin, fmax, top_db
        As in :func:`wav_to_mel`.

    Returns
    -------
    mel : np.ndarray, shape=(1 + n_samples // hop_length, n_mels), dtype=float32
        dB relative to :func:`full_scale_mel_power`, clipped below at ``-top_db``.
    """
    import librosa

    _check_mel_settings(sr, n_fft, hop_length, n_mels, fmin, fmax, top_db)
    wav = _check_wavs(wav, ndim_ok=(1,), name="wav").astype(np.float64)
    power = librosa.feature.melspectrogram(
        y=wav, sr=sr, n_fft=n_fft, hop_length=hop_length, center=True, pad_mode="constant",
        power=2.0, n_mels=n_mels, fmin=fmin, fmax=fmax,
    )
    ref = full_scale_mel_power(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    db = librosa.power_to_db(power, ref=ref, amin=ref * 10.0 ** (-top_db / 10.0), top_db=None)
    return db.T.astype(np.float32)


# --- TensorFlow building blocks -------------------------------------------------


_N_BLOCKS = 4


class _MelProjector:
    """Power spectra -> mel power, exploiting the banded filterbank.

    The bands are split into a few blocks of consecutive bands; each block
    needs only the FFT bins ``lo:hi`` its filters cover, so the projection is a
    few small dense products instead of one ``n_bins x n_mels`` product (about
    a quarter of the multiplies with 4 blocks). The fast seq path assembles
    each block's bins separately (``blocks`` gives their ranges): on XLA CPU
    that measured faster than slicing one spectrum, than one dense product,
    and much faster than segment sums over bins.
    """

    def __init__(self, sr, n_fft, n_mels, fmin, fmax):
        import tensorflow as tf

        fb = _filters(sr, n_fft, n_mels, fmin, fmax)
        self.n_mels = n_mels
        self.blocks = []  # (lo, hi, weights (hi - lo, bands)) in band order
        for bands in np.array_split(np.arange(n_mels), min(_N_BLOCKS, n_mels)):
            used = np.flatnonzero(fb[bands].any(axis=0))
            # a block of empty filters still needs one (zero-weight) bin
            lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
            weights = np.ascontiguousarray(fb[bands, lo:hi].T)
            self.blocks.append((lo, hi, tf.constant(weights)))

    @staticmethod
    def project_block(power, weights):
        """Power at one block's bins (..., hi - lo) -> its bands (..., n_bands)."""
        import tensorflow as tf

        flat = tf.reshape(power, [-1, power.shape[-1]])
        mel = tf.matmul(flat, weights)
        return tf.reshape(mel, tf.concat([tf.shape(power)[:-1], [weights.shape[-1]]], 0))

    def __call__(self, power):
        """Power at all ``n_fft // 2 + 1`` bins -> mel power (..., n_mels)."""
        import tensorflow as tf

        return tf.concat([self.project_block(power[..., lo:hi], w) for lo, hi, w in self.blocks], axis=-1)


def _to_db(mel_power, ref: float, top_db: float):
    import tensorflow as tf

    floor = 10.0 ** (-top_db / 10.0)
    ratio = tf.maximum(mel_power * (1.0 / ref), floor)
    return (10.0 / math.log(10.0)) * tf.math.log(ratio)


@functools.lru_cache(maxsize=8)
def _wav_fn(sr, n_fft, hop_length, n_mels, fmin, fmax, top_db):
    import tensorflow as tf

    window = tf.constant(_window(n_fft).astype(np.float32))
    project = _MelProjector(sr, n_fft, n_mels, fmin, fmax)
    ref = _full_scale(sr, n_fft, n_mels, fmin, fmax)
    half = n_fft // 2

    @tf.function(jit_compile=True)
    def fn(wavs):
        padded = tf.pad(wavs, [[0, 0], [half, half]])
        frames = tf.signal.frame(padded, n_fft, hop_length) * window
        spec = tf.signal.rfft(frames)
        power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2
        return _to_db(project(power), ref, top_db)

    return fn


def _bucket(n: int, cap: int) -> int:
    """Round a batch up to a power of two (at most ``cap``), to bound recompiles."""
    return min(cap, 1 << max(0, int(n - 1).bit_length()))


def wav_to_mel(
    wavs: np.ndarray,
    *,
    sr: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    top_db: float,
    chunk_size: int = 32,
) -> np.ndarray:
    """Log-mels of a batch of clips with TensorFlow (CPU or GPU).

    Parameters
    ----------
    wavs : array-like, shape=(batch, n_samples) or (n_samples,)
        Samples, float. A single clip gives batch 1.
    sr : int
        Sample rate in Hz.
    n_fft : int
        FFT size (even).
    hop_length : int
        Hop between frames in samples.
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Mel filterbank edges in Hz.
    top_db : float
        Floor: values are clipped below at ``-top_db`` dB.
    chunk_size : int
        Clips transformed at once (bounds memory; results do not depend on it).

    Returns
    -------
    mels : np.ndarray, shape=(batch, 1 + n_samples // hop_length, n_mels), dtype=float32
        dB relative to :func:`full_scale_mel_power` (0 dB: a full-scale sine),
        in ``[-top_db, ~0]`` for audio within [-1, 1].

    Raises
    ------
    MusicRLError
        On a wrong shape, NaN/inf, or a bad setting.
    """
    import tensorflow as tf

    _check_mel_settings(sr, n_fft, hop_length, n_mels, fmin, fmax, top_db)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    wavs = _check_wavs(wavs, ndim_ok=(1, 2)).astype(np.float32)
    if wavs.ndim == 1:
        wavs = wavs[None]
    fn = _wav_fn(int(sr), int(n_fft), int(hop_length), int(n_mels), float(fmin), float(fmax), float(top_db))
    batch, n_samples = wavs.shape
    out = np.empty((batch, n_mel_frames(n_samples, hop_length=hop_length), n_mels), dtype=np.float32)
    for lo in range(0, batch, chunk_size):
        chunk = wavs[lo : lo + chunk_size]
        size = _bucket(len(chunk), chunk_size)
        if size > len(chunk):
            chunk = np.concatenate([chunk, np.zeros((size - len(chunk), n_samples), np.float32)])
        out[lo : lo + chunk_size] = fn(tf.constant(chunk)).numpy()[: min(chunk_size, batch - lo)]
    return out


# --- the fast seq path ------------------------------------------------------------


class _SeqPlan:
    """Everything seq_to_mel precomputes for one set of settings and clip shape.

    The STFT is linear and every note of a pitch is the same waveform (struck
    at a step start, phase 0), so a frame's complex spectrum is the sum, over
    the notes that overlap the frame, of the spectrum of that pitch's note at
    that onset offset from the frame start. The offsets repeat (with 0.5 s
    steps = 8000 samples and hop 256, every 4 steps = 125 frames), so one table
    of ``(pitch, offset)`` spectra, computed in float64 and stored as float32,
    serves every frame of every clip; for settings without a short period the
    distinct offsets are simply more numerous (per step), and beyond
    ``_MAX_TABLE_BYTES`` the plan is marked not ``fast``.

    At run time only the sounding notes are gathered (a chord has ~4 of 48
    pitches). Frames are grouped by how many steps overlap them (1 inside a
    step, 2 across a step boundary), and the spectra are kept per mel block
    (see ``_MelProjector``), so each block's power goes straight into its small
    projection. The row of pitch ``n_pitches`` is silence, for padding.
    """

    def __init__(self, synth_key, mel_key, n_steps, n_pitches):
        import tensorflow as tf

        sr, step_seconds, lowest_pitch, n_harmonics, attack, release = synth_key
        _, n_fft, hop, n_mels, fmin, fmax, top_db = mel_key
        self.n_pitches = n_pitches
        self.n_mels = n_mels
        S = step_samples(step_seconds, sr)
        n_samples = n_steps * S
        n_frames = n_mel_frames(n_samples, hop_length=hop)
        self.n_frames = n_frames
        half = n_fft // 2
        starts = np.arange(n_frames) * hop - half
        first = np.clip(np.floor_divide(starts, S), 0, n_steps - 1)
        last = np.clip(np.floor_divide(starts + n_fft - 1, S), 0, n_steps - 1)
        n_over = last - first + 1
        offsets = first[:, None] + np.arange(n_over.max())[None, :]  # steps per frame
        d_all = offsets * S - starts[:, None]  # note onset relative to frame start
        valid = np.arange(n_over.max())[None, :] < n_over[:, None]
        uniq, inverse = np.unique(d_all[valid], return_inverse=True)
        n_d = len(uniq)
        self.project = _MelProjector(sr, n_fft, n_mels, fmin, fmax)
        n_cols = sum(hi - lo for lo, hi, _ in self.project.blocks)
        self.table_bytes = (n_pitches + 1) * n_d * 2 * n_cols * 4
        self.fast = self.table_bytes <= _MAX_TABLE_BYTES
        if not self.fast:
            return
        d_idx = np.zeros_like(d_all)
        d_idx[valid] = inverse
        waves = note_waves(sr=sr, step_seconds=step_seconds, lowest_pitch=lowest_pitch, n_pitches=n_pitches,
                           n_harmonics=n_harmonics, attack=attack, release=release).astype(np.float64)
        window = _window(n_fft)
        # per mel block, the spectra at the block's bins: rows (pitch, offset), columns re | im
        tables = [np.zeros((n_pitches + 1, n_d, 2 * (hi - lo)), dtype=np.float32)
                  for lo, hi, _ in self.project.blocks]
        j = np.arange(n_fft)
        for i, d in enumerate(uniq):
            m = j - d
            inside = (m >= 0) & (m < S)
            seg = np.zeros((n_pitches, n_fft))
            seg[:, inside] = waves[:, m[inside]] * window[inside]
            spec = np.fft.rfft(seg, axis=-1)
            for table, (lo, hi, _) in zip(tables, self.project.blocks):
                table[:n_pitches, i, : hi - lo] = spec[:, lo:hi].real
                table[:n_pitches, i, hi - lo :] = spec[:, lo:hi].imag
        self.n_d = n_d
        self.tables = [tf.constant(t.reshape((n_pitches + 1) * n_d, -1)) for t in tables]
        # Frames are grouped by how many steps overlap them, and within a group
        # by their offsets: frames at the same offsets use the same table rows,
        # so computing them together (for all clips of a chunk) keeps those
        # rows in cache. A group is laid out (n_classes, n_reps): class i holds
        # the frames at offsets i; short classes are padded with frames that
        # point at the silent step n_steps.
        self.n_steps = n_steps
        self.groups = []
        positions = np.zeros(n_frames, dtype=np.int64)
        base = 0
        for j_count in np.unique(n_over):
            frames = np.flatnonzero(n_over == j_count)
            keys, cls = np.unique(d_idx[frames, :j_count], axis=0, return_inverse=True)
            cls = cls.reshape(-1)
            n_cls, n_rep = len(keys), int(np.bincount(cls).max())
            steps = np.full((n_cls, n_rep, j_count), n_steps, dtype=np.int32)
            offs = np.zeros((n_cls, n_rep, j_count), dtype=np.int32)
            fill = np.zeros(n_cls, dtype=np.int64)
            for f, c in zip(frames, cls):
                steps[c, fill[c]] = offsets[f, :j_count]
                offs[c, fill[c]] = d_idx[f, :j_count]
                positions[f] = base + c * n_rep + fill[c]
                fill[c] += 1
            self.groups.append((steps, offs))
            base += n_cls * n_rep
        self.restore = positions.astype(np.int32)
        self.ref = _full_scale(sr, n_fft, n_mels, fmin, fmax)
        self.top_db = top_db
        self._fns: dict[tuple[int, ...], Any] = {}

    def fn(self, act):
        """Log-mels of a chunk of active-pitch ids ``(batch, n_steps, k)``.

        One compiled function per chunk shape: a few shapes occur (batch
        buckets times note slots), each traced and compiled once. They are
        kept as concrete functions because TensorFlow counts the traces of
        every ``tf.function`` made from one Python function together and
        would warn of retracing after a handful of shapes.
        """
        import tensorflow as tf

        key = tuple(act.shape)
        if key not in self._fns:
            self._fns[key] = self._make_fn().get_concrete_function(
                self.tables, tf.TensorSpec(key, tf.int32))
        return self._fns[key](self.tables, act)

    def _make_fn(self):
        import tensorflow as tf

        groups = [(tf.constant(s), tf.constant(d)) for s, d in self.groups]
        restore = tf.constant(self.restore)
        n_d, n_pitches = self.n_d, self.n_pitches
        project, ref, top_db = self.project, self.ref, self.top_db
        weights = [w for _, _, w in project.blocks]

        @tf.function(jit_compile=True)
        def fn(tables, act):
            # act: (batch, n_steps, k) pitch ids of the active notes, padded with the silent id;
            # one more step of silence for the padding frames, then steps first
            silent = tf.fill(tf.concat([tf.shape(act)[:1], [1], tf.shape(act)[2:]], 0), n_pitches)
            act_t = tf.transpose(tf.concat([act, silent], axis=1), [1, 0, 2])  # (n_steps + 1, b, k)
            mels = []
            for steps, d_idx in groups:
                n_cls, n_rep, j = steps.shape
                rows = tf.gather(act_t, steps)  # (cls, rep, j, b, k)
                rows = rows * n_d + d_idx[:, :, :, None, None]
                rows = tf.transpose(rows, [0, 3, 1, 2, 4])  # (cls, b, rep, j, k)
                rows = tf.reshape(rows, [n_cls, -1, n_rep, j * rows.shape[-1]])
                bands = []
                for table, w in zip(tables, weights):
                    # the frame's complex spectrum: the sounding notes' spectra, summed
                    if rows.shape[-1] <= _MAX_UNROLL:
                        # one gather per note, added: XLA fuses these into one pass
                        spec = tf.gather(table, rows[..., 0])  # (cls, b, rep, 2 * n_block_bins)
                        for i in range(1, rows.shape[-1]):
                            spec = spec + tf.gather(table, rows[..., i])
                    else:  # dense chords: one gather, then a sum (compiles much faster)
                        spec = tf.reduce_sum(tf.gather(table, rows), axis=3)
                    half = spec.shape[-1] // 2
                    power = spec[..., :half] ** 2 + spec[..., half:] ** 2
                    bands.append(project.project_block(power, w))
                mel = tf.transpose(tf.concat(bands, axis=-1), [1, 0, 2, 3])  # (b, cls, rep, n_mels)
                mels.append(tf.reshape(mel, [-1, n_cls * n_rep, mel.shape[-1]]))
            mel = tf.gather(tf.concat(mels, axis=1), restore, axis=1)
            return _to_db(mel, ref, top_db)

        return fn


@functools.lru_cache(maxsize=4)
def _seq_plan(synth_key, mel_key, n_steps, n_pitches) -> _SeqPlan:
    return _SeqPlan(synth_key, mel_key, n_steps, n_pitches)


# frames seq_to_mel transforms at once at most: 64 clips of 16 steps at the default settings
_CHUNK_FRAMES = 64 * 501
# frames x note slots at once at most when chords are too dense to unroll (about 0.5 GB)
_DENSE_CHUNK_SLOT_FRAMES = 4 * _CHUNK_FRAMES

# note slots per frame up to which the fast path's sum is unrolled
_MAX_UNROLL = 16

_K_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64, 96, 128)


def _active_pitches(on: np.ndarray, k: int, silent: int) -> np.ndarray:
    """(batch, n_steps, n_pitches) bool -> (batch, n_steps, k) ids of active pitches, padded."""
    order = np.argsort(~on, axis=-1, kind="stable")[..., :k]
    return np.where(np.take_along_axis(on, order, axis=-1), order, silent).astype(np.int32)


def seq_to_mel(
    seqs: np.ndarray,
    *,
    sr: int,
    step_seconds: float,
    lowest_pitch: int,
    n_harmonics: int,
    attack: float,
    release: float,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    top_db: float,
    chunk_size: int = 64,
    note_slots: int = 0,
) -> np.ndarray:
    """Log-mels of seqs, as ``wav_to_mel(seq_to_wav(seqs))`` but much faster (the training path).

    The complex STFT is assembled from a table of per-(pitch, offset) note
    spectra computed once per settings (the STFT is linear and every note of
    a pitch is the same waveform), gathering only the active notes of each
    step; then power, a banded mel projection and dB, compiled with XLA. For
    settings whose frame/step offsets do not repeat within the clip
    (an impractically large table) it synthesizes and transforms the audio.

    Parameters
    ----------
    seqs : array-like, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)
        Multi-hot chords.
    sr, step_seconds, lowest_pitch, n_harmonics, attack, release
        Synthesizer settings, as in ``synth.seq_to_wav``.
    n_fft, hop_length, n_mels, fmin, fmax, top_db
        Mel settings, as in :func:`wav_to_mel`.
    chunk_size : int
        Seqs transformed at once at most (bounds memory; results do not depend
        on it); fewer for long clips, so that a chunk holds at most 32,064 frames.
    note_slots : int
        Notes gathered per step at least (0: as many as the batch's widest
        chord, rounded up to a few fixed sizes). Each slot count is compiled
        once, so a caller whose batches differ in chord width can fix it to
        stop recompiling; results do not depend on it.

    Returns
    -------
    mels : np.ndarray, shape=(batch, 1 + n_samples // hop_length, n_mels), dtype=float32
        ``n_samples = n_steps * round(step_seconds * sr)``; dB as in :func:`wav_to_mel`.

    Raises
    ------
    MusicRLError
        On a malformed seq or a bad setting.
    """
    import tensorflow as tf

    seqs = check_seqs(seqs, name="seqs")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    if isinstance(note_slots, bool) or not isinstance(note_slots, (int, np.integer)) or note_slots < 0:
        raise MusicRLError(f"note_slots must be a non-negative int, got {note_slots!r}")
    synth_kwargs = dict(sr=sr, step_seconds=step_seconds, lowest_pitch=lowest_pitch,
                        n_harmonics=n_harmonics, attack=attack, release=release)
    mel_kwargs = dict(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                      top_db=top_db)
    _check_mel_settings(**mel_kwargs)
    batch, n_steps, n_pitches = seqs.shape
    # validates the synth settings (and builds the cached note waves)
    note_waves(n_pitches=n_pitches, **synth_kwargs)
    synth_key = (int(sr), float(step_seconds), int(lowest_pitch), int(n_harmonics), float(attack), float(release))
    mel_key = (int(sr), int(n_fft), int(hop_length), int(n_mels), float(fmin), float(fmax), float(top_db))
    plan = _seq_plan(synth_key, mel_key, n_steps, n_pitches)
    # memory grows with the frames transformed at once, so long clips go fewer at a time
    chunk_size = max(1, min(chunk_size, _CHUNK_FRAMES // plan.n_frames))
    if not plan.fast:
        out = np.empty((batch, plan.n_frames, n_mels), dtype=np.float32)
        for lo in range(0, batch, chunk_size):
            out[lo : lo + chunk_size] = wav_to_mel(
                seq_to_wav(seqs[lo : lo + chunk_size], **synth_kwargs), chunk_size=chunk_size, **mel_kwargs
            )
        return out
    on = seqs > 0
    k_max = max(1, int(on.sum(axis=-1).max()), int(note_slots))
    # one padded width for the whole batch, so chunks do not change the sums
    k = next((b for b in _K_BUCKETS if b >= k_max), n_pitches)
    act = _active_pitches(on, min(k, n_pitches), n_pitches)
    if k > _MAX_UNROLL:
        # dense chords take the gather-then-sum branch, whose intermediate grows with
        # frames x note slots (3.5 GB for chunks of 16 slots x 32,064 frames): fewer clips at once
        chunk_size = max(1, min(chunk_size, _DENSE_CHUNK_SLOT_FRAMES // (plan.n_frames * k)))
    out = np.empty((batch, plan.n_frames, n_mels), dtype=np.float32)
    for lo in range(0, batch, chunk_size):
        chunk = act[lo : lo + chunk_size]
        size = _bucket(len(chunk), chunk_size)
        if size > len(chunk):
            pad = np.full((size - len(chunk),) + chunk.shape[1:], n_pitches, dtype=np.int32)
            chunk = np.concatenate([chunk, pad])
        out[lo : lo + chunk_size] = plan.fn(tf.constant(chunk)).numpy()[: min(chunk_size, batch - lo)]
    return out


def seq_to_mel_by_width(
    seqs: np.ndarray,
    *,
    widths: tuple[int, ...] = (4, 8),
    batch_multiple: int = 16,
    **seq_mel_kwargs: Any,
) -> np.ndarray:
    """:func:`seq_to_mel` of a batch whose chords differ in width, its clips grouped by their widest chord.

    The fast path gathers as many notes per step as the widest chord of the
    call, and compiles once per note count and batch size. So a few dense
    chords (a policy's free-pitch branch) would make the whole batch as slow
    as they are, and batches whose widest chord changes from call to call
    would keep recompiling. Here clips whose widest chord has at most
    ``widths[0]`` notes are transformed together with that many note slots,
    the next up to ``widths[1]``, and so on; denser clips apart. Each group is
    padded with silent clips to a multiple of ``batch_multiple``, so a loop
    sees a few batch shapes. The numbers are those of :func:`seq_to_mel`.

    Parameters
    ----------
    seqs : array-like, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)
        Multi-hot chords.
    widths : tuple of int
        Increasing note counts that bound the groups.
    batch_multiple : int
        Each group's batch is padded to a multiple of this.
    **seq_mel_kwargs
        The synth and mel settings of :func:`seq_to_mel` (``Config.seq_mel_kwargs()``).

    Returns
    -------
    mels : np.ndarray, shape=(batch, n_frames, n_mels), dtype=float32
        As :func:`seq_to_mel`.

    Raises
    ------
    MusicRLError
        On a malformed seq or a bad setting.
    """
    if not (isinstance(widths, tuple) and widths and all(
            isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in widths)
            and all(a < b for a, b in zip(widths[:-1], widths[1:]))):
        raise MusicRLError(f"widths must be a tuple of increasing positive ints, got {widths!r}")
    batch_multiple = _check_positive_int(batch_multiple, "batch_multiple")
    seqs = check_seqs(seqs, name="seqs")
    width = (seqs > 0).sum(axis=2).max(axis=1)
    groups = [(width <= widths[0], int(widths[0]))]
    groups += [((width > lo) & (width <= hi), int(hi)) for lo, hi in zip(widths[:-1], widths[1:])]
    groups.append((width > widths[-1], 0))
    mels = None
    for rows, note_slots in groups:
        n = int(rows.sum())
        if n == 0:
            continue
        size = -(-n // batch_multiple) * batch_multiple
        padded = np.zeros((size, *seqs.shape[1:]), np.float32)
        padded[:n] = seqs[rows]
        out = seq_to_mel(padded, note_slots=note_slots, **seq_mel_kwargs)[:n]
        if mels is None:
            mels = np.empty((len(seqs), *out.shape[1:]), np.float32)
        mels[rows] = out
    if mels is None:  # an empty batch: the shape of one clip's mel, with no clips
        return seq_to_mel(np.zeros((1, *seqs.shape[1:]), np.float32), **seq_mel_kwargs)[:0]
    return mels
