"""Plots and audio players for notebooks. The only module that imports matplotlib.

Every function draws into an ``ax`` (made when not given) and returns it, so
plots compose into figures the caller lays out.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import MusicRLError

__all__ = [
    "play",
    "plot_curves",
    "plot_mel",
    "plot_piano_roll",
    "plot_pred_hist",
    "plot_pred_over_time",
    "plot_seq_and_mel",
]


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    return ax


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def plot_piano_roll(seq: np.ndarray, *, lowest_pitch: int = 36, ax=None, title: str | None = None):
    """Draw a seq as a piano roll: steps across, pitches up.

    Parameters
    ----------
    seq : np.ndarray, shape=(n_steps, n_pitches)
        Multi-hot chords.
    lowest_pitch : int
        MIDI pitch of column 0 (labels the C of every octave).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    seq = np.asarray(seq)
    if seq.ndim != 2:
        raise MusicRLError(f"plot_piano_roll expects one seq of shape (n_steps, n_pitches), got {seq.shape}")
    ax = _axes(ax)
    n_steps, n_pitches = seq.shape
    ax.imshow(seq.T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(-0.5, n_steps - 0.5, lowest_pitch - 0.5, lowest_pitch + n_pitches - 0.5))
    cs = [p for p in range(lowest_pitch, lowest_pitch + n_pitches) if p % 12 == 0]
    ax.set_yticks(cs)
    ax.set_yticklabels([f"C{p // 12 - 1}" for p in cs])
    ax.set_xlabel("chord step")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return ax


def plot_mel(mel: np.ndarray, *, sr: int, hop_length: int, ax=None, title: str | None = None,
             vmin: float | None = None, vmax: float | None = None):
    """Draw a log-mel spectrogram, time across, mel bands up.

    Parameters
    ----------
    mel : np.ndarray, shape=(n_frames, n_mels)
        Log-mel in dB, time-major as the package computes it.
    sr : int
        Sample rate in Hz (for the time axis).
    hop_length : int
        Hop between frames in samples.
    ax : matplotlib Axes, optional
    title : str, optional
    vmin, vmax : float, optional
        Colour range in dB.

    Returns
    -------
    ax : matplotlib Axes
    """
    mel = np.asarray(mel)
    if mel.ndim != 2:
        raise MusicRLError(f"plot_mel expects one mel of shape (n_frames, n_mels), got {mel.shape}")
    ax = _axes(ax)
    n_frames, n_mels = mel.shape
    im = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                   extent=(0, n_frames * hop_length / sr, 0, n_mels))
    ax.figure.colorbar(im, ax=ax, label="dB")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title)
    return ax


def plot_seq_and_mel(seq: np.ndarray, mel: np.ndarray, *, lowest_pitch: int, sr: int, hop_length: int,
                     title: str = ""):
    """A piano roll and its log-mel side by side; returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3))
    plot_piano_roll(seq, lowest_pitch=lowest_pitch, ax=ax0, title=f"{title} piano roll".strip())
    plot_mel(mel, sr=sr, hop_length=hop_length, ax=ax1, title=f"{title} log-mel".strip())
    fig.tight_layout()
    return fig


def plot_pred_hist(preds: dict[str, np.ndarray], *, ax=None, bins: int = 30, title: str | None = None):
    """Histograms of D's predictions (probabilities of "real") for several sets.

    Parameters
    ----------
    preds : dict of str -> np.ndarray, shape=(n,)
        E.g. ``{"pred_real": pred_real, "pred_rand": pred_rand}``.
    """
    ax = _axes(ax)
    for name, pred in preds.items():
        ax.hist(np.asarray(pred).ravel(), bins=bins, range=(0, 1), alpha=0.5, label=name)
    ax.set_xlabel("D(x) = P(real)")
    ax.set_ylabel("clips")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_pred_over_time(preds: dict[str, np.ndarray], *, ax=None, title: str | None = None):
    """D's per-step prediction over the chord steps, one line per clip or mean +- std per set.

    Parameters
    ----------
    preds : dict of str -> np.ndarray, shape=(n_steps,) or (n_clips, n_steps)
    """
    ax = _axes(ax)
    for name, pred in preds.items():
        pred = np.atleast_2d(np.asarray(pred, dtype=float))
        steps = np.arange(pred.shape[1])
        if pred.shape[0] == 1:
            ax.plot(steps, pred[0], marker="o", label=name)
        else:
            mean, std = pred.mean(0), pred.std(0)
            ax.plot(steps, mean, label=f"{name} (mean of {pred.shape[0]})")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("chord step")
    ax.set_ylabel("D")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_curves(rows: Sequence[dict[str, Any]], keys: Sequence[str], *, x: str = "iteration", ax=None,
                title: str | None = None):
    """Learning curves from per-iteration metric rows (as in a run's ``metrics.jsonl``)."""
    ax = _axes(ax)
    xs = [r[x] for r in rows]
    for key in keys:
        ax.plot(xs, [r.get(key, np.nan) for r in rows], label=key)
    ax.set_xlabel(x)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def play(wav: np.ndarray, *, sr: int, normalize: bool = False):
    """An audio player for a notebook cell.

    Parameters
    ----------
    wav : np.ndarray, shape=(n_samples,)
        Waveform in [-1, 1].
    sr : int
        Sample rate in Hz.
    normalize : bool
        Scale to full volume (off by default, so loudness compares across players).

    Returns
    -------
    IPython.display.Audio
    """
    from IPython.display import Audio

    wav = np.asarray(wav, dtype=np.float32).squeeze()
    if wav.ndim != 1:
        raise MusicRLError(f"play expects one waveform of shape (n_samples,), got {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise MusicRLError("play: the waveform contains NaN or inf")
    # IPython divides by the peak to normalize, which silence turns into NaN
    normalize = normalize and bool(np.any(wav))
    return Audio(wav, rate=sr, normalize=normalize)
