"""Adversarial training: the agent writes chords, D listens, both learn at once.

:func:`train` runs it. After an optional maximum-likelihood pretraining of
the policy on real windows (as in SeqGAN), every iteration (one call of
``_adversarial_iteration``, its steps in this order, then the loop's logging
and scheduling)

1. samples a batch of episodes from the policy (``gen_seqs`` and log-probs);
2. turns generated and real seqs into log-mels (the batched fast path,
   ``mel.seq_to_mel``), or leaves them as seqs for the symbolic 'seq' D;
3. scores the generated clips with D: per-step logits -> rewards (paid at the
   end, dense, or for every prefix) -> returns (optionally normalized) ->
   advantages against a moving-average baseline (or the policy's value head);
4. updates D ``d_steps`` times on real vs generated clips (replay buffer,
   label smoothing and gradient penalty as configured); the first update
   also gives step 3 its scores, from the D before the update;
5. updates the policy by REINFORCE with an entropy bonus and a KL penalty
   towards the frozen pretrained policy, in ``ppo_epochs`` passes over the
   batch (after the first, PPO's clipped surrogate), then by one
   teacher-forced maximum-likelihood step on real windows (``mle_every``);
6. logs a row to ``metrics.jsonl`` and TensorBoard, and writes checkpoints
   and samples on schedule.

Everything a run writes goes to its run folder (see :mod:`musicrl.store.runs`);
checkpoints are atomic (see :mod:`musicrl.store.checkpoint`). A run stops after
``iterations`` iterations or ``minutes`` minutes, or on Ctrl-C (SIGINT) or
SIGTERM, writing a final checkpoint each time; ``train(resume=True)``
continues it exactly where it stopped. A NaN or inf in a reward, a loss or
a weight stops the run at the iteration where it appears (or, with
``on_nonfinite='skip'``, undoes that update and goes on), leaving the last
good checkpoint in place.

With ``strategy='mirrored'`` or ``'multiworker'`` the same loop runs over
several devices or machines (see :mod:`musicrl.learning.distribute`): models,
optimizers and the replay buffer are made under the strategy's scope, each
worker plays and listens to its share of the batch, D and the policy take
their update steps per replica, and only the chief writes the run folder.
A checkpoint does not depend on the strategy it was written under.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from .agent import ChordPolicy, build_chord_vocab, build_policy, clone_policy, kl_weight, vocab_kwargs
from ..store.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from ..config import Config, config_from_overrides, load_config
from ..music.data import RealData, load_default, load_folder, resolve_data_dir, sample_real_seqs
from .discriminator import DiscriminatorTrainer, d_input_kind, d_inputs
from .distribute import Distribution, OneDevice, make_distribution
from .load import checkpoint_vocab
from ..errors import MusicRLError
from ..audio.mel import seq_to_mel_by_width
from ..music.metrics import distinct_chords, pitch_class_overlap, top_pitch_share
from .reward import (
    MovingAverageBaseline,
    RunningMeanStd,
    advantages,
    discounted_returns,
    gae_advantages,
    logits_to_rewards,
    reward_kwargs,
)
from ..store.runs import (
    DEFAULT_RUNS_ROOT,
    MetricsLog,
    RunPaths,
    new_run_dir,
    read_metrics,
    resolve_run_dir,
    run_paths,
    write_run_info,
    write_samples,
)
from ..seeding import seed_everything

__all__ = [
    "RESUME_FIELDS",
    "NonFiniteError",
    "TrainResult",
    "TrainState",
    "build_train_state",
    "episode_steps",
    "load_real_data",
    "load_train_state",
    "print_data_report",
    "save_train_checkpoint",
    "train",
]

RESUME_FIELDS = (
    "iterations", "minutes", "checkpoint_every", "keep_checkpoints", "sample_every", "n_saved_samples",
    "collapse_every", "on_nonfinite", "d_steps", "pretrain_minutes", "deterministic", "real_mel_cache",
    "strategy", "devices", "cpu_devices",
)
"""Settings that may change when a run is resumed (the others fix the models and the data)."""

_RARE_SHARE = 0.01  # pitches below 1% of the notes are dropped before counting distinct chords
_N_REFERENCE = 1024  # real windows the pitch-class overlap is measured against
_MAX_SKIPS = 10  # consecutive skipped batches after which on_nonfinite='skip' gives up
# streams of the generators of workers of a cluster, keyed by (seed, stream, counter, worker)
_ROLLOUT_STREAM = 11
_PRETRAIN_STREAM = 12


class NonFiniteError(MusicRLError):
    """A NaN or inf appeared in a reward, a loss or a weight during training."""


# --------------------------------------------------------------------------
# the state of a run: everything a checkpoint holds
# --------------------------------------------------------------------------


@dataclass
class TrainState:
    """The mutable state of a training run, as saved in its checkpoints.

    Attributes
    ----------
    cfg : Config
    policy : ChordPolicy
        The agent.
    ref_policy : ChordPolicy
        Frozen copy of the policy after pretraining (target of the KL penalty).
    policy_optimizer, pretrain_optimizer : keras.optimizers.Optimizer
        Adam of the REINFORCE updates and of the maximum-likelihood pretraining.
    d : DiscriminatorTrainer
        D, its optimizer and its replay buffer.
    baseline : MovingAverageBaseline
    normalizer : RunningMeanStd
        Running statistics of the returns (used when ``reward_normalize``).
    rng : np.random.Generator
        Source of every draw of the loop (episodes, real batches).
    vocab : np.ndarray or None
        The policy's chord vocabulary, (n_chords, n_pitches).
    iteration : int
        Adversarial iterations done.
    pretrain_steps_done : int
    pretrain_done : bool
    episodes : int
        Episodes played so far.
    train_seconds : float
        Wall-clock seconds spent in training so far, over all resumptions.
    """

    cfg: Config
    policy: ChordPolicy
    ref_policy: ChordPolicy
    policy_optimizer: keras.optimizers.Optimizer
    pretrain_optimizer: keras.optimizers.Optimizer
    d: DiscriminatorTrainer
    baseline: MovingAverageBaseline
    normalizer: RunningMeanStd
    rng: np.random.Generator
    vocab: np.ndarray | None
    iteration: int = 0
    pretrain_steps_done: int = 0
    pretrain_done: bool = False
    episodes: int = 0
    train_seconds: float = 0.0
    _finite_fn: Any = field(default=None, repr=False)
    _saved_mark: Any = field(default=None, repr=False)
    _saved_path: Any = field(default=None, repr=False)


def _adam(learning_rate: float, variables) -> keras.optimizers.Optimizer:
    opt = keras.optimizers.Adam(learning_rate)
    # built now so a checkpoint can restore its slots before the first step
    opt.build(variables)
    return opt


def build_train_state(
    cfg: Config,
    real_windows: np.ndarray | None = None,
    *,
    vocab: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> TrainState:
    """Fresh models, optimizers and statistics for ``cfg``.

    Parameters
    ----------
    cfg : Config
    real_windows : np.ndarray, shape=(n_windows, n_steps, n_pitches), optional
        Training windows; the chord vocabulary is built from them (needed
        unless ``vocab`` is given or the policy has no vocabulary head).
    vocab : np.ndarray, optional
        A chord vocabulary to use instead (e.g. the one of a checkpoint).
    rng : np.random.Generator, optional
        The run's generator (default: seeded with ``cfg.seed``). Model
        weights are initialized from Keras' global seed
        (``seeding.seed_everything``).

    Returns
    -------
    state : TrainState
        At iteration 0.
    """
    if cfg.policy_head == "vocab" and vocab is None:
        if real_windows is None:
            raise MusicRLError("build_train_state needs real_windows (or a vocab) for policy_head='vocab'")
        vocab = build_chord_vocab(real_windows, **vocab_kwargs(cfg))
    policy = build_policy(cfg, vocab)
    return TrainState(
        cfg=cfg,
        policy=policy,
        ref_policy=clone_policy(policy, trainable=False),
        policy_optimizer=_adam(cfg.policy_learning_rate, policy.trainable_variables),
        pretrain_optimizer=_adam(cfg.pretrain_learning_rate, policy.trainable_variables),
        d=DiscriminatorTrainer(cfg),
        baseline=MovingAverageBaseline(cfg.n_steps, decay=cfg.reward_baseline_decay),
        normalizer=RunningMeanStd(),
        rng=rng if rng is not None else np.random.default_rng(cfg.seed),
        vocab=None if vocab is None else np.asarray(vocab, np.float32),
    )


def _tf_objects(state: TrainState) -> dict[str, Any]:
    return {
        "policy": state.policy,
        "ref_policy": state.ref_policy,
        "policy_optimizer": state.policy_optimizer,
        "pretrain_optimizer": state.pretrain_optimizer,
        "discriminator": state.d.model,
        "d_optimizer": state.d.optimizer,
    }


def save_train_checkpoint(state: TrainState, checkpoints_dir: str | Path, name: str | None = None) -> Path:
    """Write ``state`` as an atomic checkpoint (default name ``iter-<iteration>``).

    Holds: the iteration counter, policy and D weights, both policies'
    optimizers and D's, the frozen reference policy, the replay buffer, the
    baseline and return-normalizer statistics, the loop's generator state
    and the chord vocabulary.
    """
    arrays = {f"d_{k}": v for k, v in state.d.get_state().items()}
    arrays["baseline_value"] = state.baseline.value
    if state.vocab is not None:
        arrays["vocab"] = state.vocab
    meta = {
        "iteration": state.iteration,
        "pretrain_steps_done": state.pretrain_steps_done,
        "pretrain_done": state.pretrain_done,
        "episodes": state.episodes,
        "train_seconds": state.train_seconds,
        "rng_state": state.rng.bit_generator.state,
        "baseline_n_updates": state.baseline.n_updates,
        "normalizer": state.normalizer.get_state(),
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return save_checkpoint(
        checkpoints_dir, name or checkpoint_name(state.iteration),
        objects=_tf_objects(state), arrays=arrays, state=meta,
    )


def load_train_state(cfg: Config, path: str | Path) -> TrainState:
    """Rebuild the state saved in the checkpoint folder ``path`` (with its settings ``cfg``)."""
    path = Path(path)
    load_checkpoint(path)  # a clear error for an incomplete folder, before any model is built
    state = build_train_state(cfg, vocab=checkpoint_vocab(path))
    arrays, meta = load_checkpoint(path, objects=_tf_objects(state))
    state.d.set_state({k[2:]: v for k, v in arrays.items() if k.startswith("d_")})
    state.baseline.set_state({"value": arrays["baseline_value"], "n_updates": meta["baseline_n_updates"]})
    state.normalizer.set_state(meta["normalizer"])
    state.rng.bit_generator.state = meta["rng_state"]
    state.iteration = int(meta["iteration"])
    state.pretrain_steps_done = int(meta["pretrain_steps_done"])
    state.pretrain_done = bool(meta["pretrain_done"])
    state.episodes = int(meta["episodes"])
    state.train_seconds = float(meta["train_seconds"])
    return state

# --------------------------------------------------------------------------
# helpers of the loop
# --------------------------------------------------------------------------


def load_real_data(cfg: Config, data: str | Path | None = None, *, progress: bool = True) -> RealData:
    """The real music of a run: a MIDI folder (``data``) or the default chorale set of ``cfg.data_dir``.

    The default set is built on first use. Unusable files of a folder are
    skipped (see :func:`print_data_report`).
    """
    if data is not None:
        return load_folder(data, cfg, progress=progress)
    return load_default(cfg, progress=progress)


def _data_manifest(real_data: RealData, source: str) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "source": source,
        "root": str(Path(real_data.root).resolve()),
        "pieces": real_data.n_pieces,
        "train_pieces": len(real_data.train_names),
        "heldout_pieces": len(real_data.heldout_names),
        "train_windows": int(len(real_data.train_windows)),
        "heldout_windows": int(len(real_data.heldout_windows)),
        "train_names": real_data.train_names,
        "heldout_names": real_data.heldout_names,
        "skipped": [{"file": f, "reason": r} for f, r in real_data.skipped],
    }
    try:
        chorales = json.loads((Path(real_data.root) / "manifest.json").read_text())
        manifest["set_manifest"] = {k: chorales[k] for k in ("source", "licence", "split") if k in chorales}
    except (OSError, ValueError):
        pass
    return manifest


def print_data_report(real_data: RealData, *, log: Callable[[str], None] = print, limit: int = 50) -> None:
    """Print the counts of a data set and each skipped file's reason (the first ``limit``; all go to run.json)."""
    log(real_data.summary())
    for _, reason in real_data.skipped[:limit]:
        log(f"  skipped: {reason}")
    if len(real_data.skipped) > limit:
        log(f"  ... and {len(real_data.skipped) - limit} more skipped files (all listed in run.json)")


class _StopFlag:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    A second Ctrl-C raises KeyboardInterrupt at once. Handlers are only
    installed in the main thread and are restored on exit.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal_name: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> "_StopFlag":
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _all_finite_fn(variables: list[tf.Variable]) -> Callable[[], tf.Tensor]:
    @tf.function
    def fn():
        return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

    return fn


def _check_finite(iteration: str, values: dict[str, Any]) -> None:
    for what, value in values.items():
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"non-finite {what} at {iteration}")


def _check_weights(state: TrainState, where: str) -> None:
    if state._finite_fn is None:
        variables = list(state.policy.trainable_variables) + list(state.d.model.trainable_variables)
        state._finite_fn = _all_finite_fn(variables)
    if not bool(state._finite_fn()):
        bad = [
            v.path if hasattr(v, "path") else v.name
            for v in list(state.policy.trainable_variables) + list(state.d.model.trainable_variables)
            if not np.all(np.isfinite(v.numpy()))
        ]
        raise NonFiniteError(f"non-finite weights ({', '.join(bad[:3])}) at {where}")


def _snapshot(state: TrainState, *, adversarial: bool = True) -> dict[str, Any]:
    """What a batch changes, to undo it (:func:`_restore`): weights, optimizer slots, statistics, replay.

    A pretraining step (``adversarial=False``) changes only the policy and its
    pretraining optimizer, so only those are copied.
    """
    variables = list(state.policy.variables) + list(state.pretrain_optimizer.variables)
    if not adversarial:
        return {"variables": [(v, np.array(v.numpy())) for v in variables]}
    variables += (
        list(state.policy_optimizer.variables) + list(state.d.model.variables) + list(state.d.optimizer.variables)
    )
    state.d.mark()
    return {
        "variables": [(v, np.array(v.numpy())) for v in variables],
        "baseline": state.baseline.get_state(),
        "normalizer": state.normalizer.get_state(),
    }


def _restore(state: TrainState, snapshot: dict[str, Any]) -> None:
    for v, value in snapshot["variables"]:
        v.assign(value)
    if "baseline" in snapshot:
        state.baseline.set_state(snapshot["baseline"])
        state.normalizer.set_state(snapshot["normalizer"])
        state.d.undo()


def _seq_mels(seqs: np.ndarray, cfg: Config) -> np.ndarray:
    """Log-mels of a batch through the fast path, clips grouped by chord width (few compiled shapes)."""
    return seq_to_mel_by_width(seqs, **cfg.seq_mel_kwargs())


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (NaN where the OS does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


class _Scalars:
    """Writes a row of numbers to the default summary writer as ``<prefix>/<key>`` scalars.

    One compiled call per set of keys: an eager ``tf.summary.scalar`` per
    number costs a few tenths of a millisecond each, a few percent of a
    training iteration.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._writers: dict[tuple[str, ...], Callable] = {}

    def __call__(self, values: dict[str, float], step: int) -> None:
        keys = tuple(values)
        write = self._writers.get(keys)
        if write is None:
            names = [f"{self.prefix}/{k}" for k in keys]

            def body(v, step):
                for i, name in enumerate(names):
                    tf.summary.scalar(name, v[i], step=step)

            write = self._writers[keys] = tf.function(body)
        write(tf.constant([float(values[k]) for k in keys], tf.float32), tf.constant(step, tf.int64))


class _MelCache:
    """Log-mels of seqs seen before, keyed by the seq's notes (real windows recur; mels are exact).

    Holds at most ``capacity`` clips; once full it keeps what it has.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.mels: dict[bytes, np.ndarray] = {}

    def __call__(self, seqs: np.ndarray, cfg: Config) -> np.ndarray:
        if self.capacity <= 0:
            return _seq_mels(seqs, cfg)
        keys = [k.tobytes() for k in np.packbits(seqs > 0, axis=-1).reshape(len(seqs), -1)]
        todo = [i for i, k in enumerate(keys) if k not in self.mels]
        fresh = dict(zip(todo, _seq_mels(seqs[todo], cfg))) if todo else {}
        for i in todo:
            if len(self.mels) >= self.capacity:
                break
            self.mels.setdefault(keys[i], fresh[i])
        return np.stack([fresh[i] if i in fresh else self.mels[k] for i, k in enumerate(keys)])

    def fill(self, seqs: np.ndarray, cfg: Config, *, batch: int = 256) -> None:
        """Compute the mels of ``seqs`` (up to the capacity) now, so the loop's real batches find them."""
        for lo in range(0, len(seqs), batch):
            if len(self.mels) >= self.capacity:
                break
            self(seqs[lo : lo + batch], cfg)


def _d_inputs(seqs: np.ndarray, cfg: Config, cache: _MelCache | None = None) -> np.ndarray:
    """What D reads for a batch: log-mels through the batched fast path, or the seqs for a 'seq' D."""
    if d_input_kind(cfg) == "mel":
        mels = cache(seqs, cfg) if cache is not None else _seq_mels(seqs, cfg)
        return d_inputs(seqs, cfg, mels=mels)
    return d_inputs(seqs, cfg)


def _collapse_measures(gen_seqs: np.ndarray, real_ref: np.ndarray, cfg: Config) -> dict[str, float]:
    return {
        "top3_pitch_share": float(top_pitch_share(gen_seqs, k=3, pooled=True)),
        "pc_hist_overlap": float(pitch_class_overlap(gen_seqs, real_ref, lowest_pitch=cfg.lowest_pitch)),
        "distinct_chords": int(distinct_chords(gen_seqs, min_share=_RARE_SHARE)),
    }


def _mel_images(mels: np.ndarray, top_db: float) -> np.ndarray:
    """(k, n_frames, n_mels) dB -> (k, n_mels, n_frames, 1) in [0, 1], low bands at the bottom."""
    img = (np.asarray(mels, np.float32) + top_db) / top_db
    return np.clip(img.transpose(0, 2, 1)[:, ::-1, :, None], 0.0, 1.0)


def _save_sample_point(
    state: TrainState,
    paths: RunPaths,
    writer: Any,
    tag: str,
    step: int,
    *,
    seqs: np.ndarray | None = None,
    mels: np.ndarray | None = None,
    prefix: str = "gen",
) -> Path:
    """Write ``n_saved_samples`` pieces (.mid, .wav) to ``samples/<tag>/`` and show them in TensorBoard.

    ``seqs`` (and their ``mels``) is a batch the loop already has, e.g. the
    iteration's episodes. Without it, a whole batch is drawn from the policy
    with a generator of its own (so saving samples never changes the training
    draws), of the training batch's shape (so no new compilation is needed).
    """
    cfg = state.cfg
    if seqs is None:
        rng = np.random.default_rng([cfg.seed, 7, step, zlib.crc32(tag.encode())])
        seqs = state.policy.sample(
            cfg.batch_size, rng, n_steps=cfg.n_steps, temperature=cfg.sample_temperature
        ).seqs
    if mels is None:
        mels = _seq_mels(seqs, cfg)
    k = min(cfg.n_saved_samples, len(seqs))
    folder = paths.samples / tag
    _, wavs = write_samples(folder, seqs[:k], cfg, prefix=prefix)
    shown = min(3, k)
    with writer.as_default():
        images = _mel_images(mels[:shown], cfg.top_db)
        tf.summary.image(f"samples/{prefix}_mel", images, step=step, max_outputs=shown)
        n = max(len(w) for w in wavs[:shown])
        audio = np.stack([np.pad(w, (0, n - len(w))) for w in wavs[:shown]])[:, :, None]
        audio = np.clip(audio, -1.0, 1.0)
        tf.summary.audio(f"samples/{prefix}_audio", audio, cfg.sr, step=step, max_outputs=shown)
    writer.flush()
    return folder


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    run_dir : Path or None
        The run folder (None on a worker other than the chief, for a new run).
    iteration : int
        Iterations done when the run stopped.
    status : str
        'finished' (iteration or time limit reached), 'interrupted' (SIGINT
        or SIGTERM; a checkpoint was written) or 'nonfinite' (stopped on a
        NaN/inf; the last good checkpoint is kept).
    message : str
        The line printed when the run stopped.
    checkpoint : Path or None
        The newest checkpoint on disk (None on a worker other than the chief).
    """

    run_dir: Path | None
    iteration: int
    status: str
    message: str
    checkpoint: Path | None


# --------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------


def train(
    cfg: Config | None = None,
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    handle_signals: bool = True,
    on_iteration: Callable[[dict[str, Any], TrainState], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train an agent against a discriminator; everything goes to a run folder.

    Parameters
    ----------
    cfg : Config, optional
        Settings of a new run (default ``Config()``). Not allowed with
        ``resume``: a resumed run keeps the settings in its ``config.json``.
    data : str or path-like, optional
        A folder of MIDI files to train on (searched recursively; unusable
        files are skipped and reported). Default: ``cfg.data_dir``, the Bach
        chorale set, built there first if missing.
    out : str or path-like, optional
        New run: the runs root under which the run folder is created
        (default ``runs``). Resume: a run folder, or a runs root whose most
        recent run is continued.
    name : str, optional
        The run folder's name under ``out`` (default
        ``<YYYYmmdd-HHMMSS>-seed<S>``); with ``resume``, the run to continue.
    resume : bool
        Continue an existing run from its latest checkpoint: same iteration
        counter, weights, optimizer states, replay buffer, statistics and
        random state.
    overrides : dict, optional
        With ``resume``: new values of :data:`RESUME_FIELDS` (e.g. a higher
        ``iterations``).
    progress : bool
        Show a progress bar (reward and D accuracy).
    handle_signals : bool
        Catch SIGINT/SIGTERM to stop cleanly with a checkpoint (main thread only).
    on_iteration : callable, optional
        Called as ``on_iteration(row, state)`` at the end of every iteration,
        after its row is logged and any checkpoint written (e.g. for live plots).
        Under a strategy of several workers, on the chief only.
    log : callable
        Receives the run's messages (default ``print``).

    Returns
    -------
    result : TrainResult

    Raises
    ------
    MusicRLError
        On a bad setting, unusable data, an unwritable output folder, or
        nothing to resume. A NaN/inf stops the run with status 'nonfinite'
        instead of raising.

    Notes
    -----
    ``cfg.strategy`` 'mirrored' or 'multiworker' trains under a
    ``tf.distribute`` strategy (see :mod:`musicrl.learning.distribute`), set up first
    (call ``train`` before any other TensorFlow work of the process). Under
    'multiworker' every worker calls ``train`` with the same settings; the
    chief writes the run folder, the others write nothing there, and to
    resume, every worker must read the run folder at the same path (shared
    storage). A run may be resumed under another strategy (``strategy`` is
    one of :data:`RESUME_FIELDS`).
    """
    wall_start = time.perf_counter()

    # ---- run folder and settings ------------------------------------------------
    if resume:
        if cfg is not None:
            raise MusicRLError("a resumed run keeps its own settings: pass overrides, not cfg")
        run_dir = resolve_run_dir(out, name)
        paths = run_paths(run_dir)
        saved = load_config(paths.config)
        overrides = dict(overrides or {})
        bad = sorted(k for k, v in overrides.items() if k not in RESUME_FIELDS and v != getattr(saved, k, v))
        if bad:
            raise MusicRLError(
                f"cannot change {', '.join(bad)} when resuming (they fix the models and data); "
                f"allowed: {', '.join(RESUME_FIELDS)}"
            )
        cfg = config_from_overrides(overrides, base=saved)
        ckpt_path = latest_checkpoint(paths.checkpoints)
        if ckpt_path is None:
            raise MusicRLError(f"run {str(run_dir)!r} has no checkpoint to resume from")
        try:
            run_info = json.loads(paths.run.read_text())
        except (OSError, ValueError):
            run_info = {}
        data_info = run_info.get("data", {})
        data = data_info.get("root") if data_info.get("source") == "folder" else None
    else:
        if overrides:
            raise MusicRLError("overrides are for resumed runs; pass the settings in cfg")
        cfg = cfg if cfg is not None else Config()
        run_dir = ckpt_path = None

    # ---- devices: one, or a tf.distribute strategy (set up before any other TensorFlow work) ----
    dist = make_distribution(cfg)
    run = dict(cfg=cfg, dist=dist, run_dir=run_dir, ckpt_path=ckpt_path, data=data, progress=progress,
               handle_signals=handle_signals, on_iteration=on_iteration, log=log, wall_start=wall_start)
    if not dist.is_chief:
        # as in TensorFlow's multi-worker guide: only the chief writes the run folder; the others write
        # their checkpoints (and logs) into a temporary folder that is deleted when they finish
        with tempfile.TemporaryDirectory(prefix=f"musicrl-worker{dist.worker_index}-") as scratch:
            worker = f"[worker {dist.worker_index}] "
            run.update(paths=run_paths(scratch), progress=False, on_iteration=None,
                       log=lambda text: log("\n".join(worker + line for line in str(text).splitlines())))
            return _train_run(**run)
    if run_dir is None:
        run_dir = new_run_dir(out if out is not None else DEFAULT_RUNS_ROOT, name, seed=cfg.seed)
    run.update(run_dir=run_dir, paths=run_paths(run_dir))
    return _train_run(**run)


@dataclass
class _Run:
    """What the phases of a run share: settings, devices, real data, outputs, clock and stop flag."""

    cfg: Config
    dist: Distribution | OneDevice
    paths: RunPaths
    real_windows: np.ndarray
    real_ref: np.ndarray  # the fixed real windows the collapse measures compare against
    real_mels: _MelCache
    writer: Any
    scalars: _Scalars
    metrics_log: MetricsLog
    pretrain_log: MetricsLog
    stop: _StopFlag
    progress: bool
    log: Callable[[str], None]
    wall_start: float
    last_ckpt: Path | None
    skips: int = 0  # batches skipped in a row for a NaN/inf
    last_batch: dict[str, Any] = field(default_factory=dict)  # the pieces the end-of-run samples show

    def time_left(self) -> float:
        """Seconds left of the ``minutes`` budget (inf without one)."""
        budget = self.cfg.minutes * 60.0 if self.cfg.minutes > 0 else math.inf
        return budget - (time.perf_counter() - self.wall_start)

    def checkpoint(self, state: TrainState) -> Path:
        self.last_ckpt = _checkpoint(state, self.paths, self.wall_start)
        return self.last_ckpt


@dataclass
class _Iteration:
    """What one adversarial iteration did: its batch, D's and the policy's figures, its clock."""

    iteration: int
    episodes: Any  # the policy's episodes of this worker (seqs, log-probs, values, from_vocab)
    gen_x: np.ndarray  # what D read of them
    pred_gen: np.ndarray  # D's per-step logits of every worker's episodes, before its update
    rewards: np.ndarray
    baseline: np.ndarray
    d_stats: dict[str, float]
    pg_stats: dict[str, float]
    kl_coef: float
    mle_nll: float | None
    clock: tuple[float, ...]  # perf_counter after sampling, listening, scoring, D's and the policy's updates
    t_first_d: float  # seconds of D's first update, which also scored the batch


def _train_run(
    cfg: Config,
    dist: Distribution | OneDevice,
    *,
    run_dir: Path | None,
    paths: RunPaths,
    ckpt_path: Path | None,
    data: str | Path | None,
    progress: bool,
    handle_signals: bool,
    on_iteration: Callable[[dict[str, Any], TrainState], None] | None,
    log: Callable[[str], None],
    wall_start: float,
) -> TrainResult:
    """The body of :func:`train` once the settings, the strategy and the folder to write (``paths``) are known."""
    state, real_windows = _start(cfg, dist, run_dir=run_dir, ckpt_path=ckpt_path, data=data, progress=progress,
                                 log=log)
    real_ref = real_windows[np.random.default_rng([cfg.seed, 2]).integers(len(real_windows), size=_N_REFERENCE)]
    writer = tf.summary.create_file_writer(str(paths.tensorboard)) if dist.is_chief else tf.summary.create_noop_writer()
    metrics_log = MetricsLog(paths.metrics, keep_until=state.iteration)
    pretrain_log = MetricsLog(paths.pretrain, keep_until=state.pretrain_steps_done, key="step")
    status = "finished"
    with _StopFlag(handle_signals) as stop, metrics_log, pretrain_log:
        run = _Run(cfg=cfg, dist=dist, paths=paths, real_windows=real_windows, real_ref=real_ref,
                   real_mels=_MelCache(cfg.real_mel_cache), writer=writer, scalars=_Scalars("train"),
                   metrics_log=metrics_log, pretrain_log=pretrain_log, stop=stop, progress=progress, log=log,
                   wall_start=wall_start, last_ckpt=ckpt_path)
        try:
            message = _run_phases(state, run, on_iteration)
        except _OutOfTime:
            message = (f"time budget reached during pretraining (step {state.pretrain_steps_done} of "
                       f"{cfg.pretrain_steps}): checkpoint written to {run.last_ckpt}; continue with --resume")
        except _Interrupted:
            status = "interrupted"
            last_ckpt = run.checkpoint(state)
            message = (f"interrupted by {stop.signal_name} at iteration {state.iteration}: "
                       f"checkpoint written to {last_ckpt}; continue with --resume")
        except NonFiniteError as e:
            status = "nonfinite"
            run.last_ckpt = latest_checkpoint(paths.checkpoints)
            message = (f"stopped: {e}. The last good checkpoint is kept: "
                       f"{run.last_ckpt if run.last_ckpt is not None else 'none yet'}")
        finally:
            writer.flush()
            writer.close()
    last_ckpt = run.last_ckpt
    if not dist.is_chief:
        # its checkpoints went to a temporary folder: the chief's are the run's
        message, last_ckpt = f"stopped at iteration {state.iteration} ({status}); the chief wrote the run", None
    log(message)
    return TrainResult(run_dir=run_dir, iteration=state.iteration, status=status, message=message,
                       checkpoint=last_ckpt)


def _start(cfg: Config, dist: Distribution | OneDevice, *, run_dir: Path | None, ckpt_path: Path | None,
           data: str | Path | None, progress: bool, log: Callable[[str], None]) -> tuple[TrainState, np.ndarray]:
    """Seeding, the real data and the models: a new state (and its ``run.json``), or the checkpoint's.

    Returns the state and the real training windows.
    """
    rng = seed_everything(cfg.seed, deterministic_ops=cfg.deterministic)
    try:
        real_data = load_real_data(cfg, data, progress=progress)
        real_windows = real_data.train_windows
        if len(real_windows) == 0:
            raise MusicRLError(f"no training windows of {cfg.n_steps} steps in {real_data.root!r}")
        with dist.scope():
            state = build_train_state(cfg, real_windows, rng=rng) if ckpt_path is None else None
    except BaseException:
        if dist.is_chief and ckpt_path is None and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that never started leaves no folder behind
        raise
    source = "folder" if data is not None else "default"
    if ckpt_path is None:
        log(f"run folder: {run_dir}" if dist.is_chief else "the chief writes the run folder")
        print_data_report(real_data, log=log)
        if dist.is_chief:
            write_run_info(run_dir, cfg, {
                "data": _data_manifest(real_data, source),
                "command": sys.argv,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "data_dir": str(Path(data).resolve()) if data is not None else str(resolve_data_dir(cfg)),
            })
    else:
        with dist.scope():
            state = load_train_state(cfg, ckpt_path)
        log(f"resumed from iteration {state.iteration} ({ckpt_path})")
        if dist.is_chief:
            write_run_info(run_dir, cfg, {"resumed": time.strftime("%Y-%m-%d %H:%M:%S")})
    if cfg.strategy != "default":
        log(f"strategy {cfg.strategy}: {dist.n_replicas} replicas on {dist.n_workers} worker(s), "
            f"{cfg.batch_size // dist.n_replicas} episodes per replica; this is worker {dist.worker_index}")
    return state, real_windows


def _run_phases(state: TrainState, run: _Run, on_iteration: Callable | None) -> str:
    """Pretraining, the adversarial loop, the last checkpoint and samples; returns the closing message.

    Raises _Interrupted on a signal and _OutOfTime when the time budget ends pretraining.
    """
    cfg = state.cfg
    if run.dist.is_chief and state.iteration == 0 and not state.pretrain_done and state.pretrain_steps_done == 0:
        real_seqs = sample_real_seqs(run.real_windows, cfg.batch_size, np.random.default_rng([cfg.seed, 3]))
        _save_sample_point(state, run.paths, run.writer, "real", 0, seqs=real_seqs, prefix="real")
        _save_sample_point(state, run.paths, run.writer, "iter-0000000-start", 0)
    if not state.pretrain_done:
        _pretrain(state, run)
    limit = cfg.iterations if cfg.iterations > 0 else None
    _adversarial_loop(state, run, limit, on_iteration)
    return _finish(state, run, limit)


# ---- pretraining: maximum likelihood on real windows (SeqGAN) ---------------------------


def _pretrain(state: TrainState, run: _Run) -> None:
    """Pretraining steps until ``pretrain_steps``, its own or the run's time budget, or a signal.

    Out of the run's time mid-way it stays in pretraining, so ``--resume``
    continues it; otherwise the pretrained policy becomes the KL penalty's
    reference and is checkpointed as 'pretrained'.
    """
    cfg = state.cfg
    pretrain_budget = cfg.pretrain_minutes * 60.0 if cfg.pretrain_minutes > 0 else math.inf
    t_pre = time.perf_counter()
    bar = _bar(run.progress, cfg.pretrain_steps, state.pretrain_steps_done, "pretrain")
    while state.pretrain_steps_done < cfg.pretrain_steps:
        if _halt(run.dist, run.stop, run.time_left() <= 0, time.perf_counter() - t_pre > pretrain_budget):
            break
        nll = _skipping_nonfinite(state, run, lambda: _pretrain_step(state, run), adversarial=False)
        if nll is None:
            continue
        step = state.pretrain_steps_done = state.pretrain_steps_done + 1
        run.pretrain_log.append({"step": step, "nll": nll})
        with run.writer.as_default():
            tf.summary.scalar("pretrain/nll", nll, step=step)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"NLL {nll:.3f}")
    if bar is not None:
        bar.close()
    if run.stop:
        raise _Interrupted()
    if state.pretrain_steps_done == cfg.pretrain_steps or not run.dist.any([run.time_left() <= 0])[0]:
        state.ref_policy.set_weights(state.policy.get_weights())
        state.pretrain_done = True
        run.last_ckpt = save_train_checkpoint(state, run.paths.checkpoints, "pretrained")
        if state.pretrain_steps_done:
            if run.dist.is_chief:
                _save_sample_point(state, run.paths, run.writer, "iter-0000000-pretrained", 0)
            run.log(f"pretrained the policy for {state.pretrain_steps_done} steps "
                    f"(last NLL {_pretrain_log_last(run.paths.pretrain):.3f} nats per chord)")


def _pretrain_step(state: TrainState, run: _Run) -> float:
    """One maximum-likelihood step on real windows (under a strategy: this worker's share); its NLL."""
    cfg = state.cfg
    step = state.pretrain_steps_done + 1
    rng = _loop_rng(state, run.dist, _PRETRAIN_STREAM, step)
    real_seqs = sample_real_seqs(run.real_windows, run.dist.worker_batch(cfg.batch_size), rng,
                                 transpose=cfg.transpose)
    nll = run.dist.pretrain_step(state.policy, state.pretrain_optimizer, real_seqs,
                                 clip_norm=cfg.policy_clip_norm or None, dropout=cfg.policy_dropout, rng=rng)
    _check_finite(f"pretraining step {step}", {"pretraining loss (NLL)": nll})
    _check_weights(state, f"pretraining step {step}")
    return nll


# ---- adversarial training -----------------------------------------------------------------


def _adversarial_loop(state: TrainState, run: _Run, limit: int | None, on_iteration: Callable | None) -> None:
    """Adversarial iterations until ``limit``, the time budget or a signal: play, listen, learn, log."""
    cfg = state.cfg
    if d_input_kind(cfg) == "mel" and (limit is None or state.iteration < limit):
        # the real windows are fixed: their mels are made once, not in the loop
        run.real_mels.fill(run.real_windows, cfg)
    bar = _bar(run.progress, limit, state.iteration, "train")
    while limit is None or state.iteration < limit:
        if _halt(run.dist, run.stop, run.time_left() <= 0):
            break
        t0 = time.perf_counter()
        done = _skipping_nonfinite(state, run, lambda: _adversarial_iteration(state, run))
        if done is None:
            continue
        state.iteration = done.iteration
        state.episodes += cfg.batch_size
        row = _log_row(state, run, done, t0, bar)
        _checkpoint_and_samples(state, run, done, limit)
        if on_iteration is not None:
            on_iteration(row, state)
    if bar is not None:
        bar.close()


def _adversarial_iteration(state: TrainState, run: _Run) -> _Iteration:
    """One iteration's steps: sample, synthesize and score, update D, update the policy.

    Raises NonFiniteError at the first NaN or inf, with what was done of the
    iteration left in place (the caller undoes it, or stops).
    """
    cfg, dist = state.cfg, run.dist
    iteration = state.iteration + 1
    where = f"iteration {iteration}"

    # 1. play a batch of episodes (under a strategy: this worker's share)
    rng = _loop_rng(state, dist, _ROLLOUT_STREAM, iteration)
    n_play = dist.worker_batch(cfg.batch_size)
    length = episode_steps(iteration, n_steps=cfg.n_steps, start=cfg.curriculum_start,
                           every=cfg.curriculum_iterations)
    episodes = state.policy.sample(n_play, rng, n_steps=length)
    t1 = time.perf_counter()

    # 2. listen: seqs -> log-mels through the batched fast path (real clips alike); pieces of a
    # curriculum's shorter length are followed by rests, real and generated the same
    gen_x = _d_inputs(_rests_after(episodes.seqs, length, cfg.n_steps), cfg)
    real_xs = [_d_inputs(_rests_after(sample_real_seqs(run.real_windows, n_play, rng, transpose=cfg.transpose),
                                      length, cfg.n_steps), cfg, run.real_mels) for _ in range(cfg.d_steps)]
    t2 = time.perf_counter()

    # 3. score: D's first update comes with its logits of the batch from before it (under a strategy, of
    # every worker's episodes, so all compute the same advantages) -> rewards -> returns -> advantages
    d_stats, pred_gen = _score_and_first_d_update(state, run, real_xs[0], gen_x, length)
    t_first_d = time.perf_counter() - t2
    _check_finite(where, {"D logits (rewards)": pred_gen})
    if d_stats["updated"]:
        _check_finite(where, {"D loss": d_stats["loss"]})
    rewards, returns, baseline, adv = _advantages(state, run, pred_gen, episodes, where)
    t3 = time.perf_counter()

    # 4. update D on real vs generated clips (its first update done above)
    for real_x in real_xs[1:] if d_stats["updated"] else ():
        d_stats = {**dist.train_d(state.d, real_x, gen_x), "updated": 1.0}
        _check_finite(where, {"D loss": d_stats["loss"]})
    t4 = time.perf_counter()

    # 5. update the policy: REINFORCE + entropy bonus + KL to the pretrained policy, then teacher forcing
    kl_coef, pg_stats = _policy_update(state, run, episodes, adv, returns, iteration, where)
    mle_nll = _teacher_forcing(state, run, n_play, rng, iteration, where)
    _check_weights(state, where)
    t5 = time.perf_counter()
    return _Iteration(iteration=iteration, episodes=episodes, gen_x=gen_x, pred_gen=pred_gen, rewards=rewards,
                      baseline=baseline, d_stats=d_stats, pg_stats=pg_stats, kl_coef=kl_coef, mle_nll=mle_nll,
                      clock=(t1, t2, t3, t4, t5), t_first_d=t_first_d)


def episode_steps(iteration: int, *, n_steps: int, start: int = 0, every: int = 100) -> int:
    """Chords of the pieces played at an adversarial iteration under a curriculum of lengths.

    ``start`` chords at iterations 1..``every``, twice as many for the next
    ``every`` iterations, and so on up to ``n_steps``; ``start = 0`` is no
    curriculum (always ``n_steps``).

    Parameters
    ----------
    iteration : int
        Adversarial iteration, from 1.
    n_steps, start, every : int
        The config's ``n_steps``, ``curriculum_start`` and ``curriculum_iterations``.

    Returns
    -------
    steps : int
    """
    if not start:
        return n_steps
    return min(n_steps, start * 2 ** ((iteration - 1) // every))


def _rests_after(seqs: np.ndarray, length: int, n_steps: int) -> np.ndarray:
    """(batch, >= length, ...) -> (batch, n_steps, ...): zeros (rests, no reward) after the first ``length`` steps."""
    if length >= n_steps and seqs.shape[1] == n_steps:
        return seqs
    out = np.zeros((len(seqs), n_steps, *seqs.shape[2:]), dtype=seqs.dtype)
    out[:, :length] = seqs[:, :length]
    return out


def _score_and_first_d_update(state: TrainState, run: _Run, real_x: np.ndarray, gen_x: np.ndarray,
                              length: int) -> tuple[dict[str, float], np.ndarray]:
    """D's logits of the batch from before its first update, and that update's figures.

    Under ``d_max_accuracy`` D first only listens, to the real clips too; it
    is updated when its accuracy on the batch (the last step's logit on the
    right side of 0, real and generated weighed alike) is at most that: GAPT's
    gate, a critic that keeps winning stops learning until the policy catches
    up. An untrained D that calls everything generated is at 0.5 and learns.
    The figures of a skipped update are NaN (not measured; null in
    metrics.jsonl) with ``updated`` 0.
    """
    cfg, dist = state.cfg, run.dist
    if cfg.d_max_accuracy >= 1:
        d_stats, pred_gen = dist.train_and_score(state.d, real_x, gen_x)
        return {**d_stats, "updated": 1.0}, pred_gen
    pred_gen, pred_real = dist.score_d(state.d, gen_x), dist.score_d(state.d, real_x)
    accuracy = 0.5 * (float(np.mean(pred_real[:, length - 1] > 0)) + float(np.mean(pred_gen[:, length - 1] <= 0)))
    if accuracy > cfg.d_max_accuracy:
        skipped = dict.fromkeys(("loss", "loss_real", "loss_gen", "gp", "acc_real", "acc_gen"), float("nan"))
        return {**skipped, "updated": 0.0}, pred_gen
    return {**dist.train_d(state.d, real_x, gen_x), "updated": 1.0}, pred_gen


def _advantages(state: TrainState, run: _Run, pred_gen: np.ndarray, episodes: Any, where: str) -> tuple:
    """D's per-step logits -> (rewards, returns, baseline, advantages); updates the run's statistics."""
    cfg = state.cfg
    length = episodes.seqs.shape[1]
    # a curriculum's shorter pieces earn their rewards over their own steps; the rests after them earn 0,
    # so the per-step baseline keeps one shape over the whole run
    rewards = _rests_after(logits_to_rewards(pred_gen[:, :length], **reward_kwargs(cfg)), length, cfg.n_steps)
    # before the normalizer sees them: it stops on a NaN with an error that cannot be skipped
    _check_finite(where, {"rewards": rewards})
    returns = discounted_returns(rewards, gamma=cfg.reward_gamma)
    if cfg.reward_normalize:
        state.normalizer.update(returns)
        returns = state.normalizer.normalize(returns)
    if cfg.value_head:
        # the value head's estimate of each step's return
        baseline = _rests_after(run.dist.gather(episodes.values), length, cfg.n_steps)
        if cfg.gae_lambda < 1:
            adv = gae_advantages(rewards, baseline, gamma=cfg.reward_gamma, lam=cfg.gae_lambda)
            return rewards, returns, baseline, cfg.pg_coef * adv
    elif state.baseline.n_updates == 0:
        # the first batch is its own baseline: a start at 0 would push every episode down
        baseline = state.baseline.update(returns)
    else:
        baseline = state.baseline()
        state.baseline.update(returns)
    return rewards, returns, baseline, cfg.pg_coef * advantages(returns, baseline)


def _policy_update(state: TrainState, run: _Run, episodes: Any, adv: np.ndarray, returns: np.ndarray,
                   iteration: int, where: str) -> tuple[float, dict[str, float]]:
    """``ppo_epochs`` passes of REINFORCE (PPO's clipped surrogate after the first); (kl_coef, stats)."""
    cfg = state.cfg
    kl_coef = kl_weight(iteration, start=cfg.kl_coef, end=cfg.kl_coef_end,
                        iterations=cfg.kl_schedule_iterations, schedule=cfg.kl_schedule)
    rows = run.dist.worker_rows(cfg.batch_size)  # this worker's episodes
    length = episodes.seqs.shape[1]  # shorter than n_steps under a curriculum
    adv, returns = adv[:, :length], returns[:, :length]
    # PPO: later passes over the batch are judged against the policy that played it
    old_log_prob = episodes.log_probs if cfg.ppo_epochs > 1 else None
    for epoch in range(cfg.ppo_epochs):
        stats = run.dist.reinforce_step(
            state.policy, state.policy_optimizer, episodes.seqs, adv[rows],
            entropy_coef=cfg.entropy_coef, kl_coef=kl_coef, ref_policy=state.ref_policy,
            returns=returns[rows] if cfg.value_head else None, value_coef=cfg.value_coef,
            clip_norm=cfg.policy_clip_norm or None, old_log_prob=old_log_prob, clip_ratio=cfg.ppo_clip,
        )
        _check_finite(where, {"policy loss": stats["loss"]})
        # the first pass's figures are REINFORCE's, comparable across settings
        pg_stats = stats if epoch == 0 else {**pg_stats, "clip_frac": stats["clip_frac"]}
    return kl_coef, pg_stats


def _teacher_forcing(state: TrainState, run: _Run, n_play: int, rng: np.random.Generator, iteration: int,
                     where: str) -> float | None:
    """One maximum-likelihood step on real windows every ``mle_every`` iterations; its NLL (else None)."""
    cfg = state.cfg
    if not cfg.mle_every or iteration % cfg.mle_every:
        return None
    # teacher forcing keeps the policy on the data while D shapes it
    real_seqs = sample_real_seqs(run.real_windows, n_play, rng, transpose=cfg.transpose)
    mle_nll = run.dist.pretrain_step(state.policy, state.pretrain_optimizer, real_seqs,
                                     clip_norm=cfg.policy_clip_norm or None, own_share=cfg.mle_own_share,
                                     dropout=cfg.policy_dropout, rng=rng)
    _check_finite(where, {"teacher-forcing loss (NLL)": mle_nll})
    return mle_nll


def _log_row(state: TrainState, run: _Run, done: _Iteration, t0: float, bar: Any) -> dict[str, Any]:
    """The iteration's row, written to ``metrics.jsonl``, TensorBoard and the progress bar."""
    cfg = state.cfg
    row = _metrics_row(state, run, done, t0)
    with run.writer.as_default():
        run.scalars({k: v for k, v in row.items() if k != "iteration" and not k.startswith("t_")}, done.iteration)
    row["t_log"] = time.perf_counter() - done.clock[-1]
    row["episodes_per_s"] = cfg.batch_size / (time.perf_counter() - t0)
    row["peak_rss_mb"] = _peak_rss_mb()
    run.metrics_log.append(row)
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"reward {row['reward_mean']:.3f}, D acc real {row['d_acc_real']:.2f} "
                            f"gen {row['d_acc_gen']:.2f}")
    return row


def _metrics_row(state: TrainState, run: _Run, done: _Iteration, t0: float) -> dict[str, Any]:
    """The numbers of an iteration (``state`` already counts it); timings from ``t0``, its start."""
    cfg, d_stats, pg_stats = state.cfg, done.d_stats, done.pg_stats
    t1, t2, t3, t4, t5 = done.clock
    # an episode's return: D's potential of the finished piece (end or dense rewards), or the
    # mean over its prefixes (reward_prefixes), so runs compare only under the same setting
    episode_returns = done.rewards.sum(axis=1)
    row = {
        "iteration": done.iteration,
        "episodes": state.episodes,
        "time_s": round(state.train_seconds + time.perf_counter() - run.wall_start, 3),
        "reward_mean": float(episode_returns.mean()),
        "reward_std": float(episode_returns.std()),
        "d_prob_gen": float(np.mean(1.0 / (1.0 + np.exp(-done.pred_gen[:, done.episodes.seqs.shape[1] - 1])))),
        "d_loss": d_stats["loss"],
        "d_loss_real": d_stats["loss_real"],
        "d_loss_gen": d_stats["loss_gen"],
        "d_gp": d_stats["gp"],
        "d_acc_real": d_stats["acc_real"],
        "d_acc_gen": d_stats["acc_gen"],
        "d_updated": d_stats["updated"],
        "policy_loss": pg_stats["loss"],
        "pg_loss": pg_stats["pg_loss"],
        "entropy": pg_stats["entropy"],
        "kl": pg_stats["kl"],
        "kl_coef": done.kl_coef,
        "grad_norm": pg_stats["grad_norm"],
        "baseline": float(np.mean(done.baseline)),
        "vocab_share": float(np.mean(run.dist.gather(done.episodes.from_vocab))),
        "t_sample": t1 - t0,
        "t_mel": t2 - t1,
        "t_reward": t3 - t2 - done.t_first_d,
        "t_d_update": t4 - t3 + done.t_first_d,
        "t_policy_update": t5 - t4,
    }
    if done.mle_nll is not None:
        row["mle_nll"] = done.mle_nll
    if cfg.ppo_epochs > 1:
        row["ppo_clip_frac"] = pg_stats["clip_frac"]
    if cfg.curriculum_start:
        row["episode_steps"] = done.episodes.seqs.shape[1]
    if done.iteration % cfg.collapse_every == 0 or done.iteration == 1:
        row.update(_collapse_measures(run.dist.gather(done.episodes.seqs), run.real_ref, cfg))
    return row


def _checkpoint_and_samples(state: TrainState, run: _Run, done: _Iteration, limit: int | None) -> None:
    """Write a checkpoint and samples when the schedule asks for them after ``done``."""
    cfg = state.cfg
    if done.iteration % cfg.checkpoint_every == 0:
        run.checkpoint(state)
    if cfg.sample_temperature == 1.0:
        # the episodes are the policy's pieces; at another temperature they are drawn anew
        run.last_batch = {"seqs": done.episodes.seqs, "mels": done.gen_x if d_input_kind(cfg) == "mel" else None}
    if run.dist.is_chief and cfg.sample_every and done.iteration % cfg.sample_every == 0 and done.iteration != limit:
        _save_sample_point(state, run.paths, run.writer, checkpoint_name(done.iteration), done.iteration,
                           **run.last_batch)


def _finish(state: TrainState, run: _Run, limit: int | None) -> str:
    """The last checkpoint and samples of a run that ran out of iterations or time; its closing message.

    Raises _Interrupted after a signal, and _OutOfTime (after a checkpoint)
    when the time budget ended pretraining.
    """
    if run.stop:
        raise _Interrupted()
    if not state.pretrain_done:
        run.checkpoint(state)
        raise _OutOfTime()
    last_ckpt = run.checkpoint(state)
    end_tag = f"{checkpoint_name(state.iteration)}-end"
    if run.dist.is_chief:
        _save_sample_point(state, run.paths, run.writer, end_tag, state.iteration, **run.last_batch)
    # no worker returns before the chief has written the last checkpoint: a worker that
    # resumed at once would otherwise start from an older one than the chief
    run.dist.any([False])
    why = "time budget reached" if limit is None or state.iteration < limit else "done"
    return (f"finished at iteration {state.iteration} ({why}); "
            f"checkpoint {last_ckpt}, samples in {run.paths.samples / end_tag}")


# ---- what the phases share ------------------------------------------------------------------


def _skipping_nonfinite(state: TrainState, run: _Run, step: Callable[[], Any], *, adversarial: bool = True) -> Any:
    """``step()``, or None when it met a NaN/inf and ``on_nonfinite='skip'`` undid all it changed.

    Re-raises the NonFiniteError when skipping is off, or after ``_MAX_SKIPS``
    batches in a row were skipped. ``adversarial=False`` for a pretraining
    step, which changes less (see :func:`_snapshot`).
    """
    snapshot = _snapshot(state, adversarial=adversarial) if state.cfg.on_nonfinite == "skip" else None
    try:
        out = step()
    except NonFiniteError as e:
        if snapshot is None or run.skips >= _MAX_SKIPS:
            raise
        _restore(state, snapshot)
        run.log(f"skipped a batch: {e}")
        run.skips += 1
        return None
    run.skips = 0
    return out


def _loop_rng(state: TrainState, dist: Distribution | OneDevice, stream: int, counter: int) -> np.random.Generator:
    """The run's generator, or under several workers one of this worker's own for this step."""
    if dist.n_workers == 1:
        return state.rng
    return dist.worker_rng(state.cfg.seed, stream, counter)


def _halt(dist: Distribution | OneDevice, stop: _StopFlag, *reasons: bool) -> bool:
    """Whether to stop now: a signal or any of ``reasons``, on any worker (so all stop at the same step)."""
    flags = dist.any([bool(stop), *(bool(r) for r in reasons)])
    if flags[0] and not stop:
        stop.signal_name = "a signal to another worker"
    return any(flags)


class _Interrupted(Exception):
    pass


class _OutOfTime(Exception):
    pass


def _pretrain_log_last(path: Path) -> float:
    rows = read_metrics(path)
    return float(rows[-1]["nll"]) if rows else float("nan")


def _bar(progress: bool, total: int | None, initial: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True)


def _checkpoint(state: TrainState, paths: RunPaths, wall_start: float) -> Path:
    """Save ``state`` as ``iter-<iteration>`` (once per state), point ``latest`` at it, prune old ones."""
    mark = (state.iteration, state.pretrain_steps_done, state.pretrain_done)
    if state._saved_mark == mark:
        return state._saved_path
    seconds = state.train_seconds
    state.train_seconds = seconds + time.perf_counter() - wall_start
    try:
        path = save_train_checkpoint(state, paths.checkpoints)
    finally:
        state.train_seconds = seconds
    prune_checkpoints(paths.checkpoints, keep=state.cfg.keep_checkpoints)
    state._saved_mark, state._saved_path = mark, path
    return path

