"""Real music: the Bach chorale set, any folder of MIDI files, and training windows.

The default data set is built offline, once, from the Bach chorales in the
corpus that ships with music21: each chorale is parsed and written as a MIDI
file under ``cfg.data_dir`` (``data/chorales``), with a ``manifest.json``
recording the source, its licence terms, the counts and the split.

Any folder of ``.mid`` / ``.midi`` files (searched recursively) loads the same
way: each file becomes one full-piece seq through
:func:`musicrl.music.vectorize.midi_to_seq`, whole pieces are split into training
and held-out by a stable hash of their relative file name, and pieces are cut
into windows of ``n_steps`` chords for training and evaluation. A file that
cannot be used is skipped and reported with its reason; no file is ever
written to or modified, except the set that :func:`build_chorales` creates.

The rules:

* **split** -- a piece is held out when ``sha1(relative name)``, read as a
  fraction in [0, 1), is below ``holdout_fraction``. A piece's side depends
  on its name only, not on which other files are present, and raising the
  fraction only moves pieces into the held-out side. If the rule would hold
  out every piece, all pieces are used for training and none is held out.
* **too short** -- a piece with fewer than ``n_steps`` chord steps is skipped
  (not padded with rests, which would teach the discriminator that silence is
  real music).
* **windows** -- ``1 + (len - n_steps) // hop`` windows start every ``hop``
  steps from a piece's first step; windows that are silent throughout are
  dropped.
* **transposition** -- a window is shifted by a whole number of semitones
  drawn uniformly among the shifts in ``-k..k`` that keep every one of its
  notes inside the pitch columns; no note is ever dropped (the shift 0 is
  always allowed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..config import Config
from ..errors import MusicRLError
from .midi import load_midi, save_midi
from ..seeding import as_rng
from .vectorize import midi_to_seq

__all__ = [
    "CHORALES_LICENCE",
    "MANIFEST_NAME",
    "MIDI_SUFFIXES",
    "RealData",
    "build_chorales",
    "chorales_manifest",
    "find_midi_files",
    "heldout_fraction_of",
    "is_heldout",
    "load_default",
    "load_folder",
    "resolve_data_dir",
    "sample_real_seqs",
    "seqs_to_windows",
    "split_names",
]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest written next to a built chorale set."""

MIDI_SUFFIXES = (".mid", ".midi")
"""File name endings loaded from a folder (compared case-insensitively)."""

CHORALES_LICENCE = (
    "The chorale harmonizations are compositions of Johann Sebastian Bach (1685-1750) and are in "
    "the public domain. The encodings (MusicXML and Humdrum files) come from the corpus distributed "
    "with music21, whose software is BSD-3-Clause licensed; its corpus/license.txt says corpus "
    "encodings are distributed with the permission of their encoders, that encodings may be under "
    "copyright and licensed for use, possibly with restrictions on commercial use, and that the "
    "licences embedded in individual files or directories apply (the Bach chorale files used here "
    "embed none). The MIDI files in this folder are derived from those encodings: check music21's "
    "corpus terms before redistributing them or using them commercially."
)
"""What is known of the terms of the default chorale set."""

# names the format of a built set (the module has moved since; the name stays so built sets stay valid)
_GENERATOR = "musicrl.data.build_chorales"
_FORMAT = 1
# bump when the quantization or the cache layout changes, so old caches are ignored
_CACHE_VERSION = 2
_CACHE_PREFIX = "seqs-"
# tempo of the written chorale MIDI files; midi_to_seq works in beats, so any tempo gives the same seqs
_CHORALE_BPM = 120.0
_CHORALE_RESOLUTION = 480
_CHORALE_PROGRAM = 19
_CHORALE_VELOCITY = 80
_SOURCE_ORDER = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2}


# --------------------------------------------------------------------------
# the split
# --------------------------------------------------------------------------


def heldout_fraction_of(name: str) -> float:
    """A piece's stable position in [0, 1), from the sha1 of its relative file name.

    Parameters
    ----------
    name : str
        Relative file name with '/' separators, e.g. ``"bach/bwv269.mid"``.

    Returns
    -------
    u : float
        The first 8 bytes of ``sha1(name.encode('utf-8'))`` as a fraction of 2**64.
    """
    # a name that is not valid UTF-8 (os.fsdecode surrogates) hashes as its raw bytes
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout(name: str, holdout_fraction: float) -> bool:
    """Whether the piece ``name`` belongs to the held-out side under the hash rule."""
    if not 0 <= holdout_fraction < 1:
        raise MusicRLError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    return heldout_fraction_of(name) < holdout_fraction


def split_names(names: Iterable[str], holdout_fraction: float) -> tuple[list[str], list[str]]:
    """Split piece names into training and held-out (see the module's rules).

    Parameters
    ----------
    names : iterable of str
        Relative file names.
    holdout_fraction : float
        Expected share of held-out pieces, in [0, 1).

    Returns
    -------
    train_names, heldout_names : list of str
        In the order of ``names``. When the rule would hold out every piece,
        all are training and none is held out.
    """
    names = list(names)
    heldout = [n for n in names if is_heldout(n, holdout_fraction)]
    if len(heldout) == len(names):
        return names, []
    held = set(heldout)
    return [n for n in names if n not in held], heldout


# --------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------


def _check_steps(n_steps: int, hop: int) -> None:
    for name, value in (("n_steps", n_steps), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MusicRLError(f"{name} must be a positive int, got {value!r}")


def seqs_to_windows(
    seqs: Sequence[np.ndarray],
    *,
    n_steps: int,
    hop: int,
    n_pitches: int | None = None,
    drop_silent: bool = True,
) -> np.ndarray:
    """Cut full-piece seqs into windows of ``n_steps`` chords.

    Parameters
    ----------
    seqs : sequence of np.ndarray, each shape=(len_i, n_pitches)
        Full pieces, multi-hot.
    n_steps : int
        Chords per window.
    hop : int
        Steps between the starts of consecutive windows of a piece.
    n_pitches : int, optional
        Pitch columns; required when ``seqs`` is empty, checked otherwise.
    drop_silent : bool
        Leave out windows in which no pitch sounds at all.

    Returns
    -------
    windows : np.ndarray, shape=(n_windows, n_steps, n_pitches), dtype=float32
        Piece by piece, in order; a piece of length ``L >= n_steps`` gives
        ``1 + (L - n_steps) // hop`` windows (before dropping silent ones), a
        shorter piece none.

    Raises
    ------
    MusicRLError
        On a seq that is not 2-D multi-hot, mismatched pitch columns, or a
        non-positive ``n_steps`` / ``hop``.
    """
    _check_steps(n_steps, hop)
    seqs = list(seqs)
    if n_pitches is None:
        if not seqs:
            raise MusicRLError("seqs_to_windows needs n_pitches when seqs is empty")
        n_pitches = int(np.shape(seqs[0])[-1])
    parts = []
    for i, seq in enumerate(seqs):
        arr = np.asarray(seq)
        if arr.ndim != 2:
            raise MusicRLError(f"seqs[{i}] must have shape (len, n_pitches), got shape {arr.shape}")
        if arr.shape[1] != n_pitches:
            raise MusicRLError(f"seqs[{i}] must have {n_pitches} pitch columns, got shape {arr.shape}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise MusicRLError(f"seqs[{i}] contains NaN or inf")
        if not np.all((arr == 0) | (arr == 1)):
            raise MusicRLError(f"seqs[{i}] must be multi-hot (only 0 and 1)")
        if arr.shape[0] < n_steps:
            continue
        view = np.lib.stride_tricks.sliding_window_view(arr, n_steps, axis=0)[::hop]
        parts.append(np.ascontiguousarray(view.transpose(0, 2, 1), dtype=np.float32))
    if not parts:
        return np.zeros((0, n_steps, n_pitches), dtype=np.float32)
    windows = np.concatenate(parts)
    if drop_silent:
        windows = windows[windows.any(axis=(1, 2))]
    return windows


def sample_real_seqs(
    windows: np.ndarray,
    n: int,
    rng: int | np.random.Generator | None = None,
    *,
    transpose: int = 0,
) -> np.ndarray:
    """Draw ``n`` real windows (with replacement), optionally transposed.

    Parameters
    ----------
    windows : np.ndarray, shape=(n_windows, n_steps, n_pitches)
        Windows from :func:`seqs_to_windows` (e.g. ``RealData.train_windows``).
    n : int
        Number of seqs to draw.
    rng : int, np.random.Generator or None
        Seed or generator of the draws.
    transpose : int
        Largest shift in semitones; each drawn window is shifted by a whole
        number of semitones drawn uniformly among those in
        ``-transpose..transpose`` that keep all its notes inside the pitch
        columns (so no note is dropped). 0 disables the augmentation.

    Returns
    -------
    real_seqs : np.ndarray, shape=(n, n_steps, n_pitches), dtype=float32
        A new array; ``windows`` is not modified.

    Raises
    ------
    MusicRLError
        If ``windows`` is not a non-empty 3-D array, or ``n`` / ``transpose``
        is invalid.
    """
    windows = np.asarray(windows)
    if windows.ndim != 3:
        raise MusicRLError(
            f"windows must have shape (n_windows, n_steps, n_pitches), got shape {windows.shape}"
        )
    if windows.shape[0] == 0:
        raise MusicRLError("windows is empty: there is no real music to sample from")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MusicRLError(f"n must be a positive int, got {n!r}")
    if isinstance(transpose, bool) or not isinstance(transpose, (int, np.integer)) or transpose < 0:
        raise MusicRLError(f"transpose must be a non-negative int, got {transpose!r}")
    rng = as_rng(rng)
    idx = rng.integers(windows.shape[0], size=int(n))
    real_seqs = windows[idx].astype(np.float32, copy=True)
    if transpose == 0:
        return real_seqs
    n_pitches = real_seqs.shape[2]
    sounding = real_seqs.any(axis=1)  # (n, n_pitches)
    has_notes = sounding.any(axis=1)
    lowest = np.where(has_notes, sounding.argmax(axis=1), 0)
    highest = np.where(has_notes, n_pitches - 1 - sounding[:, ::-1].argmax(axis=1), n_pitches - 1)
    down = np.minimum(transpose, lowest)
    up = np.minimum(transpose, n_pitches - 1 - highest)
    shifts = rng.integers(-down, up + 1)
    for i, s in enumerate(shifts):
        if s:
            # the allowed range guarantees roll only wraps silent columns
            real_seqs[i] = np.roll(real_seqs[i], int(s), axis=1)
    return real_seqs


# --------------------------------------------------------------------------
# loading a folder
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RealData:
    """Real music loaded from a folder: full pieces split into training and held-out.

    Attributes
    ----------
    root : str
        The folder, as given.
    train_seqs, heldout_seqs : list of np.ndarray, each shape=(len_i, n_pitches), float32
        Full pieces (every one at least ``n_steps`` long).
    train_names, heldout_names : list of str
        Their relative file names ('/' separators), in the same order.
    skipped : list of (str, str)
        ``(path, reason)`` of each file that could not be used.
    n_steps, window_hop, n_pitches : int
        Window length, hop and pitch columns (from the config).
    holdout_fraction : float
        The split's setting.
    """

    root: str
    train_seqs: list[np.ndarray]
    heldout_seqs: list[np.ndarray]
    train_names: list[str]
    heldout_names: list[str]
    skipped: list[tuple[str, str]]
    n_steps: int
    window_hop: int
    n_pitches: int
    holdout_fraction: float = 0.0
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def names(self) -> list[str]:
        """All loaded pieces: training names, then held-out names."""
        return self.train_names + self.heldout_names

    @property
    def n_pieces(self) -> int:
        """Number of loaded pieces (training and held-out)."""
        return len(self.train_seqs) + len(self.heldout_seqs)

    def _windows(self, which: str) -> np.ndarray:
        if which not in self._cache:
            seqs = self.train_seqs if which == "train" else self.heldout_seqs
            windows = seqs_to_windows(
                seqs, n_steps=self.n_steps, hop=self.window_hop, n_pitches=self.n_pitches
            )
            windows.flags.writeable = False
            self._cache[which] = windows
        return self._cache[which]

    @property
    def train_windows(self) -> np.ndarray:
        """Training windows, shape (n_windows, n_steps, n_pitches), float32, read-only."""
        return self._windows("train")

    @property
    def heldout_windows(self) -> np.ndarray:
        """Held-out windows, shape (n_windows, n_steps, n_pitches), float32, read-only."""
        return self._windows("heldout")

    def sample(self, n: int, rng: int | np.random.Generator | None = None, *, transpose: int = 0) -> np.ndarray:
        """``n`` training windows drawn by :func:`sample_real_seqs`, shape (n, n_steps, n_pitches)."""
        return sample_real_seqs(self.train_windows, n, rng, transpose=transpose)

    def summary(self) -> str:
        """A few lines of counts: pieces, windows and skipped files."""
        return (
            f"{self.n_pieces} pieces from {self.root} "
            f"({len(self.train_seqs)} training, {len(self.heldout_seqs)} held out)\n"
            f"{len(self.train_windows)} training windows, {len(self.heldout_windows)} held-out windows "
            f"(n_steps={self.n_steps}, hop={self.window_hop})\n"
            f"{len(self.skipped)} files skipped"
        )


def find_midi_files(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """List the MIDI files under a folder, recursively.

    Symbolic links to folders are followed, but a folder already visited (a
    link loop) is not entered again. Names ending in ``.mid`` / ``.midi``
    (any case) count; a folder with such a name is returned separately.

    Parameters
    ----------
    path : str or path-like
        The folder.

    Returns
    -------
    files : list of str
        Relative names with '/' separators, sorted.
    midi_named_dirs : list of str
        Relative names of folders named like MIDI files, sorted.

    Raises
    ------
    MusicRLError
        If ``path`` does not exist or is not a folder.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise MusicRLError(f"MIDI folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise MusicRLError(f"{str(root)!r} is not a folder of MIDI files")
    files: list[str] = []
    dirs: list[str] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in dirnames:
            if name.lower().endswith(MIDI_SUFFIXES):
                dirs.append((rel_dir / name).as_posix())
        for name in sorted(filenames):
            if name.lower().endswith(MIDI_SUFFIXES):
                files.append((rel_dir / name).as_posix())
    return sorted(files), sorted(dirs)


def _stat_key(root: Path, names: list[str]) -> list[list]:
    out = []
    for name in names:
        try:
            st = (root / name).stat()
            out.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([name, -1, -1])
    return out


def _grid(cfg: Config) -> dict[str, Any]:
    return {**cfg.grid_kwargs(), "n_pitches": cfg.n_pitches}


def _cache_path(root: Path, names: list[str], cfg: Config) -> Path:
    key = json.dumps(
        {
            "version": _CACHE_VERSION,
            "root": str(root),
            "grid": _grid(cfg),
            "files": _stat_key(root, names),
        },
        sort_keys=True,
    )
    return root / f"{_CACHE_PREFIX}{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def _read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(s) for s in z["names"]]
            lengths = z["lengths"]
            flat = z["seqs"].astype(np.float32)
            bad = {str(n): str(r) for n, r in zip(z["bad_names"], z["bad_reasons"])}
    except Exception:  # a damaged cache (not a zip, truncated, wrong keys) is rebuilt, never fatal
        return None
    if len(lengths) != len(names) or int(np.sum(lengths)) != len(flat) or np.any(lengths < 0):
        return None
    seqs = dict(zip(names, np.split(flat, np.cumsum(lengths)[:-1]) if names else []))
    return seqs, bad


def _write_cache(path: Path, seqs: dict[str, np.ndarray], bad: dict[str, str], n_pitches: int) -> None:
    names = list(seqs)
    flat = (
        np.concatenate([seqs[n] for n in names]).astype(np.uint8)
        if names
        else np.zeros((0, n_pitches), np.uint8)
    )
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        names=np.array(names, dtype=str),
        lengths=np.array([len(seqs[n]) for n in names], dtype=np.int64),
        seqs=flat,
        bad_names=np.array(list(bad), dtype=str),
        bad_reasons=np.array(list(bad.values()), dtype=str),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        # a read-only folder just means no cache
        tmp.unlink(missing_ok=True)


def _quantize(root: Path, names: list[str], cfg: Config, progress: bool) -> tuple[dict, dict]:
    seqs: dict[str, np.ndarray] = {}
    bad: dict[str, str] = {}
    grid = _grid(cfg)
    it = names
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(names, desc="reading MIDI", unit="file")
    for name in it:
        path = root / name
        try:
            midi = load_midi(path)
            seqs[name] = midi_to_seq(midi, **grid, name=f"MIDI file {str(path)!r}")
        except MusicRLError as e:
            bad[name] = str(e)
    return seqs, bad


def load_folder(
    path: str | os.PathLike,
    cfg: Config | None = None,
    *,
    cache: bool | None = None,
    progress: bool = False,
) -> RealData:
    """Load every MIDI file under a folder as real music.

    Parameters
    ----------
    path : str or path-like
        Folder searched recursively for ``.mid`` / ``.midi`` files (any case).
    cfg : Config, optional
        Grid (``step_beats``, ``lowest_pitch``, ``n_pitches``), window
        (``n_steps``, ``window_hop``) and split (``holdout_fraction``)
        settings; default ``Config()``.
    cache : bool, optional
        Keep the quantized seqs in a ``seqs-<key>.npz`` file in the folder,
        keyed by the grid settings and the files' names, sizes and
        modification times. Default: only in a folder built by
        :func:`build_chorales`, so a user's folder is never written to.
    progress : bool
        Show a progress bar while reading files.

    Returns
    -------
    real_data : RealData

    Raises
    ------
    MusicRLError
        If the folder is missing, holds no MIDI file, or no file could be
        used (the message lists the reasons).
    """
    cfg = cfg if cfg is not None else Config()
    root = Path(path).expanduser()
    names, midi_dirs = find_midi_files(root)
    if not names and not midi_dirs:
        raise MusicRLError(
            f"no MIDI files (.mid or .midi) in {str(root)!r} or its subfolders"
        )
    if cache is None:
        cache = _read_manifest(root) is not None
    result = None
    cache_file = _cache_path(root, names, cfg) if cache else None
    if cache_file is not None and cache_file.exists():
        result = _read_cache(cache_file)
        if result is not None and set(result[0]) | set(result[1]) != set(names):
            result = None
    if result is None:
        result = _quantize(root, names, cfg, progress)
        if cache_file is not None:
            _write_cache(cache_file, *result, n_pitches=cfg.n_pitches)
    seqs, bad = result

    skipped = {d: f"{str(root / d)!r} is a directory, not a MIDI file" for d in midi_dirs}
    skipped.update(bad)
    usable = []
    for name in names:
        if name not in seqs:
            continue
        n = len(seqs[name])
        if n < cfg.n_steps:
            skipped[name] = (
                f"MIDI file {str(root / name)!r} has {n} chord steps, fewer than n_steps={cfg.n_steps}"
            )
            continue
        usable.append(name)
    skipped_list = [(str(root / n), skipped[n]) for n in sorted(skipped)]
    if not usable:
        shown = "; ".join(r for _, r in skipped_list[:5])
        more = f"; and {len(skipped_list) - 5} more" if len(skipped_list) > 5 else ""
        raise MusicRLError(
            f"no usable MIDI file in {str(root)!r}: {len(skipped_list)} skipped ({shown}{more})"
        )
    train_names, heldout_names = split_names(usable, cfg.holdout_fraction)
    return RealData(
        root=str(root),
        train_seqs=[seqs[n] for n in train_names],
        heldout_seqs=[seqs[n] for n in heldout_names],
        train_names=train_names,
        heldout_names=heldout_names,
        skipped=skipped_list,
        n_steps=cfg.n_steps,
        window_hop=cfg.window_hop,
        n_pitches=cfg.n_pitches,
        holdout_fraction=cfg.holdout_fraction,
    )


# --------------------------------------------------------------------------
# the default set: Bach chorales from the music21 corpus
# --------------------------------------------------------------------------


def resolve_data_dir(cfg: Config | None = None) -> Path:
    """The folder of ``cfg.data_dir``.

    A relative ``data_dir`` is taken from the project's root (the folder
    holding ``pyproject.toml``) when musicrl runs from a source checkout, so
    that scripts and notebooks started from any folder share one data set;
    otherwise from the current folder.
    """
    cfg = cfg if cfg is not None else Config()
    path = Path(cfg.data_dir).expanduser()
    if path.is_absolute():
        return path
    root = Path(__file__).resolve().parents[2]  # musicrl/music/data.py -> the checkout
    base = root if (root / "pyproject.toml").is_file() else Path.cwd()
    return base / path


def chorales_manifest(out_dir: str | os.PathLike, *, limit: int | None = None) -> dict | None:
    """The manifest of a complete chorale set in ``out_dir``, or None.

    Parameters
    ----------
    out_dir : str or path-like
        Folder of a chorale set.
    limit : int, optional
        When given, the set must have been built with this ``limit``; when
        None, the set must be the full one.

    Returns
    -------
    manifest : dict or None
        None when there is no manifest written by :func:`build_chorales`, the
        build did not finish, it was made with another ``limit``, or one of
        its MIDI files is missing.
    """
    manifest = _read_manifest(Path(out_dir))
    if manifest is None or not manifest.get("complete") or manifest.get("limit") != limit:
        return None
    for entry in manifest.get("files", []):
        if not (Path(out_dir) / entry["file"]).is_file():
            return None
    return manifest


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != _GENERATOR:
        return None
    if manifest.get("format") != _FORMAT:
        return None
    return manifest


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def _chorale_sources(limit: int | None) -> list[tuple[str, Path]]:
    """(corpus name, file) of each distinct chorale, in Riemenschneider order."""
    from music21 import corpus

    names = list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))
    out: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for name in names:
        found = corpus.getWork(name)
        paths = [Path(p) for p in (found if isinstance(found, list) else [found])]
        stem = name.rsplit("/", 1)[-1]
        # a name also matches its variants (e.g. bwv245.3 finds bwv245.37): prefer the exact file
        exact = [p for p in paths if p.stem == stem] or paths
        exact.sort(key=lambda p: (_SOURCE_ORDER.get(p.suffix.lower(), 9), p.name))
        path = exact[0]
        if path in seen:
            continue
        seen.add(path)
        out.append((name, path))
        if limit is not None and len(out) >= limit:
            break
    return out


def _score_to_midi(score) -> "pretty_midi.PrettyMIDI":  # noqa: F821
    """A music21 score as a PrettyMIDI piece, one instrument per part."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=_CHORALE_RESOLUTION, initial_tempo=_CHORALE_BPM)
    sec_per_beat = 60.0 / _CHORALE_BPM
    parts = list(score.parts) or [score]
    shift = 0.0
    first = parts[0].getElementsByClass("Measure").first()
    if first is not None:
        # a pickup of a fraction of a beat would put every later beat off the grid
        shift = float(first.paddingLeft) % 1.0
    for part in parts:
        inst = pretty_midi.Instrument(
            program=_CHORALE_PROGRAM, name=str(part.partName or part.id or "")
        )
        for el in part.stripTies().flatten().notes:
            start = float(el.offset) + shift
            dur = float(el.duration.quarterLength)
            if dur <= 0:  # grace notes
                continue
            for p in el.pitches:
                inst.notes.append(
                    pretty_midi.Note(
                        velocity=_CHORALE_VELOCITY,
                        pitch=int(p.midi),
                        start=start * sec_per_beat,
                        end=(start + dur) * sec_per_beat,
                    )
                )
        if inst.notes:
            inst.notes.sort(key=lambda n: (n.start, n.pitch))
            midi.instruments.append(inst)
    return midi


def _build_one(job: tuple[str, str, str]) -> dict:
    """Parse one chorale and write it as MIDI; never raises (errors are returned)."""
    name, source, out_path = job
    entry = {"name": name, "source": source}
    try:
        from music21 import converter

        score = converter.parse(source, forceSource=True)
        midi = _score_to_midi(score)
        n_notes = sum(len(i.notes) for i in midi.instruments)
        if n_notes == 0:
            return {**entry, "error": "no notes"}
        save_midi(midi, out_path)
        return {**entry, "file": Path(out_path).name, "notes": n_notes}
    except Exception as e:  # music21 raises many types on odd encodings
        return {**entry, "error": f"{type(e).__name__}: {e}"}


def _can_fork() -> bool:
    # 'spawn' would re-run an unguarded calling script in every worker, and a
    # process that has loaded TensorFlow's threads must not fork: parse in
    # this process then
    import multiprocessing
    import sys

    return "fork" in multiprocessing.get_all_start_methods() and not any(
        m in sys.modules for m in ("tensorflow", "keras", "torch", "jax")
    )


def build_chorales(
    out_dir: str | os.PathLike,
    *,
    cfg: Config | None = None,
    limit: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Write the Bach chorales of the music21 corpus as MIDI files, once.

    Each distinct chorale of ``music21.corpus.chorales.Iterator``
    (Riemenschneider numbering; a harmonization listed twice is written once)
    is parsed from its MusicXML/Humdrum encoding and written as
    ``<bwv>.mid``: one instrument per voice, ties merged, repeats not
    expanded, at 120 bpm with 480 ticks per quarter note. A pickup of a
    fraction of a beat is padded so beats fall on whole beats. Nothing is
    downloaded. The manifest is written last; an existing complete set
    built with the same ``limit`` is reused as is.

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write to (created if missing).
    cfg : Config, optional
        Settings for the counts and split recorded in the manifest (default
        ``Config()``); the MIDI files do not depend on it.
    limit : int, optional
        Build only the first ``limit`` chorales (for tests and quick looks).
    workers : int, optional
        Parallel processes parsing chorales; default ``min(2, cpu count)``;
        1 parses in this process, as does any value once TensorFlow (or
        another threaded framework) is loaded, since such a process must not
        fork.
    progress : bool
        Show a progress bar.
    force : bool
        Rebuild even when a complete set exists.

    Returns
    -------
    manifest : dict
        As written to ``out_dir/manifest.json``: source, licence, counts
        (pieces, windows, skipped), the split and every file.

    Raises
    ------
    MusicRLError
        If the folder cannot be written, holds MIDI files of someone else's
        (no manifest of a chorale set), or no chorale could be converted.
    """
    cfg = cfg if cfg is not None else Config()
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MusicRLError(f"limit must be a positive int or None, got {limit!r}")
    out_dir = Path(out_dir).expanduser()
    if not force:
        existing = chorales_manifest(out_dir, limit=limit)
        if existing is not None:
            return existing
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MusicRLError(f"cannot create folder {str(out_dir)!r}: {e.strerror or e}") from None
    if _read_manifest(out_dir) is None and find_midi_files(out_dir) != ([], []):
        raise MusicRLError(
            f"{str(out_dir)!r} holds MIDI files that build_chorales did not write; not writing the "
            "chorale set there (load that folder as it is, or choose another data_dir)"
        )
    with _build_lock(out_dir):
        if not force:
            # another process may have finished the same build while this one waited
            existing = chorales_manifest(out_dir, limit=limit)
            if existing is not None:
                return existing
        return _build_chorales_locked(out_dir, cfg, limit, workers, progress)


@contextlib.contextmanager
def _build_lock(out_dir: Path):
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    with open(out_dir / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_chorales_locked(
    out_dir: Path, cfg: Config, limit: int | None, workers: int | None, progress: bool
) -> dict:
    """:func:`build_chorales` once the folder is locked: convert, count, write the manifest."""
    t0 = time.perf_counter()
    previous = _read_manifest(out_dir)
    for old in out_dir.glob(f"{_CACHE_PREFIX}*.npz"):
        old.unlink(missing_ok=True)
    # marks the folder as ours while the build runs, so an interrupted build is redone
    _write_json(
        out_dir / MANIFEST_NAME,
        {"generator": _GENERATOR, "format": _FORMAT, "complete": False, "limit": limit},
    )
    import music21

    sources = _chorale_sources(limit)
    corpus_root = Path(music21.__file__).resolve().parent / "corpus"
    jobs = [(name, str(path), str(out_dir / f"{path.stem}.mid")) for name, path in sources]
    results = _run_build_jobs(jobs, workers, progress)

    built = [r for r in results if "file" in r]
    failed = [{"name": r["name"], "reason": r["error"]} for r in results if "error" in r]
    if previous is not None:
        _remove_unbuilt(out_dir, previous, built)
    if not built:
        raise MusicRLError(f"no chorale could be converted: {failed[:3]}")

    files = [_file_entry(r, corpus_root) for r in built]
    # count windows and split with the loader itself, which also fills its cache
    _write_json(
        out_dir / MANIFEST_NAME,
        {"generator": _GENERATOR, "format": _FORMAT, "complete": False, "limit": limit, "files": files},
    )
    real_data = load_folder(out_dir, cfg, cache=True)
    _mark_splits(files, real_data)
    too_short = [{"name": Path(p).name, "reason": r} for p, r in real_data.skipped]
    manifest = {
        "generator": _GENERATOR,
        "format": _FORMAT,
        "complete": True,
        "limit": limit,
        "source": _source_description(music21.__version__),
        "licence": CHORALES_LICENCE,
        "pieces": len(built),
        "skipped": failed + too_short,
        "split": _split_summary(cfg, real_data),
        "windows": {
            **_grid(cfg),
            "n_steps": cfg.n_steps,
            "window_hop": cfg.window_hop,
            "train": int(len(real_data.train_windows)),
            "heldout": int(len(real_data.heldout_windows)),
        },
        "build_seconds": round(time.perf_counter() - t0, 1),
        "files": files,
    }
    _write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def _run_build_jobs(jobs: list[tuple[str, str, str]], workers: int | None, progress: bool) -> list[dict]:
    """:func:`_build_one` of every job, in order, in this process or a pool of ``workers`` forks."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(jobs)))
    if not _can_fork():
        workers = 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="building Bach chorales", unit="chorale")
    results: list[dict] = []
    if workers == 1:
        for job in jobs:
            results.append(_build_one(job))
            if bar is not None:
                bar.update()
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for entry in pool.imap(_build_one, jobs, chunksize=4):
                results.append(entry)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    return results


def _remove_unbuilt(out_dir: Path, previous: dict, built: list[dict]) -> None:
    # files of an earlier build that this one did not write again would be loaded as chorales
    keep = {r["file"] for r in built}
    for entry in previous.get("files", []):
        if entry.get("file") not in keep:
            (out_dir / entry["file"]).unlink(missing_ok=True)


def _file_entry(result: dict, corpus_root: Path) -> dict:
    """The manifest entry of one converted chorale; its source relative to the corpus when inside it."""
    src = Path(result["source"])
    try:
        src_name = src.resolve().relative_to(corpus_root).as_posix()
    except ValueError:
        src_name = src.name
    return {"file": result["file"], "corpus_name": result["name"], "source": src_name, "notes": result["notes"]}


def _mark_splits(files: list[dict], real_data: RealData) -> None:
    """Set each entry's ``split``: 'train', 'heldout', or 'skipped' (too short for a window)."""
    heldout = set(real_data.heldout_names)
    for entry in files:
        if entry["file"] in heldout:
            entry["split"] = "heldout"
        elif entry["file"] in set(real_data.train_names):
            entry["split"] = "train"
        else:
            entry["split"] = "skipped"


def _source_description(music21_version: str) -> dict:
    return {
        "description": "Bach chorales (four-part harmonizations) from the music21 corpus",
        "corpus": "music21.corpus.chorales.Iterator, Riemenschneider numbering, duplicates once",
        "music21_version": music21_version,
        "conversion": (
            "parsed with music21, written with pretty_midi: one instrument per voice, "
            "ties merged, repeats not expanded, 120 bpm, 480 ticks per quarter note"
        ),
    }


def _split_summary(cfg: Config, real_data: RealData) -> dict:
    return {
        "rule": (
            "a piece is held out when the first 8 bytes of sha1(relative file name, utf-8), "
            "as a fraction of 2**64, are below holdout_fraction"
        ),
        "holdout_fraction": cfg.holdout_fraction,
        "train": len(real_data.train_names),
        "heldout": len(real_data.heldout_names),
        "heldout_files": real_data.heldout_names,
    }


def load_default(cfg: Config | None = None, *, progress: bool = True) -> RealData:
    """The default real music: ``cfg.data_dir``, building the chorale set there first if needed.

    If the folder holds a chorale set (see :func:`build_chorales`) it is
    rebuilt when incomplete, then loaded with its cache. If it holds MIDI
    files but no chorale manifest, it is a user's folder and is loaded as
    is (never written to). If it is missing or has no MIDI file, the
    chorale set is built there.

    Parameters
    ----------
    cfg : Config, optional
        Settings (default ``Config()``); ``data_dir`` is resolved by
        :func:`resolve_data_dir`.
    progress : bool
        Show a progress bar while building.

    Returns
    -------
    real_data : RealData
    """
    cfg = cfg if cfg is not None else Config()
    out_dir = resolve_data_dir(cfg)
    ours = _read_manifest(out_dir) is not None
    if not ours and out_dir.is_dir() and find_midi_files(out_dir) != ([], []):
        return load_folder(out_dir, cfg, cache=False, progress=progress)
    if chorales_manifest(out_dir) is None:
        build_chorales(out_dir, cfg=cfg, progress=progress)
    return load_folder(out_dir, cfg, cache=True)
