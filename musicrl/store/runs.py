"""The run folder: where a training run keeps everything it writes.

Layout of ``runs/<name>/``::

    config.json        every setting (a flat Config; ``--config`` reads it back)
    run.json           seed, package versions, the data manifest, command, times
    metrics.jsonl      one JSON row per iteration (iteration counts from 1)
    pretrain.jsonl     one JSON row per pretraining step
    tensorboard/       TensorBoard event files (``tensorboard --logdir runs``)
    checkpoints/       iter-0000100/, ..., pretrained/, and the pointer ``latest``
    samples/<point>/   gen_000.mid, gen_000.wav, ... at points of training

A run's default name is ``<YYYYmmdd-HHMMSS>-seed<S>``, under the runs root
``runs/`` of the current folder.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, save_config
from ..errors import MusicRLError

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_RUNS_ROOT",
    "MetricsLog",
    "RUN_FILE",
    "RunPaths",
    "find_latest_run",
    "is_run_dir",
    "new_run_dir",
    "package_versions",
    "read_jsonl",
    "read_metrics",
    "read_samples",
    "resolve_run_dir",
    "run_paths",
    "sample_points",
    "write_run_info",
    "write_samples",
]

DEFAULT_RUNS_ROOT = "runs"
"""Folder (relative to the current folder) under which runs are created by default."""
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"

_PACKAGES = ("numpy", "tensorflow", "keras", "pretty_midi", "librosa", "music21", "musicrl")


@dataclass(frozen=True)
class RunPaths:
    """The files and folders of a run folder (see the module's layout)."""

    root: Path
    config: Path
    run: Path
    metrics: Path
    pretrain: Path
    tensorboard: Path
    checkpoints: Path
    samples: Path


def run_paths(run_dir: str | os.PathLike) -> RunPaths:
    """The files and folders of a run (see the module's layout); nothing is created."""
    run_dir = Path(run_dir)
    return RunPaths(
        root=run_dir,
        config=run_dir / CONFIG_FILE,
        run=run_dir / RUN_FILE,
        metrics=run_dir / "metrics.jsonl",
        pretrain=run_dir / "pretrain.jsonl",
        tensorboard=run_dir / "tensorboard",
        checkpoints=run_dir / "checkpoints",
        samples=run_dir / "samples",
    )


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder (it holds a ``config.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()


def _check_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise MusicRLError(f"cannot write to the {what} {str(folder)!r}: {e.strerror or e}") from None


def new_run_dir(root: str | os.PathLike = DEFAULT_RUNS_ROOT, name: str | None = None, *, seed: int = 0) -> Path:
    """Create a new, empty run folder under ``root``.

    Parameters
    ----------
    root : str or path-like
        The runs root (created if missing).
    name : str, optional
        Folder name; default ``<YYYYmmdd-HHMMSS>-seed<seed>``. A default name
        that exists gets a ``-2``, ``-3``... suffix; a given name that exists
        is an error (use ``--resume`` to continue that run).

    Raises
    ------
    MusicRLError
        If ``root`` is itself a run folder, the folder cannot be written, or
        a given name is taken.
    """
    root = Path(root).expanduser()
    if is_run_dir(root):
        raise MusicRLError(
            f"{str(root)!r} is a run folder, not a runs root: use --resume to continue it, "
            "or give the folder that holds runs (e.g. --out runs)"
        )
    _check_writable(root, "runs folder")
    if name is not None:
        if not name or "/" in name or name in (".", ".."):
            raise MusicRLError(f"run name must be a plain folder name, got {name!r}")
        path = root / name
        if path.exists() and any(path.iterdir()):
            raise MusicRLError(f"run folder {str(path)!r} exists already: use --resume to continue it")
    else:
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-seed{int(seed)}"
        path = root / base
        k = 2
        while path.exists():
            path = root / f"{base}-{k}"
            k += 1
    _check_writable(path, "run folder")
    return path


def _run_mtime(path: Path) -> float:
    best = 0.0
    for p in (path / "checkpoints" / "latest", path / "metrics.jsonl", path / CONFIG_FILE):
        try:
            best = max(best, p.stat().st_mtime)
        except OSError:
            pass
    return best


def find_latest_run(root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Path | None:
    """The most recently active run folder under ``root`` (by its last checkpoint or metrics), or None."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    if not runs:
        return None
    return max(runs, key=lambda p: (_run_mtime(p), p.name))


def resolve_run_dir(out: str | os.PathLike | None = None, name: str | None = None) -> Path:
    """The existing run folder that ``--out`` / ``--name`` designate, for ``--resume``.

    * ``name`` given: the run ``out/name``;
    * ``out`` is itself a run folder: that run;
    * otherwise: the latest run under ``out`` (default ``runs``), see :func:`find_latest_run`.

    Raises
    ------
    MusicRLError
        If there is no such run.
    """
    root = Path(out if out is not None else DEFAULT_RUNS_ROOT).expanduser()
    if name is not None:
        path = root / name
        if not is_run_dir(path):
            raise MusicRLError(f"no run to resume in {str(path)!r} (no {CONFIG_FILE})")
        return path
    if is_run_dir(root):
        return root
    latest = find_latest_run(root)
    if latest is None:
        raise MusicRLError(f"no run to resume under {str(root)!r} (no folder with a {CONFIG_FILE})")
    return latest


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a run's numbers depend on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    dists = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos")}
    for pkg in _PACKAGES:
        version = None
        for dist in dists.get(pkg, (pkg,)):
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        if version is None and pkg in sys.modules:
            version = getattr(sys.modules[pkg], "__version__", None)
        if version is None and pkg == "musicrl":
            from .. import __version__ as version
        out[pkg] = version or "not installed"
    return out


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_run_info(run_dir: str | os.PathLike, cfg: Config, info: dict[str, Any]) -> None:
    """Write ``config.json`` (the settings) and ``run.json`` (seed, versions, ``info``).

    ``run.json`` is updated, not replaced: keys of an earlier write (e.g. the
    start of the run, before a ``--resume``) are kept unless ``info`` sets them.
    """
    paths = run_paths(run_dir)
    tmp = paths.config.with_name(f".{CONFIG_FILE}.{os.getpid()}.tmp")
    try:
        save_config(cfg, tmp)
        os.replace(tmp, paths.config)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write {str(paths.config)!r}: {e.strerror or e}") from None
    old: dict[str, Any] = {}
    try:
        old = json.loads(paths.run.read_text())
    except (OSError, ValueError):
        pass
    data = {**old, "seed": cfg.seed, "versions": package_versions(), **info}
    _write_json_atomic(paths.run, data)


class MetricsLog:
    """An append-only JSON-lines log, one row per line, flushed after every row.

    Parameters
    ----------
    path : str or path-like
        The ``.jsonl`` file (created if missing).
    keep_until : int, optional
        On opening, drop rows whose ``key`` is above this value (rows written
        after the checkpoint a run resumes from), so the log continues without
        gaps or repeats.
    key : str
        The counter field of a row.
    """

    def __init__(self, path: str | os.PathLike, *, keep_until: int | None = None, key: str = "iteration") -> None:
        self.path = Path(path)
        self.key = key
        try:
            if keep_until is not None and self.path.is_file():
                rows = [r for r in read_metrics(self.path) if int(r.get(key, 0)) <= keep_until]
                text = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows)
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                try:
                    tmp.write_text(text)
                    os.replace(tmp, self.path)
                finally:
                    tmp.unlink(missing_ok=True)
            self._file = open(self.path, "a")
        except OSError as e:
            raise MusicRLError(f"cannot write {str(self.path)!r}: {e.strerror or e}") from None

    def append(self, row: dict[str, Any]) -> None:
        """Write one row (numbers as JSON numbers, NaN/inf as null).

        Raises
        ------
        MusicRLError
            If the row cannot be written (e.g. the disk is full).
        """
        clean = {k: _finite_or_none(v) for k, v in row.items()}
        try:
            self._file.write(json.dumps(clean, default=_json_default) + "\n")
            self._file.flush()
        except OSError as e:
            raise MusicRLError(f"cannot write {str(self.path)!r}: {e.strerror or e}") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as e:  # the flush of a row that a full disk refused
            raise MusicRLError(f"cannot write {str(self.path)!r}: {e.strerror or e}") from None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self.close()
        except MusicRLError:
            if exc_type is None:
                raise  # otherwise the error already on its way says more


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def read_jsonl(path: str | os.PathLike, *, what: str) -> list[Any]:
    """The values of a JSON-lines file, one per line, skipping blank lines and torn or unreadable ones.

    An append-only log can end in a line cut short by a crash; everything
    written before it is kept. ``what`` names the file in the error raised
    when it cannot be read at all.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise MusicRLError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
    values = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            values.append(json.loads(line))
        except ValueError:
            continue
    return values


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` (a run folder also works), skipping a torn last line."""
    path = Path(path)
    if path.is_dir():
        path = run_paths(path).metrics
    return read_jsonl(path, what="metrics")


def write_samples(
    out_dir: str | os.PathLike,
    seqs: np.ndarray,
    cfg: Config,
    *,
    prefix: str = "gen",
    wav: bool = True,
) -> tuple[list[Path], list[np.ndarray]]:
    """Write seqs as ``<prefix>_000.mid`` (and ``.wav`` through the soundfont), ...

    Parameters
    ----------
    out_dir : str or path-like
        Folder (created if missing).
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        Multi-hot chords.
    cfg : Config
        Grid, tempo, instrument and sample rate of the written files.
    prefix : str
        File name prefix (``gen`` for the agent's pieces, ``real`` for data).
    wav : bool
        Also render ``.wav`` files with the General MIDI soundfont.

    Returns
    -------
    paths : list of Path
        The ``.mid`` files.
    wavs : list of np.ndarray
        The rendered waveforms (float32, ``cfg.sr``), empty if ``wav`` is False.
    """
    from ..music.midi import save_midi
    from ..audio.synth import midi_to_wav_soundfont, write_wav
    from ..music.vectorize import check_seqs, seq_to_midi

    seqs = check_seqs(seqs, n_pitches=cfg.n_pitches)
    out_dir = Path(out_dir)
    _check_writable(out_dir, "samples folder")
    paths, wavs = [], []
    for i, seq in enumerate(seqs):
        midi = seq_to_midi(
            seq, step_beats=cfg.step_beats, bpm=cfg.bpm, lowest_pitch=cfg.lowest_pitch,
            hold=cfg.hold, program=cfg.program, velocity=cfg.velocity,
        )
        path = out_dir / f"{prefix}_{i:03d}.mid"
        save_midi(midi, path)
        paths.append(path)
        if wav:
            if midi.instruments and midi.instruments[0].notes:
                audio = midi_to_wav_soundfont(midi, sr=cfg.sr)
                peak = float(np.max(np.abs(audio))) if audio.size else 0.0
                # soundfont voices can sum above full scale; scale down only then
                audio = audio / peak if peak > 1.0 else audio
            else:
                audio = np.zeros(int(round(cfg.n_steps * cfg.step_seconds * cfg.sr)), np.float32)
            write_wav(path.with_suffix(".wav"), audio.astype(np.float32), sr=cfg.sr)
            wavs.append(audio.astype(np.float32))
    return paths, wavs


_POINT_RE = re.compile(r"^iter-(\d+)(?:-(start|pretrained|end))?$")
_POINT_ORDER = {"start": 0, "pretrained": 1, None: 2, "end": 3}


def sample_points(run_dir: str | os.PathLike) -> list[Path]:
    """The sample folders a run wrote during training, in training order.

    Training writes ``samples/iter-0000000-start`` (the untrained policy),
    ``iter-0000000-pretrained`` (after pretraining), ``iter-<N>`` every
    ``sample_every`` iterations and ``iter-<N>-end`` when it stops. Other
    folders under ``samples/`` (``real``, the real clips of the run, and
    folders written by ``musicrl sample``) are not listed.

    Returns
    -------
    folders : list of Path
        Ordered by iteration, the start before the pretrained point before
        the end; empty when the run has no samples yet.
    """
    folder = run_paths(run_dir).samples
    if not folder.is_dir():
        return []
    points = []
    for path in folder.iterdir():
        m = _POINT_RE.match(path.name)
        if m and path.is_dir():
            points.append(((int(m.group(1)), _POINT_ORDER[m.group(2)]), path))
    return [path for _, path in sorted(points)]


def read_samples(
    folder: str | os.PathLike, cfg: Config, *, prefix: str = "gen"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read back the pieces :func:`write_samples` wrote: their seqs and their waveforms.

    Parameters
    ----------
    folder : str or path-like
        A samples folder (e.g. one of :func:`sample_points`).
    cfg : Config
        The run's settings (grid and ``n_steps``).
    prefix : str
        File name prefix (``gen`` or ``real``).

    Returns
    -------
    seqs : np.ndarray, shape=(n, n_steps, n_pitches), dtype=float32
        The pieces of ``<prefix>_*.mid`` in file name order, quantized on the
        run's grid (a piece that ends in rests is padded with rests again).
    wavs : list of np.ndarray, each shape=(n_samples_i,), dtype=float32
        The matching ``.wav`` renderings (mono), for the pieces that have one.

    Raises
    ------
    MusicRLError
        If the folder holds no ``<prefix>_*.mid`` file, or a file cannot be read.
    """
    import soundfile

    from ..music.midi import load_midi
    from ..music.vectorize import midi_to_seq

    folder = Path(folder)
    files = sorted(folder.glob(f"{prefix}_*.mid"))
    if not files:
        raise MusicRLError(f"no {prefix}_*.mid samples in {str(folder)!r}")
    seqs = np.zeros((len(files), cfg.n_steps, cfg.n_pitches), dtype=np.float32)
    wavs = []
    for i, path in enumerate(files):
        midi = load_midi(path)
        if any(inst.notes for inst in midi.instruments):  # a piece of rests only has no notes
            seq = midi_to_seq(midi, n_pitches=cfg.n_pitches, name=f"sample {str(path)!r}", **cfg.grid_kwargs())
            seqs[i, : min(len(seq), cfg.n_steps)] = seq[: cfg.n_steps]
        wav_path = path.with_suffix(".wav")
        if wav_path.is_file():
            try:
                wav, _ = soundfile.read(wav_path, dtype="float32", always_2d=True)
            except RuntimeError as e:  # soundfile's error for unreadable files
                raise MusicRLError(f"cannot read {str(wav_path)!r}: {e}") from None
            wavs.append(wav.mean(axis=1))
    return seqs, wavs
