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
import numbers
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import MusicRLError

__all__ = ["EARLIER_DEFAULTS", "Config", "config_from_overrides", "load_config", "read_config_file", "save_config"]


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
    quantize: str = "sample"
    """How real MIDI becomes chords: 'sample' (what sounds on the beat) or 'cover' (every note)."""
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
    """Log-mels are clipped to ``top_db`` below 0 dB (a fixed reference: the loudest band of a full-scale sine)."""

    # --- data ---------------------------------------------------------------
    data_dir: str = "data/chorales"
    """Folder of real MIDI files (the default chorale set is built there)."""
    holdout_fraction: float = 0.1
    """Share of whole pieces held out from training, by a stable hash of the file name."""
    window_hop: int = 4
    """Steps between the starts of consecutive training windows of a piece."""
    transpose: int = 0
    """Augment real windows by a random transposition of up to +-this many semitones."""

    # --- discriminator ------------------------------------------------------
    d_arch: str = "cnn"
    """D's architecture: 'cnn' (causal 1-D convs over mel frames), 'lstm' (over mel frames) or 'seq' (over chords)."""
    d_channels: int = 32
    """Channels of the 'cnn' D's conv layers and of the 'seq' D's first one (its later ones use twice as many)."""
    d_lstm_units: int = 64
    """Units of the 'lstm' D's recurrent layer."""
    d_learning_rate: float = 5e-4
    """Adam learning rate of D."""
    d_beta_1: float = 0.5
    """Adam beta_1 of D (0.5 as in most GANs)."""
    d_loss_steps: str = "all"
    """Which per-step logits D's loss trains: 'all' steps (every prefix is judged) or only the 'last'."""
    d_label_smoothing: float = 0.1
    """One-sided label smoothing: real clips get the label 1 - this."""
    d_replay_capacity: int = 512
    """Older generated clips kept in D's replay buffer."""
    d_replay_share: float = 0.25
    """Share of each generated D batch drawn from the replay buffer (0 turns replay off)."""
    d_gp_kind: str = "r1"
    """Gradient penalty: 'r1' (on real inputs) or 'wgan_gp' (unit gradient norm on real/generated mixes)."""
    d_gp_weight: float = 0.0
    """Weight of the gradient penalty in D's loss (0 turns it off)."""
    d_spectral_norm: bool = False
    """Wrap D's conv and dense layers in spectral normalisation."""
    d_head_units: int = 0
    """Units of a hidden LeakyReLU layer between D's features (each time's, with their running mean for 'cnn' and 'seq') and its logit, so it can judge a moment against the piece so far (0: the logit is linear in them)."""
    d_minibatch_std: bool = False
    """Append a minibatch-stddev feature (per time step, across the batch) before D's output layer."""
    d_loudness_norm: str = "none"
    """Loudness normalisation of D's mel input: 'none', 'frame' (subtract each frame's mean dB) or 'running' (subtract the mean dB of the clip so far)."""
    d_jit_compile: bool = False
    """Compile D's train step with XLA (slower than a plain graph on a CPU for these models)."""
    d_predict_jit_compile: bool = True
    """Compile D's scoring (inference) step with XLA (about a third faster than a plain graph on a CPU; on one device training reads its rewards off D's update instead)."""

    # --- reward -------------------------------------------------------------
    reward_kind: str = "log_d"
    """Reward potential from D's logit: 'log_d' (log D), 'logit' (log D - log(1 - D)) or 'neg_log_1m_d' (-log(1 - D), GAPT's)."""
    reward_dense: bool = False
    """Pay the reward at every step as the change of the potential (False: all at the end)."""
    reward_prefixes: bool = False
    """Pay D's judgment of every prefix of the piece (step t earns the potential after step t, over n_steps) instead of the whole piece's only; excludes ``reward_dense``, needs ``d_loss_steps='all'``."""
    reward_clip: float = 0.0
    """Clip the reward potential to [-this, this] (0: no clipping)."""
    reward_gamma: float = 1.0
    """Discount of the returns, in [0, 1]."""
    reward_baseline_decay: float = 0.9
    """Decay of the moving-average baseline of the returns, in [0, 1)."""
    reward_normalize: bool = False
    """Standardize returns by their running mean and std before the policy update."""
    gae_lambda: float = 1.0
    """GAE's lambda of the advantages against the value head, in [0, 1] (1: the return minus the value; below 1 needs ``value_head`` and no ``reward_normalize``)."""

    # --- agent (policy) -----------------------------------------------------
    policy_head: str = "vocab"
    """How a step's notes are drawn: 'vocab' (chord vocabulary + <other> then per-pitch Bernoulli) or 'bernoulli'."""
    policy_hidden: int = 128
    """GRU units of the policy."""
    policy_embed: int = 32
    """Size of the chord-token embeddings the vocab head's softmax scores against."""
    vocab_transpose: int = 0
    """Also put every training chord transposed by up to +-this many semitones in the vocabulary (at least 'transpose' is used)."""
    vocab_max_size: int = 0
    """Keep only this many most frequent chords in the vocabulary (0: all; fewer is faster, the rest go to <other>)."""
    vocab_min_count: int = 1
    """Keep only chords seen at least this often in the vocabulary (2: chords seen once train the <other> branch)."""
    value_head: bool = False
    """Give the policy a per-step value head trained on the returns (actor-critic baseline)."""
    sample_temperature: float = 1.0
    """Temperature of sampling for listening and evaluation (training episodes are always drawn at 1)."""
    policy_learning_rate: float = 3e-4
    """Adam learning rate of the policy-gradient (REINFORCE / PPO) updates."""
    pretrain_learning_rate: float = 1e-3
    """Adam learning rate of the maximum-likelihood pretraining."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus (per step, nats) in the policy loss."""
    kl_coef: float = 0.1
    """Weight of the KL(policy || pretrained policy) penalty per step (0: no penalty); at iteration 1 under a schedule."""
    mle_every: int = 1
    """Interleave one maximum-likelihood (teacher-forced) step on real windows every this many adversarial iterations (0: never)."""
    policy_dropout: float = 0.3
    """Dropout rate on the GRU states the policy's heads read, in its maximum-likelihood steps (pretraining and teacher forcing); sampling and policy-gradient steps never drop. Without it the teacher-forced steps learn the training windows by heart."""
    mle_own_share: float = 0.0
    """In the teacher-forced steps of the adversarial phase, feed the policy its own draw instead of the real chord with this probability, the targets staying real (parallel scheduled sampling); pretraining never does."""
    pg_coef: float = 1.0
    """Weight of the critic's policy-gradient term (0: the critic does not move the policy, a control)."""
    ppo_epochs: int = 4
    """Policy updates per batch of episodes: 1 is plain REINFORCE; more reuse the batch with PPO's clipped surrogate
    (the first pass is REINFORCE's gradient, the later ones are judged against the policy that played the batch)."""
    ppo_clip: float = 0.2
    """PPO's clip range of the probability ratio, in (0, 1) (used when ``ppo_epochs`` > 1)."""
    kl_schedule: str = "constant"
    """How the KL weight moves from ``kl_coef`` to ``kl_coef_end``: 'constant' (it stays), 'linear' or 'cosine'."""
    kl_coef_end: float = 0.0
    """KL weight reached after ``kl_schedule_iterations`` adversarial iterations (unused when constant)."""
    kl_schedule_iterations: int = 1000
    """Adversarial iterations over which the KL weight moves."""
    value_coef: float = 0.5
    """Weight of the value head's squared error in the policy loss."""
    policy_clip_norm: float = 1.0
    """Clip the policy's gradients to this global norm (0: no clipping)."""
    policy_jit_compile: bool = True
    """Compile the policy's sampling and update steps with XLA (faster on a CPU for this model)."""

    # --- training (train) ---------------------------------------------------
    batch_size: int = 128
    """Episodes the agent plays per iteration; each D update also sees this many real clips."""
    iterations: int = 2000
    """Adversarial iterations of a run (a run of N iterations ends on iteration N; 0: no limit, needs ``minutes``)."""
    minutes: float = 0.0
    """Wall-clock budget of one ``train`` call in minutes, pretraining included (0: none)."""
    d_steps: int = 1
    """D updates per iteration, each on fresh real clips against the iteration's generated clips."""
    curriculum_start: int = 0
    """Curriculum of lengths: the first adversarial pieces have this many chords, doubling every ``curriculum_iterations`` iterations up to ``n_steps`` (0: always ``n_steps``). D hears the shorter pieces, real and generated, followed by rests."""
    curriculum_iterations: int = 100
    """Adversarial iterations at each length of the curriculum."""
    d_max_accuracy: float = 1.0
    """Update D only in iterations in which the policy fools it: its accuracy on the iteration's real and generated clips, before the update, at most this, in [0, 1] (1: always update; GAPT's gate)."""
    pretrain_steps: int = 300
    """Maximum-likelihood steps of the policy on real windows before adversarial training (0: none)."""
    pretrain_minutes: float = 0.0
    """Time cap of the pretraining in minutes (0: no cap)."""
    checkpoint_every: int = 100
    """Write a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = 3
    """Iteration checkpoints kept on disk; older ones are deleted ('pretrained' is always kept)."""
    sample_every: int = 500
    """Save samples (.mid, .wav, TensorBoard mels and audio) every this many iterations (0: only at start, after pretraining and at the end)."""
    n_saved_samples: int = 4
    """Pieces written at every sample point."""
    collapse_every: int = 10
    """Compute the collapse measures of metrics.jsonl every this many iterations."""
    on_nonfinite: str = "stop"
    """On a NaN/inf reward, loss or weight: 'stop' the run (last checkpoint kept) or 'skip' the batch (every update it made undone: weights, optimizer slots, D's replay buffer, the baseline and return statistics)."""
    deterministic: bool = False
    """Ask TensorFlow for deterministic kernels, so a seed reproduces a run exactly (slower)."""
    real_mel_cache: int = 4096
    """Real clips whose log-mels are kept in memory for reuse (0: none); 4096 default-size clips take 0.5 GB."""

    # --- distribution (distribute) ------------------------------------------
    strategy: str = "default"
    """How training uses devices: 'default' (one), 'mirrored' (this machine's GPUs, or ``devices``) or 'multiworker' (the machines of TF_CONFIG)."""
    devices: str = ""
    """Devices of the 'mirrored' strategy, comma-separated, e.g. 'GPU:0,GPU:1' (empty: every GPU, else every CPU device)."""
    cpu_devices: int = 0
    """Split the CPU into this many logical devices when TensorFlow starts (0: as found; e.g. 2 to try 'mirrored' without a GPU)."""

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
        """Keyword arguments of ``midi_to_seq`` for this config (``n_pitches`` aside)."""
        return {"step_beats": self.step_beats, "lowest_pitch": self.lowest_pitch, "quantize": self.quantize}

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

    def seq_mel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``mel.seq_to_mel``: the synth and mel settings merged.

        (``sr`` is in both, so ``**synth_kwargs(), **mel_kwargs()`` in one call
        would pass it twice.)
        """
        return {**self.synth_kwargs(), **self.mel_kwargs()}

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def _check_types(cfg: Config) -> None:
    for name, typ in _field_types().items():
        value = getattr(cfg, name)
        kind = {int: numbers.Integral, float: numbers.Real}.get(typ)
        if kind is not None and isinstance(value, kind) and not isinstance(value, (bool, typ)):
            # ints for float fields, and NumPy scalars (e.g. from a sweep), count as their value
            try:
                value = typ(value)
            except OverflowError:
                raise MusicRLError(f"config field {name!r} must be a finite number, got {value!r}") from None
            object.__setattr__(cfg, name, value)
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
    "quantize": ("sample", "cover"),
    "d_arch": ("cnn", "lstm", "seq"),
    "d_loss_steps": ("all", "last"),
    "d_gp_kind": ("r1", "wgan_gp"),
    "d_loudness_norm": ("none", "frame", "running"),
    "reward_kind": ("log_d", "logit", "neg_log_1m_d"),
    "on_nonfinite": ("stop", "skip"),
    "policy_head": ("vocab", "bernoulli"),
    "kl_schedule": ("constant", "linear", "cosine"),
    "strategy": ("default", "mirrored", "multiworker"),
}

_POSITIVE = (
    "n_steps", "step_beats", "bpm", "n_pitches", "sr", "n_harmonics", "n_fft",
    "hop_length", "n_mels", "window_hop",
    "d_channels", "d_lstm_units", "d_learning_rate", "d_replay_capacity",
)
_NON_NEGATIVE = ("seed", "attack", "release", "fmin", "transpose")
_NON_NEGATIVE += ("d_gp_weight", "reward_clip", "d_head_units", "curriculum_start")
_POSITIVE += ("batch_size", "d_steps", "curriculum_iterations", "checkpoint_every", "keep_checkpoints", "n_saved_samples",
              "collapse_every")
_NON_NEGATIVE += ("iterations", "minutes", "real_mel_cache", "pretrain_steps", "pretrain_minutes", "sample_every")
_POSITIVE += ("top_db", "fmax")
_POSITIVE += ("policy_hidden", "policy_embed", "sample_temperature", "policy_learning_rate",
              "pretrain_learning_rate", "vocab_min_count")
_POSITIVE += ("kl_schedule_iterations",)
_NON_NEGATIVE += ("kl_coef_end",)
_NON_NEGATIVE += ("vocab_transpose", "vocab_max_size", "entropy_coef", "kl_coef", "value_coef",
                  "policy_clip_norm")
_NON_NEGATIVE += ("cpu_devices",)
_NON_NEGATIVE += ("mle_every", "pg_coef")
_POSITIVE += ("ppo_epochs", "ppo_clip")


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
    if cfg.n_pitches < 12:
        # real music outside the columns is folded in by octaves
        raise MusicRLError(f"config field 'n_pitches' must be at least 12 (one octave), got {cfg.n_pitches}")
    if cfg.seed > 2**32 - 1:
        # NumPy's and Keras's global seeding take 32-bit seeds
        raise MusicRLError(f"config field 'seed' must be in 0..{2**32 - 1}, got {cfg.seed}")
    if not cfg.data_dir.strip():
        raise MusicRLError("config field 'data_dir' must name a folder, got an empty string")
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
    if cfg.reward_dense and cfg.reward_prefixes:
        raise MusicRLError("config fields 'reward_dense' and 'reward_prefixes' cannot both be true: "
                           "rewards are dense shaping of the end reward or paid for every prefix")
    if cfg.curriculum_start >= cfg.n_steps:
        raise MusicRLError(f"config field 'curriculum_start' must be below n_steps={cfg.n_steps} (0: no curriculum), "
                           f"got {cfg.curriculum_start}")
    if cfg.gae_lambda < 1 and (not cfg.value_head or cfg.reward_normalize):
        raise MusicRLError(f"config field 'gae_lambda'={cfg.gae_lambda:g} below 1 needs value_head=true (GAE "
                           "weighs the value head's estimates) and reward_normalize=false (it reads raw rewards)")
    if cfg.reward_prefixes and cfg.d_loss_steps != "all":
        raise MusicRLError("config field 'reward_prefixes' needs d_loss_steps='all': a reward for every prefix "
                           f"reads D's logit of every step, which d_loss_steps={cfg.d_loss_steps!r} leaves untrained")
    if cfg.hop_length > cfg.n_fft:
        raise MusicRLError(
            f"config field 'hop_length' must be at most n_fft={cfg.n_fft}, got {cfg.hop_length}"
        )
    if cfg.n_fft % 2:
        # centered frames pad n_fft // 2 on each side; mel.py requires an even size
        raise MusicRLError(f"config field 'n_fft' must be even, got {cfg.n_fft}")
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
    _check_ranges(cfg)
    if cfg.devices.strip() and not all(d.strip() for d in cfg.devices.split(",")):
        raise MusicRLError(f"config field 'devices' must be device names separated by commas, got {cfg.devices!r}")
    if cfg.iterations == 0 and cfg.minutes == 0:
        raise MusicRLError("config fields 'iterations' and 'minutes' are both 0: a run needs one of the two limits")


def _check_ranges(cfg: Config) -> None:
    """Fields bounded on both sides (of D, the reward and the policy update)."""
    for name, lo, hi, hi_open in (
        ("d_beta_1", 0.0, 1.0, True),
        ("d_label_smoothing", 0.0, 0.5, True),
        ("d_replay_share", 0.0, 1.0, True),
        ("mle_own_share", 0.0, 1.0, False),
        ("policy_dropout", 0.0, 1.0, True),
        ("reward_gamma", 0.0, 1.0, False),
        ("gae_lambda", 0.0, 1.0, False),
        ("d_max_accuracy", 0.0, 1.0, False),
        ("reward_baseline_decay", 0.0, 1.0, True),
        ("ppo_clip", 0.0, 1.0, True),
    ):
        value = getattr(cfg, name)
        if not (lo <= value and (value < hi if hi_open else value <= hi)):
            bracket = ")" if hi_open else "]"
            raise MusicRLError(f"config field {name!r} must be in [{lo:g}, {hi:g}{bracket}, got {value!r}")


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
    if overrides is not None and not isinstance(overrides, dict):
        raise MusicRLError(f"config overrides must be a dict of field values, got {type(overrides).__name__}")
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


EARLIER_DEFAULTS: dict[str, Any] = {"mle_every": 0, "policy_dropout": 0.0}
"""Fields whose default changed after they were added, each with the value runs had before the
field existed. A saved config that lacks such a field was written by a run that ran with this
value, not with today's default; :func:`load_config` restores it, so evaluating or resuming an
old run trains and measures what it trained and measured."""


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as JSON to ``path`` (every field, so a later default cannot change it)."""
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")


def read_config_file(path: str | Path, *, what: str = "config file") -> dict[str, Any]:
    """Read a JSON object of config field values, unchecked (an experiment or ``--config`` file).

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the error messages.

    Raises
    ------
    MusicRLError
        If the file is missing, not JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise MusicRLError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:  # bad JSON, bytes that are not UTF-8, absurd nesting
        raise MusicRLError(f"{what} {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise MusicRLError(f"{what} {str(path)!r} must hold a JSON object of field values")
    return data


def load_config(path: str | Path) -> Config:
    """Read a run's config written by :func:`save_config`.

    A field the file lacks takes its default, except the fields of
    :data:`EARLIER_DEFAULTS`, which take the value runs had before the field
    existed (the file was written before it did). For a file of changes to
    today's defaults, use :func:`read_config_file` and
    :func:`config_from_overrides`.

    Raises
    ------
    MusicRLError
        If the file is missing, not JSON, or holds a bad field.
    """
    data = read_config_file(path)
    return config_from_overrides({**EARLIER_DEFAULTS, **data})
