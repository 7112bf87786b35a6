"""Settings: one frozen dataclass that every stage reads from.

A run builds one :class:`Config`, passes it down, and saves ``asdict(cfg)``
next to its results. Fields are validated when the config is made, so a bad
setting stops a run before any work starts, with the field's name and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import MusicRLError

__all__ = ["Config", "config_from_overrides", "load_config", "save_config"]


@dataclass(frozen=True)
class Config:
    """Every setting of a musicrl run. Fields are grouped by pipeline stage."""

    # --- reproducibility ---------------------------------------------------
    seed: int = 0
    """Seed of every random draw of the run."""

    # --- the chord grid (vectorize) -----------------------------------------
    n_steps: int = 16
    """Chords per piece (an episode's length)."""
    step_beats: float = 1.0
    """Length of one chord step in beats (quarter notes); real MIDI is quantized to it."""
    bpm: float = 120.0
    """Tempo at which seqs are played back; one step lasts ``step_beats * 60 / bpm`` s."""
    lowest_pitch: int = 36
    """MIDI pitch of the seq's first column (36 = C2)."""
    n_pitches: int = 48
    """Number of pitch columns of a seq (36..83 = C2..B5 by default)."""
    hold: str = "restrike"
    """How ``seq_to_midi`` plays a pitch held over steps: 'tie' (one long note) or 'restrike'."""
    velocity: int = 80
    """MIDI velocity of written notes."""
    program: int = 19
    """General MIDI program for soundfont rendering (19 = church organ)."""

    # --- synthesis (synth) --------------------------------------------------
    sr: int = 16000
    """Sample rate in Hz of every waveform."""
    n_harmonics: int = 6
    """Harmonic partials of the additive synthesizer."""
    attack: float = 0.02
    """Attack time in seconds of a synthesized note."""
    release: float = 0.05
    """Release time in seconds at the end of a synthesized note."""

    # --- log-mel (mel) ------------------------------------------------------
    n_fft: int = 1024
    """FFT size in samples."""
    hop_length: int = 256
    """Hop between mel frames in samples."""
    n_mels: int = 64
    """Mel bands."""
    fmin: float = 30.0
    """Lowest mel filter edge in Hz."""
    fmax: float = 8000.0
    """Highest mel filter edge in Hz (at most sr / 2)."""
    top_db: float = 80.0
    """Log-mels are clipped to ``top_db`` below 0 dB (the loudest possible note)."""

    # --- data ---------------------------------------------------------------
    data_dir: str = "data/chorales"
    """Folder of real MIDI files (the default chorale set is built there)."""
    holdout_fraction: float = 0.1
    """Share of whole pieces held out from training, by a stable hash of the file name."""
    window_hop: int = 4
    """Steps between the starts of consecutive training windows of a piece."""
    transpose: int = 0
    """Augment real windows by a random transposition of up to +-this many semitones."""

    def __post_init__(self) -> None:
        _check_types(self)
        _check_values(self)

    # derived values ---------------------------------------------------------
    @property
    def step_seconds(self) -> float:
        """Length of one chord step in seconds."""
        return self.step_beats * 60.0 / self.bpm

    @property
    def step_samples(self) -> int:
        """Length of one chord step in samples (rounded to a whole sample)."""
        return int(round(self.step_seconds * self.sr))

    @property
    def n_samples(self) -> int:
        """Samples of an ``n_steps`` clip."""
        return self.n_steps * self.step_samples

    @property
    def n_frames(self) -> int:
        """Mel frames of an ``n_steps`` clip (centered frames, as librosa)."""
        return 1 + self.n_samples // self.hop_length

    def grid_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``midi_to_seq`` / ``seq_to_midi`` for this config."""
        return {"step_beats": self.step_beats, "lowest_pitch": self.lowest_pitch}

    def synth_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``synth.seq_to_wav`` for this config."""
        return {
            "sr": self.sr,
            "step_seconds": self.step_seconds,
            "lowest_pitch": self.lowest_pitch,
            "n_harmonics": self.n_harmonics,
            "attack": self.attack,
            "release": self.release,
        }

    def mel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``mel.wav_to_mel`` for this config."""
        return {
            "sr": self.sr,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "top_db": self.top_db,
        }

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def _check_types(cfg: Config) -> None:
    for name, typ in _field_types().items():
        value = getattr(cfg, name)
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, name, float(value))
            continue
        if typ in (int, float, str, bool) and (
            not isinstance(value, typ) or (typ is not bool and isinstance(value, bool))
        ):
            raise MusicRLError(
                f"config field {name!r} must be of type {typ.__name__}, got {value!r}"
            )
        if typ is float and not math.isfinite(value):
            raise MusicRLError(f"config field {name!r} must be a finite number, got {value!r}")


_CHOICES: dict[str, tuple[str, ...]] = {
    "hold": ("tie", "restrike"),
}

_POSITIVE = (
    "n_steps", "step_beats", "bpm", "n_pitches", "sr", "n_harmonics", "n_fft",
    "hop_length", "n_mels", "window_hop",
)
_NON_NEGATIVE = ("seed", "attack", "release", "fmin", "transpose")


def _check_values(cfg: Config) -> None:
    for name, allowed in _CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise MusicRLError(
                f"config field {name!r} must be one of {allowed}, got {getattr(cfg, name)!r}"
            )
    for name in _POSITIVE:
        if not getattr(cfg, name) > 0:
            raise MusicRLError(f"config field {name!r} must be > 0, got {getattr(cfg, name)!r}")
    for name in _NON_NEGATIVE:
        if not getattr(cfg, name) >= 0:
            raise MusicRLError(f"config field {name!r} must be >= 0, got {getattr(cfg, name)!r}")
    if not (0 <= cfg.lowest_pitch and cfg.lowest_pitch + cfg.n_pitches <= 128):
        raise MusicRLError(
            "config fields 'lowest_pitch' and 'n_pitches' must keep pitches within MIDI 0..127, "
            f"got lowest_pitch={cfg.lowest_pitch}, n_pitches={cfg.n_pitches}"
        )
    if not 1 <= cfg.velocity <= 127:
        raise MusicRLError(f"config field 'velocity' must be in 1..127, got {cfg.velocity}")
    if not 0 <= cfg.program <= 127:
        raise MusicRLError(f"config field 'program' must be a GM program 0..127, got {cfg.program}")
    if cfg.fmax > cfg.sr / 2:
        raise MusicRLError(
            f"config field 'fmax' must be at most sr / 2 = {cfg.sr / 2:g} Hz, got {cfg.fmax:g}"
        )
    if not cfg.fmin < cfg.fmax:
        raise MusicRLError(f"config field 'fmin' must be below fmax={cfg.fmax:g}, got {cfg.fmin:g}")
    if cfg.hop_length > cfg.n_fft:
        raise MusicRLError(
            f"config field 'hop_length' must be at most n_fft={cfg.n_fft}, got {cfg.hop_length}"
        )
    # each mel filter must span at least one FFT bin, or its band is always empty
    n_bins = cfg.n_fft // 2 + 1
    if cfg.n_mels > n_bins:
        raise MusicRLError(
            f"config field 'n_mels' must be at most n_fft // 2 + 1 = {n_bins} for n_fft={cfg.n_fft}, "
            f"got {cfg.n_mels}"
        )
    if not 0 <= cfg.holdout_fraction < 1:
        raise MusicRLError(
            f"config field 'holdout_fraction' must be in [0, 1), got {cfg.holdout_fraction}"
        )
    if cfg.step_samples < cfg.hop_length:
        raise MusicRLError(
            f"a chord step of {cfg.step_seconds:g} s is shorter than one hop "
            f"({cfg.hop_length} samples at sr={cfg.sr}): raise 'step_beats' or lower 'bpm'"
        )


def _parse_value(name: str, text: str, typ: Any) -> Any:
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
        return text
    except ValueError:
        raise MusicRLError(
            f"config field {name!r} must be of type {typ.__name__}, got {text!r}"
        ) from None


def config_from_overrides(
    overrides: dict[str, Any] | None = None,
    *,
    sets: list[str] | None = None,
    base: Config | None = None,
) -> Config:
    """Build a config from a base, a dict of values and ``key=value`` strings.

    Parameters
    ----------
    overrides : dict, optional
        Field values (e.g. read from a JSON file). Values keep their JSON types.
    sets : list of str, optional
        ``"key=value"`` strings as given to ``--set``; values are parsed to the
        field's type. Applied after ``overrides``.
    base : Config, optional
        Starting point (default: ``Config()``).

    Returns
    -------
    cfg : Config

    Raises
    ------
    MusicRLError
        For an unknown field, a value of the wrong type, or an impossible value.
    """
    types = _field_types()
    values = (base or Config()).to_dict()
    for key, value in (overrides or {}).items():
        if key not in types:
            raise MusicRLError(_unknown(key, types))
        values[key] = value
    for item in sets or []:
        if "=" not in item:
            raise MusicRLError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in types:
            raise MusicRLError(_unknown(key, types))
        values[key] = _parse_value(key, text, types[key])
    return Config(**values)


def _unknown(key: str, types: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(types), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown config field {key!r}{hint}; known fields: {', '.join(sorted(types))}"


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as JSON to ``path``."""
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")


def load_config(path: str | Path) -> Config:
    """Read a config written by :func:`save_config` (or any JSON of field values).

    Raises
    ------
    MusicRLError
        If the file is missing, not JSON, or holds a bad field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise MusicRLError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise MusicRLError(f"config file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise MusicRLError(f"config file {str(path)!r} must hold a JSON object of field values")
    return config_from_overrides(data)
