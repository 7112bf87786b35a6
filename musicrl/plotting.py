"""Plots and audio players for notebooks. The only module that imports matplotlib.

Every function draws into an ``ax`` (made when not given) and returns it, so
plots compose into figures the caller lays out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .errors import MusicRLError

__all__ = [
    "play",
    "players",
    "plot_curves",
    "plot_feature_hists",
    "plot_mel",
    "plot_mgeval",
    "plot_piano_roll",
    "plot_piano_rolls",
    "plot_pitch_class_hists",
    "plot_pred_hist",
    "plot_pred_over_time",
    "plot_seq_and_mel",
    "plot_set_comparison",
    "show_table",
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
    """Learning curves from per-iteration metric rows (as in a run's ``metrics.jsonl``).

    A key logged only on some iterations (e.g. the collapse measures) is drawn
    through the rows that have it.
    """
    ax = _axes(ax)
    for key in keys:
        have = [r for r in rows if r.get(key) is not None]
        ax.plot([r[x] for r in have], [r[key] for r in have], label=key)
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


def _as_batch(x: Any, *, item_ndim: int, name: str) -> list[np.ndarray]:
    """One item (``item_ndim`` dims), a batch of items, or a list of items -> list of arrays."""
    if isinstance(x, (list, tuple)):
        return [np.asarray(v) for v in x]
    x = np.asarray(x)
    if x.ndim == item_ndim:
        return [x]
    if x.ndim == item_ndim + 1:
        return list(x)
    raise MusicRLError(f"{name} must have {item_ndim} or {item_ndim + 1} dimensions, got shape {x.shape}")


def plot_piano_rolls(
    sets: Mapping[str, np.ndarray],
    *,
    lowest_pitch: int = 36,
    n: int = 3,
    preds: Mapping[str, Sequence[float]] | None = None,
    title: str | None = None,
):
    """A grid of piano rolls: one row per set, its first ``n`` pieces across.

    Parameters
    ----------
    sets : dict of str -> np.ndarray, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)
        E.g. ``{"real": real_seqs, "rand": rand_seqs}``.
    lowest_pitch : int
        MIDI pitch of column 0.
    n : int
        Pieces shown per set at most.
    preds : dict of str -> sequence of float, optional
        D's prediction for each piece of a set, shown in its title.
    title : str, optional
        Title of the figure.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    if not sets:
        raise MusicRLError("plot_piano_rolls needs at least one set of seqs")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MusicRLError(f"n must be a positive int, got {n!r}")
    rows = {name: _as_batch(seqs, item_ndim=2, name=f"sets[{name!r}]")[:n] for name, seqs in sets.items()}
    ncols = max(len(v) for v in rows.values())
    if ncols == 0:
        raise MusicRLError("plot_piano_rolls: every set is empty")
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 2.4 * len(rows)), squeeze=False)
    for r, (name, seqs) in enumerate(rows.items()):
        shown = None if preds is None or name not in preds else np.asarray(preds[name], dtype=float)
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(seqs):
                ax.axis("off")
                continue
            label = f"{name} #{c}" + (f", D = {shown[c]:.2f}" if shown is not None and c < len(shown) else "")
            plot_piano_roll(seqs[c], lowest_pitch=lowest_pitch, ax=ax, title=label)
            if c:
                ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def players(
    wavs: Mapping[str, Any],
    *,
    sr: int,
    normalize: bool = True,
    preds: Mapping[str, Sequence[float]] | None = None,
):
    """Labelled audio players for a notebook cell: one row per entry, its clips across.

    Parameters
    ----------
    wavs : dict of str -> np.ndarray
        A waveform ``(n_samples,)``, a batch ``(batch, n_samples)`` or a list
        of waveforms (of any lengths) per label.
    sr : int
        Sample rate in Hz.
    normalize : bool
        Scale each clip to full volume (on by default here, for listening;
        :func:`play` with ``normalize=False`` keeps loudness comparable).
    preds : dict of str -> sequence of float, optional
        D's prediction for each clip of an entry, shown under its player.

    Returns
    -------
    IPython.display.HTML
    """
    from html import escape

    from IPython.display import HTML

    if not wavs:
        raise MusicRLError("players needs at least one waveform")
    rows = []
    for name, value in wavs.items():
        clips = _as_batch(value, item_ndim=1, name=f"wavs[{name!r}]")
        shown = None if preds is None or name not in preds else np.asarray(preds[name], dtype=float)
        cells = []
        for i, wav in enumerate(clips):
            audio = play(wav, sr=sr, normalize=normalize)._repr_html_()
            caption = f"D = {shown[i]:.2f}" if shown is not None and i < len(shown) else (
                f"#{i}" if len(clips) > 1 else "")
            cells.append(f'<div style="display:inline-block;margin-right:8px">{audio}'
                         f'<div style="font-size:small">{escape(caption)}</div></div>')
        rows.append(f'<div><b>{escape(str(name))}</b><br>{"".join(cells)}</div>')
    return HTML("\n".join(rows))


def plot_set_comparison(
    table: Mapping[str, Mapping[str, float]],
    *,
    keys: Sequence[str] | None = None,
    ncols: int = 4,
    reference: float | None = None,
    title: str | None = None,
):
    """Bar charts comparing sets of pieces, one small chart per measure.

    Parameters
    ----------
    table : dict of set name -> dict of measure -> float
        E.g. ``{"real": metrics.summarize(real_seqs), "rand": metrics.summarize(rand_seqs)}``.
    keys : sequence of str, optional
        Measures to show (default: every measure of the first set).
    ncols : int
        Charts per row.
    reference : float, optional
        A dashed line at this value on every chart (e.g. 0.5, the chance
        accuracy of a two-sample test).
    title : str, optional

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    if not table:
        raise MusicRLError("plot_set_comparison needs at least one set")
    names = list(table)
    keys = list(keys) if keys is not None else list(next(iter(table.values())))
    if not keys:
        raise MusicRLError("plot_set_comparison needs at least one measure")
    ncols = max(1, min(int(ncols), len(keys)))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.6 * nrows), squeeze=False)
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, key in zip(axes.ravel(), keys):
        values = [float(table[name].get(key, np.nan)) for name in names]
        ax.bar(range(len(names)), values, color=colors)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
        ax.set_title(key, fontsize="medium")
        if reference is not None:
            ax.axhline(reference, color="k", linestyle="--", linewidth=1)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_mgeval(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    measure: str = "oa_real_inter",
    ax=None,
    title: str | None = None,
):
    """Grouped bars of one MGEval measure per feature, one bar per compared set.

    Parameters
    ----------
    results : dict of set name -> the result of ``evaluate.mgeval_compare``
        E.g. ``{"rand": evaluate.mgeval_compare(rand_seqs, real_seqs), ...}``.
    measure : str
        ``oa_real_inter`` (overlap of the real set's intra-set distances with
        the inter-set distances: 1 is like real music), ``kl_real_inter``, ...
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if not results:
        raise MusicRLError("plot_mgeval needs at least one result")
    names = list(results)
    features = list(next(iter(results.values())))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.9 * len(features) * max(1, len(names)) / 2), 3))
    width = 0.8 / len(names)
    x = np.arange(len(features))
    for i, name in enumerate(names):
        values = [float(results[name].get(f, {}).get(measure, np.nan)) for f in features]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(features, rotation=30, ha="right", fontsize="small")
    ax.set_ylabel(measure)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def show_table(table: Mapping[str, Mapping[str, Any]], *, keys: Sequence[str] | None = None, fmt: str = "{:.3f}"):
    """A table for a notebook cell: one column per set, one row per measure.

    Parameters
    ----------
    table : dict of set name -> dict of measure -> value
        E.g. metric summaries of several sets.
    keys : sequence of str, optional
        Rows to show (default: every measure of the first set).
    fmt : str
        Format of numbers.

    Returns
    -------
    IPython.display.HTML
    """
    from html import escape

    from IPython.display import HTML

    if not table:
        raise MusicRLError("show_table needs at least one set")
    names = list(table)
    keys = list(keys) if keys is not None else list(next(iter(table.values())))

    def cell(value: Any) -> str:
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return fmt.format(float(value))
        return escape(str(value))

    head = "".join(f"<th>{escape(str(n))}</th>" for n in names)
    body = "".join(
        f"<tr><td style='text-align:left'>{escape(str(k))}</td>"
        + "".join(f"<td>{cell(table[n].get(k, ''))}</td>" for n in names)
        + "</tr>"
        for k in keys
    )
    return HTML(f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>")


def plot_feature_hists(
    features: Mapping[str, Mapping[str, np.ndarray]],
    *,
    names: Sequence[str] | None = None,
    bins: int = 20,
    ncols: int = 4,
    title: str | None = None,
):
    """Histograms of per-piece features, one chart per feature, one outline per set.

    Each chart shares its bins across the sets and shows densities, so sets
    of different sizes compare; pieces where a feature is undefined (NaN) are
    left out.

    Parameters
    ----------
    features : dict of set name -> dict of feature name -> np.ndarray, shape=(n,)
        E.g. ``{"real": evaluate.piece_features(real_seqs), "rand": ...}``;
        features of another shape (histograms) are skipped.
    names : sequence of str, optional
        Features to show (default: every 1-D feature of the first set).
    bins : int
        Bins per chart.
    ncols : int
        Charts per row.
    title : str, optional

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    if not features:
        raise MusicRLError("plot_feature_hists needs at least one set")
    first = next(iter(features.values()))
    if names is None:
        names = [k for k, v in first.items() if np.ndim(v) == 1]
    names = list(names)
    if not names:
        raise MusicRLError("plot_feature_hists needs at least one feature of shape (n,)")
    ncols = max(1, min(int(ncols), len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.4 * nrows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        values = {}
        for set_name, feats in features.items():
            if name not in feats:
                raise MusicRLError(f"set {set_name!r} has no feature {name!r}")
            v = np.asarray(feats[name], dtype=float).ravel()
            values[set_name] = v[np.isfinite(v)]
        every = np.concatenate(list(values.values()))
        lo, hi = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(bins) + 1)
        for i, (set_name, v) in enumerate(values.items()):
            if v.size:
                ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.5, color=f"C{i % 10}",
                        label=set_name)
        ax.set_title(name, fontsize="medium")
        ax.tick_params(labelsize="small")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_pitch_class_hists(hists: Mapping[str, np.ndarray], *, ax=None, title: str | None = None):
    """Grouped bars of pitch-class histograms, one bar per set in each pitch class.

    Parameters
    ----------
    hists : dict of set name -> np.ndarray, shape=(12,)
        Shares of the notes on C, C#, ..., B, e.g.
        ``metrics.pitch_class_histogram(seqs, pooled=True)``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    if not hists:
        raise MusicRLError("plot_pitch_class_hists needs at least one histogram")
    arrays = {}
    for name, hist in hists.items():
        h = np.asarray(hist, dtype=float)
        if h.shape != (12,):
            raise MusicRLError(f"histogram {name!r} must have shape (12,), got {h.shape}")
        arrays[name] = h
    ax = _axes(ax)
    width = 0.8 / len(arrays)
    x = np.arange(12)
    for i, (name, h) in enumerate(arrays.items()):
        ax.bar(x + (i - (len(arrays) - 1) / 2) * width, h, width, label=name, color=f"C{i % 10}")
    ax.set_xticks(x)
    ax.set_xticklabels(_NOTE_NAMES)
    ax.set_xlabel("pitch class")
    ax.set_ylabel("share of notes")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax
