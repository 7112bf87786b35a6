"""Adversarial training: the agent writes chords, D listens, both learn at once.

:func:`train` is the whole loop, readable top to bottom. After an optional
maximum-likelihood pretraining of the policy on real windows (as in SeqGAN),
every iteration

1. samples a batch of episodes from the policy (``gen_seqs`` and log-probs);
2. turns generated and real seqs into log-mels (the batched fast path,
   ``mel.seq_to_mel``), or leaves them as seqs for the symbolic 'seq' D;
3. scores the generated clips with D: per-step logits -> rewards (paid at the
   end, dense, or for every prefix) -> returns (optionally normalized) ->
   advantages against a moving-average baseline (or the policy's value head);
4. updates D ``d_steps`` times on real vs generated clips (replay buffer,
   label smoothing and gradient penalty as configured); on one device the
   first update also gives step 3 its scores, from the D before the update;
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
import contextlib
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

from .agent import (
    ChordPolicy,
    build_chord_vocab,
    build_policy,
    clone_policy,
    kl_weight,
    pretrain_step,
    reinforce_step,
    vocab_kwargs,
)
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
from .distribute import Distribution, make_distribution
from .load import checkpoint_vocab
from ..errors import MusicRLError
from ..audio.mel import seq_to_mel_by_width
from ..music.metrics import distinct_chords, pitch_class_overlap, top_pitch_share
from .reward import (
    MovingAverageBaseline,
    RunningMeanStd,
    advantages,
    discounted_returns,
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


def _skip_batch(error: NonFiniteError, state: TrainState, snapshot: dict | None, skips: int,
                log: Callable[[str], None]) -> int:
    """Undo a batch that gave a NaN/inf and return the count of batches skipped in a row.

    Re-raises ``error`` when skipping is off (no snapshot) or too many batches in a row failed.
    """
    if snapshot is None or skips >= _MAX_SKIPS:
        raise error
    _restore(state, snapshot)
    log(f"skipped a batch: {error}")
    return skips + 1


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
    if dist is not None and not dist.is_chief:
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


def _scope(dist: Distribution | None):
    return dist.scope() if dist is not None else contextlib.nullcontext()


def _train_run(
    cfg: Config,
    dist: Distribution | None,
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
    chief = dist is None or dist.is_chief

    # ---- seeding, data, models ---------------------------------------------------
    rng = seed_everything(cfg.seed, deterministic_ops=cfg.deterministic)
    try:
        real_data = load_real_data(cfg, data, progress=progress)
        real_windows = real_data.train_windows
        if len(real_windows) == 0:
            raise MusicRLError(f"no training windows of {cfg.n_steps} steps in {real_data.root!r}")
        with _scope(dist):
            state = build_train_state(cfg, real_windows, rng=rng) if ckpt_path is None else None
    except BaseException:
        if chief and ckpt_path is None and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that never started leaves no folder behind
        raise
    source = "folder" if data is not None else "default"
    if ckpt_path is None:
        log(f"run folder: {run_dir}" if chief else "the chief writes the run folder")
        print_data_report(real_data, log=log)
        if chief:
            write_run_info(run_dir, cfg, {
                "data": _data_manifest(real_data, source),
                "command": sys.argv,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "data_dir": str(Path(data).resolve()) if data is not None else str(resolve_data_dir(cfg)),
            })
    else:
        with _scope(dist):
            state = load_train_state(cfg, ckpt_path)
        log(f"resumed from iteration {state.iteration} ({ckpt_path})")
        if chief:
            write_run_info(run_dir, cfg, {"resumed": time.strftime("%Y-%m-%d %H:%M:%S")})
    if dist is not None:
        log(f"strategy {cfg.strategy}: {dist.n_replicas} replicas on {dist.n_workers} worker(s), "
            f"{cfg.batch_size // dist.n_replicas} episodes per replica; this is worker {dist.worker_index}")
    # a fixed set of real windows the collapse measures compare against
    real_ref = real_windows[np.random.default_rng([cfg.seed, 2]).integers(len(real_windows), size=_N_REFERENCE)]

    writer = tf.summary.create_file_writer(str(paths.tensorboard)) if chief else tf.summary.create_noop_writer()
    metrics_log = MetricsLog(paths.metrics, keep_until=state.iteration)
    pretrain_log = MetricsLog(paths.pretrain, keep_until=state.pretrain_steps_done, key="step")
    budget = cfg.minutes * 60.0 if cfg.minutes > 0 else math.inf
    time_left = lambda: budget - (time.perf_counter() - wall_start)  # noqa: E731
    status, message = "finished", ""
    last_ckpt = ckpt_path
    skips = 0
    last_batch: dict[str, Any] = {}
    real_mels = _MelCache(cfg.real_mel_cache)
    scalars = _Scalars("train")

    with _StopFlag(handle_signals) as stop, metrics_log, pretrain_log:
        try:
            if chief and state.iteration == 0 and not state.pretrain_done and state.pretrain_steps_done == 0:
                real_seqs = sample_real_seqs(real_windows, cfg.batch_size, np.random.default_rng([cfg.seed, 3]))
                _save_sample_point(state, paths, writer, "real", 0, seqs=real_seqs, prefix="real")
                _save_sample_point(state, paths, writer, "iter-0000000-start", 0)

            # ---- pretraining: maximum likelihood on real windows (SeqGAN) ---------------
            if not state.pretrain_done:
                pretrain_budget = cfg.pretrain_minutes * 60.0 if cfg.pretrain_minutes > 0 else math.inf
                t_pre = time.perf_counter()
                bar = _bar(progress, cfg.pretrain_steps, state.pretrain_steps_done, "pretrain")
                while state.pretrain_steps_done < cfg.pretrain_steps:
                    if _halt(dist, stop, time_left() <= 0, time.perf_counter() - t_pre > pretrain_budget):
                        break
                    # under a strategy: this worker's share of the batch
                    rng = _loop_rng(state, dist, _PRETRAIN_STREAM, state.pretrain_steps_done + 1)
                    real_seqs = sample_real_seqs(real_windows, _n_rows(dist, cfg.batch_size), rng,
                                                 transpose=cfg.transpose)
                    snapshot = _snapshot(state, adversarial=False) if cfg.on_nonfinite == "skip" else None
                    step_fn = pretrain_step if dist is None else dist.pretrain_step
                    nll = step_fn(state.policy, state.pretrain_optimizer, real_seqs,
                                  clip_norm=cfg.policy_clip_norm or None, dropout=cfg.policy_dropout, rng=rng)
                    step = state.pretrain_steps_done + 1
                    try:
                        _check_finite(f"pretraining step {step}", {"pretraining loss (NLL)": nll})
                        _check_weights(state, f"pretraining step {step}")
                    except NonFiniteError as e:
                        skips = _skip_batch(e, state, snapshot, skips, log)
                        continue
                    skips = 0
                    state.pretrain_steps_done = step
                    pretrain_log.append({"step": step, "nll": nll})
                    with writer.as_default():
                        tf.summary.scalar("pretrain/nll", nll, step=step)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"NLL {nll:.3f}")
                if bar is not None:
                    bar.close()
                if stop:
                    raise _Interrupted()
                # out of total time mid-way: stay in pretraining, so --resume continues it
                if state.pretrain_steps_done == cfg.pretrain_steps or not _agreed(dist, time_left() <= 0):
                    # the frozen reference of the KL penalty is the pretrained policy
                    state.ref_policy.set_weights(state.policy.get_weights())
                    state.pretrain_done = True
                    last_ckpt = save_train_checkpoint(state, paths.checkpoints, "pretrained")
                    if state.pretrain_steps_done:
                        if chief:
                            _save_sample_point(state, paths, writer, "iter-0000000-pretrained", 0)
                        nll = _pretrain_log_last(paths.pretrain)
                        log(f"pretrained the policy for {state.pretrain_steps_done} steps "
                            f"(last NLL {nll:.3f} nats per chord)")

            # ---- adversarial training ---------------------------------------------------
            limit = cfg.iterations if cfg.iterations > 0 else None
            if d_input_kind(cfg) == "mel" and (limit is None or state.iteration < limit):
                # the real windows are fixed: their mels are made once, not in the loop
                real_mels.fill(real_windows, cfg)
            bar = _bar(progress, limit, state.iteration, "train")
            while limit is None or state.iteration < limit:
                if _halt(dist, stop, time_left() <= 0):
                    break
                iteration = state.iteration + 1
                where = f"iteration {iteration}"
                t0 = time.perf_counter()
                snapshot = _snapshot(state) if cfg.on_nonfinite == "skip" else None
                try:
                    # 1. play a batch of episodes (under a strategy: this worker's share)
                    rng = _loop_rng(state, dist, _ROLLOUT_STREAM, iteration)
                    n_play = _n_rows(dist, cfg.batch_size)
                    episodes = state.policy.sample(n_play, rng, n_steps=cfg.n_steps)
                    gen_seqs = episodes.seqs
                    t1 = time.perf_counter()

                    # 2. listen: seqs -> log-mels through the batched fast path (real clips alike)
                    gen_x = _d_inputs(gen_seqs, cfg)
                    real_xs = []
                    for _ in range(cfg.d_steps):
                        real_seqs = sample_real_seqs(real_windows, n_play, rng, transpose=cfg.transpose)
                        real_xs.append(_d_inputs(real_seqs, cfg, real_mels))
                    t2 = time.perf_counter()

                    # 3. score: D's per-step logits -> rewards -> returns -> advantages
                    # (under a strategy: of every worker's episodes, so all compute the same advantages).
                    # On one device D's first update scores the batch as it goes: the same logits, and only the
                    # clips replay swapped out of its batch need a pass of their own.
                    fused = dist is None
                    t_fused = 0.0  # counted as D update time
                    if fused:
                        d_stats, pred_gen = state.d.train_and_score(real_xs[0], gen_x)
                        t_fused = time.perf_counter() - t2
                    else:
                        pred_gen = dist.score(state.d.model, gen_x)
                    _check_finite(where, {"D logits (rewards)": pred_gen})
                    if fused:
                        _check_finite(where, {"D loss": d_stats["loss"]})
                    rewards = logits_to_rewards(pred_gen, **reward_kwargs(cfg))
                    # before the normalizer sees them: it stops on a NaN with an error that cannot be skipped
                    _check_finite(where, {"rewards": rewards})
                    returns = discounted_returns(rewards, gamma=cfg.reward_gamma)
                    if cfg.reward_normalize:
                        state.normalizer.update(returns)
                        returns = state.normalizer.normalize(returns)
                    if cfg.value_head:
                        # the critic's estimate of each step's return
                        baseline = episodes.values if dist is None else dist.gather(episodes.values)
                    elif state.baseline.n_updates == 0:
                        # the first batch is its own baseline: a start at 0 would push every episode down
                        baseline = state.baseline.update(returns)
                    else:
                        baseline = state.baseline()
                        state.baseline.update(returns)
                    adv = cfg.pg_coef * advantages(returns, baseline)
                    t3 = time.perf_counter()

                    # 4. update D on real vs generated clips (the first update already done when fused)
                    for real_x in real_xs[1:] if fused else real_xs:
                        if dist is None:
                            d_stats = state.d.train_step(real_x, gen_x)
                        else:
                            d_stats = dist.train_d(state.d, real_x, gen_x)
                        _check_finite(where, {"D loss": d_stats["loss"]})
                    t4 = time.perf_counter()

                    # 5. update the policy: REINFORCE + entropy bonus + KL to the pretrained policy
                    kl_coef = kl_weight(iteration, start=cfg.kl_coef, end=cfg.kl_coef_end,
                                        iterations=cfg.kl_schedule_iterations, schedule=cfg.kl_schedule)
                    rows = slice(None) if dist is None else dist.worker_rows(cfg.batch_size)  # this worker's episodes
                    pg_fn = reinforce_step if dist is None else dist.reinforce_step
                    # PPO: later passes over the batch are judged against the policy that played it
                    old_log_prob = episodes.log_probs if cfg.ppo_epochs > 1 else None
                    for epoch in range(cfg.ppo_epochs):
                        stats = pg_fn(
                            state.policy, state.policy_optimizer, gen_seqs, adv[rows],
                            entropy_coef=cfg.entropy_coef, kl_coef=kl_coef, ref_policy=state.ref_policy,
                            returns=returns[rows] if cfg.value_head else None, value_coef=cfg.value_coef,
                            clip_norm=cfg.policy_clip_norm or None, old_log_prob=old_log_prob,
                            clip_ratio=cfg.ppo_clip,
                        )
                        _check_finite(where, {"policy loss": stats["loss"]})
                        # the first pass's figures are REINFORCE's, comparable across settings
                        pg_stats = stats if epoch == 0 else {**pg_stats, "clip_frac": stats["clip_frac"]}
                    mle_nll = None
                    if cfg.mle_every and iteration % cfg.mle_every == 0:
                        # teacher forcing keeps the policy on the data while the critic shapes it
                        real_seqs = sample_real_seqs(real_windows, n_play, rng, transpose=cfg.transpose)
                        step_fn = pretrain_step if dist is None else dist.pretrain_step
                        mle_nll = step_fn(state.policy, state.pretrain_optimizer, real_seqs,
                                          clip_norm=cfg.policy_clip_norm or None,
                                          own_share=cfg.mle_own_share, dropout=cfg.policy_dropout, rng=rng)
                        _check_finite(where, {"teacher-forcing loss (NLL)": mle_nll})
                    _check_weights(state, where)
                    t5 = time.perf_counter()
                except NonFiniteError as e:
                    skips = _skip_batch(e, state, snapshot, skips, log)
                    continue
                skips = 0

                # 6. log
                state.iteration = iteration
                state.episodes += cfg.batch_size
                # an episode's return: D's potential of the finished piece (end or dense rewards), or the
                # mean over its prefixes (reward_prefixes), so runs compare only under the same setting
                episode_returns = rewards.sum(axis=1)
                row = {
                    "iteration": iteration,
                    "episodes": state.episodes,
                    "time_s": round(state.train_seconds + time.perf_counter() - wall_start, 3),
                    "reward_mean": float(episode_returns.mean()),
                    "reward_std": float(episode_returns.std()),
                    "d_prob_gen": float(np.mean(1.0 / (1.0 + np.exp(-pred_gen[:, -1])))),
                    "d_loss": d_stats["loss"],
                    "d_loss_real": d_stats["loss_real"],
                    "d_loss_gen": d_stats["loss_gen"],
                    "d_gp": d_stats["gp"],
                    "d_acc_real": d_stats["acc_real"],
                    "d_acc_gen": d_stats["acc_gen"],
                    "policy_loss": pg_stats["loss"],
                    "pg_loss": pg_stats["pg_loss"],
                    "entropy": pg_stats["entropy"],
                    "kl": pg_stats["kl"],
                    "kl_coef": kl_coef,
                    "grad_norm": pg_stats["grad_norm"],
                    "baseline": float(np.mean(baseline)),
                    "vocab_share": float(np.mean(episodes.from_vocab if dist is None
                                                 else dist.gather(episodes.from_vocab))),
                    "t_sample": t1 - t0,
                    "t_mel": t2 - t1,
                    "t_reward": t3 - t2 - t_fused,
                    "t_d_update": t4 - t3 + t_fused,
                    "t_policy_update": t5 - t4,
                }
                if mle_nll is not None:
                    row["mle_nll"] = mle_nll
                if cfg.ppo_epochs > 1:
                    row["ppo_clip_frac"] = pg_stats["clip_frac"]
                if iteration % cfg.collapse_every == 0 or iteration == 1:
                    row.update(_collapse_measures(gen_seqs if dist is None else dist.gather(gen_seqs), real_ref, cfg))
                with writer.as_default():
                    scalars({k: v for k, v in row.items() if k != "iteration" and not k.startswith("t_")}, iteration)
                row["t_log"] = time.perf_counter() - t5
                row["episodes_per_s"] = cfg.batch_size / (time.perf_counter() - t0)
                row["peak_rss_mb"] = _peak_rss_mb()
                metrics_log.append(row)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"reward {row['reward_mean']:.3f}, D acc real {row['d_acc_real']:.2f} "
                                        f"gen {row['d_acc_gen']:.2f}")

                # checkpoints and samples on schedule
                if iteration % cfg.checkpoint_every == 0:
                    last_ckpt = _checkpoint(state, paths, wall_start)
                if cfg.sample_temperature == 1.0:
                    # the episodes are the policy's pieces; at another temperature they are drawn anew
                    last_batch = {"seqs": gen_seqs, "mels": gen_x if d_input_kind(cfg) == "mel" else None}
                if chief and cfg.sample_every and iteration % cfg.sample_every == 0 and iteration != limit:
                    _save_sample_point(state, paths, writer, checkpoint_name(iteration), iteration, **last_batch)
                if on_iteration is not None:
                    on_iteration(row, state)
            if bar is not None:
                bar.close()
            if stop:
                raise _Interrupted()
            if not state.pretrain_done:
                last_ckpt = _checkpoint(state, paths, wall_start)
                raise _OutOfTime()
            last_ckpt = _checkpoint(state, paths, wall_start)
            end_tag = f"{checkpoint_name(state.iteration)}-end"
            if chief:
                _save_sample_point(state, paths, writer, end_tag, state.iteration, **last_batch)
            if dist is not None:
                # no worker returns before the chief has written the last checkpoint: a worker that
                # resumed at once would otherwise start from an older one than the chief
                dist.any([False])
            why = "time budget reached" if limit is None or state.iteration < limit else "done"
            message = (f"finished at iteration {state.iteration} ({why}); "
                       f"checkpoint {last_ckpt}, samples in {paths.samples / end_tag}")
        except _OutOfTime:
            message = (f"time budget reached during pretraining (step {state.pretrain_steps_done} of "
                       f"{cfg.pretrain_steps}): checkpoint written to {last_ckpt}; continue with --resume")
        except _Interrupted:
            status = "interrupted"
            last_ckpt = _checkpoint(state, paths, wall_start)
            message = (f"interrupted by {stop.signal_name} at iteration {state.iteration}: "
                       f"checkpoint written to {last_ckpt}; continue with --resume")
        except NonFiniteError as e:
            status = "nonfinite"
            keep = latest_checkpoint(paths.checkpoints)
            message = (f"stopped: {e}. The last good checkpoint is kept: "
                       f"{keep if keep is not None else 'none yet'}")
            last_ckpt = keep
        finally:
            writer.flush()
            writer.close()
    if not chief:
        # its checkpoints went to a temporary folder: the chief's are the run's
        message, last_ckpt = f"stopped at iteration {state.iteration} ({status}); the chief wrote the run", None
    log(message)
    return TrainResult(run_dir=run_dir, iteration=state.iteration, status=status, message=message,
                       checkpoint=last_ckpt)


def _loop_rng(state: TrainState, dist: Distribution | None, stream: int, counter: int) -> np.random.Generator:
    """The run's generator, or under several workers one of this worker's own for this step."""
    if dist is None or dist.n_workers == 1:
        return state.rng
    return dist.worker_rng(state.cfg.seed, stream, counter)


def _n_rows(dist: Distribution | None, batch_size: int) -> int:
    """Rows of the global batch this process plays (all of them on one worker)."""
    return batch_size if dist is None else dist.worker_batch(batch_size)


def _agreed(dist: Distribution | None, flag: bool) -> bool:
    """``flag``, or under several workers whether it holds on any (each must ask at the same point)."""
    if dist is None or dist.n_workers == 1:
        return bool(flag)
    return dist.any([flag])[0]


def _halt(dist: Distribution | None, stop: _StopFlag, *reasons: bool) -> bool:
    """Whether to stop now: a signal or any of ``reasons``, on any worker (so all stop at the same step)."""
    flags = [bool(stop), *(bool(r) for r in reasons)]
    if dist is not None and dist.n_workers > 1:
        flags = dist.any(flags)
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
