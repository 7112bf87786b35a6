"""Training on several devices or machines with ``tf.distribute``.

The setting ``strategy`` picks how :func:`musicrl.learning.train.train` runs:

``'default'``
    One device, no strategy (:class:`OneDevice`): the loop's steps as the
    agent and D define them.
``'mirrored'``
    ``tf.distribute.MirroredStrategy`` in one process: over the devices of
    the setting ``devices`` (e.g. ``'GPU:0,GPU:1'``), else over every visible
    GPU, else over every logical CPU device (``cpu_devices`` splits the CPU
    into several, for tests).
``'multiworker'``
    ``tf.distribute.MultiWorkerMirroredStrategy``: one process per machine
    (worker), the cluster read from the standard ``TF_CONFIG`` environment
    variable; every worker runs the same command.

How an iteration is split (``B = batch_size``, the GLOBAL batch, ``W``
workers, ``R`` replicas in all, ``B % R == 0``):

* rollouts: each worker samples ``B / W`` episodes, synthesizes them, turns
  them and ``B / W`` real clips into log-mels, in its own process (with a
  single worker, the whole batch in one call, from the run's generator, so a
  one-process run draws what a one-device run draws; with several, from a
  generator of its own derived from the seed, the iteration and the worker
  index). Adding workers adds rollout throughput.
* D: each replica scores its ``B / R`` generated clips (the scores are
  gathered, so every worker computes the same rewards, baseline and
  advantages over the whole batch) and takes its update step on ``B / R``
  real and generated clips inside ``strategy.run``; the loss is averaged
  over the global batch (``tf.nn.compute_average_loss``) and
  ``optimizer.apply_gradients`` all-reduces the gradients.
* policy: the gradients of each replica's ``B / R`` episodes come from the
  agent's own update functions (:func:`~musicrl.learning.agent.reinforce_step`,
  :func:`~musicrl.learning.agent.pretrain_step`, the same loss as on one device)
  given a :class:`GradientCatcher` instead of an optimizer; they are
  weighted by ``(B / R) / B`` and applied inside ``strategy.run``, where
  they are all-reduced, clipped by the norm of their sum and applied.
* metrics are reduced over replicas (``strategy.reduce``), so a logged loss
  is the mean over the global batch.

A one-process strategy ('mirrored') keeps one replay buffer for the whole
batch, as on one device; under 'multiworker' each worker keeps one for the
clips it makes (the chief's is the one saved in checkpoints). Batch
statistics inside D (``d_minibatch_std``) are taken per replica.
"""

from __future__ import annotations

import contextlib
import json
import os
from functools import partial
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from .agent import ChordPolicy, pretrain_step, reinforce_step
from .discriminator import DiscriminatorTrainer, check_d_inputs, d_loss_terms
from ..errors import MusicRLError
from ..seeding import as_rng

__all__ = [
    "Distribution",
    "GradientCatcher",
    "OneDevice",
    "configure_cpu_devices",
    "d_replica_losses",
    "make_distribution",
    "parse_tf_config",
]

_SUM = tf.distribute.ReduceOp.SUM
_MEAN = tf.distribute.ReduceOp.MEAN
# a process sets up its collective ops once: later runs in it reuse the cluster's strategy
_MULTIWORKER: dict[str, tf.distribute.Strategy] = {}


# --------------------------------------------------------------------------
# devices and the cluster
# --------------------------------------------------------------------------


def configure_cpu_devices(n: int) -> None:
    """Split the CPU into ``n`` logical devices (``/cpu:0`` ... ``/cpu:<n-1>``).

    Must run before TensorFlow initializes its devices (its first op); in a
    process where that already happened, a matching split is accepted and
    any other is an error.

    Parameters
    ----------
    n : int
        Logical CPU devices (0: leave the CPU as TensorFlow finds it).

    Raises
    ------
    MusicRLError
        If TensorFlow started with another number of CPU devices.
    """
    if n <= 0:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise MusicRLError(
                f"cpu_devices={n} must be set before TensorFlow starts, but this process already runs with "
                f"{have} CPU device(s): set it in a fresh process (e.g. python -m musicrl train --set cpu_devices={n})"
            ) from None


def parse_tf_config(text: str | None = None) -> dict[str, Any]:
    """This process's place in the cluster that ``TF_CONFIG`` describes.

    Parameters
    ----------
    text : str, optional
        The JSON of ``TF_CONFIG`` (default: the environment variable; unset
        or empty means a cluster of one worker).

    Returns
    -------
    place : dict
        ``n_workers`` (tasks of type 'chief' and 'worker'), ``worker_index``
        (0 for the chief, then the workers in order), ``is_chief`` (the
        task 'chief', or worker 0 when there is none) and ``n_on_host``
        (tasks whose address has this task's host name, itself included).

    Raises
    ------
    MusicRLError
        For JSON that is not a cluster with this task in it.
    """
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return {"n_workers": 1, "worker_index": 0, "is_chief": True, "n_on_host": 1}
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = task["type"], int(task["index"])
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise MusicRLError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}, got {text[:200]!r} ({e})'
        ) from None
    n_tasks = {"chief": len(chiefs), "worker": len(workers)}
    if task_type not in n_tasks or not 0 <= index < n_tasks[task_type]:
        raise MusicRLError(
            f"TF_CONFIG's task {task_type!r} {index} is not in its cluster ({len(chiefs)} chief, "
            f"{len(workers)} workers); musicrl runs tasks of type 'chief' and 'worker' only"
        )
    worker_index = 0 if task_type == "chief" else index + len(chiefs)
    addresses = [str(a) for a in chiefs + workers]
    host = addresses[worker_index].rsplit(":", 1)[0]
    return {
        "n_workers": len(addresses),
        "worker_index": worker_index,
        "is_chief": worker_index == 0,
        "n_on_host": sum(a.rsplit(":", 1)[0] == host for a in addresses),
    }


def _mirrored_devices(devices: str) -> list[str]:
    if devices.strip():
        names = [d.strip() for d in devices.split(",")]
        known = {d.name.lower().replace("/device:", "/") for d in tf.config.list_logical_devices()}
        for name in names:
            full = ("/" + name.lstrip("/")).lower().replace("/device:", "/")
            if not any(k.endswith(full) for k in known):
                raise MusicRLError(
                    f"config field 'devices' names {name!r}, which is not a device of this machine "
                    f"(have: {', '.join(sorted(k.split('/')[-1] for k in known))})"
                )
        return names
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _share_cores(n_processes: int) -> None:
    """Give each of ``n_processes`` workers on one machine its share of the cores' threads.

    Each TensorFlow process otherwise sizes its thread pools for every core,
    and workers sharing a machine then slow each other down. Only possible
    before TensorFlow starts; later it is left as it is.
    """
    if n_processes <= 1:
        return
    threads = max(1, (os.cpu_count() or 1) // n_processes)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass


def make_distribution(cfg) -> "Distribution | OneDevice":
    """The strategy the settings ask for, or :class:`OneDevice` for ``strategy='default'``.

    Applies ``cpu_devices`` first (in every case), so call it before any
    other TensorFlow work of the process ('multiworker' needs that too).

    Raises
    ------
    MusicRLError
        For a bad ``devices`` list or ``TF_CONFIG``, a strategy TensorFlow
        cannot set up, or a ``batch_size`` the replicas cannot share evenly.
    """
    configure_cpu_devices(cfg.cpu_devices)
    if cfg.strategy == "default":
        return OneDevice()
    if cfg.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy(_mirrored_devices(cfg.devices))
        place = {"n_workers": 1, "worker_index": 0, "is_chief": True}
    elif cfg.strategy == "multiworker":
        place = parse_tf_config()
        key = os.environ.get("TF_CONFIG", "")
        strategy = _MULTIWORKER.get(key)
        if strategy is None:
            _share_cores(place["n_on_host"])
            try:
                strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except (RuntimeError, ValueError) as e:
                raise MusicRLError(
                    f"cannot start MultiWorkerMirroredStrategy ({str(e).splitlines()[0][:200]}); it must be "
                    "created before any other TensorFlow work of the process"
                ) from None
            _MULTIWORKER[key] = strategy
        del place["n_on_host"]
    else:
        raise MusicRLError(f"unknown strategy {cfg.strategy!r}")
    dist = Distribution(strategy, **place)
    dist.check_batch(cfg.batch_size)
    return dist


# --------------------------------------------------------------------------
# gradients of the agent's own update functions
# --------------------------------------------------------------------------


class GradientCatcher(keras.optimizers.Optimizer):
    """A Keras optimizer that keeps the gradients it is given instead of applying them.

    Passed to an update function that ends with
    ``optimizer.apply_gradients`` (e.g. :func:`~musicrl.learning.agent.reinforce_step`),
    it leaves the model as it was and holds the step's gradients, one per
    variable of ``variables`` (zeros for a variable that got none), in
    :attr:`gradients`.

    Parameters
    ----------
    variables : list of keras.Variable
        The variables whose gradients are kept (e.g. ``policy.trainable_variables``).

    Attributes
    ----------
    gradients : list of keras.Variable
        The last gradients, shaped like ``variables``.
    received : list of bool or None
        Which variables the update function gave a gradient (known after its
        first call).
    """

    def __init__(self, variables: Sequence[Any]) -> None:
        super().__init__(learning_rate=0.0, name="gradient_catcher")
        self.build(list(variables))

    def build(self, variables) -> None:
        super().build(variables)
        self.gradients = [self.add_variable_from_reference(v, name="gradient") for v in variables]
        self._slot_of = {id(v): slot for v, slot in zip(variables, self.gradients)}
        self.received: list[bool] | None = None

    def apply_gradients(self, grads_and_vars) -> None:
        given = {id(v): g for g, v in grads_and_vars}
        unknown = set(given) - set(self._slot_of)
        if unknown:
            raise MusicRLError("GradientCatcher got gradients of variables it was not built for")
        self.received = [key in given for key in self._slot_of]
        for key, slot in self._slot_of.items():
            slot.assign(given[key] if key in given else tf.zeros_like(slot))

    def update_step(self, gradient, variable, learning_rate) -> None:
        raise MusicRLError("GradientCatcher keeps gradients; it never updates a variable")


# --------------------------------------------------------------------------
# D's loss, per replica
# --------------------------------------------------------------------------


def d_replica_losses(
    model: keras.Model,
    cfg,
    real_x: tf.Tensor,
    gen_x: tf.Tensor,
    mix_eps: tf.Tensor,
    *,
    global_batch_size: int,
) -> dict[str, tf.Tensor]:
    """D's loss on one replica's share of a batch, averaged over the GLOBAL batch.

    :func:`~musicrl.learning.discriminator.d_loss_terms` (the loss of
    :meth:`DiscriminatorTrainer.train_step`) with each term a sum over this
    replica's clips divided by ``global_batch_size``
    (``tf.nn.compute_average_loss``), so the terms of all replicas add up to
    the one-device means over the whole batch and their gradients add up to
    its gradient.

    Parameters
    ----------
    model : keras.Model
        D.
    cfg : Config
        As for :func:`~musicrl.learning.discriminator.d_loss_terms`.
    real_x, gen_x : tf.Tensor, shape=(b, *d_input_shape(cfg)), float32
        This replica's real and generated clips (same ``b``).
    mix_eps : tf.Tensor, shape=(b,), float32
        Mixing weights of the WGAN-GP penalty (unused otherwise).
    global_batch_size : int
        Clips of each kind over all replicas.

    Returns
    -------
    terms : dict of scalar tf.Tensor
        ``loss`` (the one to differentiate), ``loss_real``, ``loss_gen``,
        ``gp`` (unweighted), ``acc_real``, ``acc_gen``: this replica's
        shares, to be summed over replicas (``ReduceOp.SUM``).
    """
    average = partial(tf.nn.compute_average_loss, global_batch_size=global_batch_size)
    terms = d_loss_terms(model, cfg, real_x, gen_x, mix_eps, reduce=average)
    del terms["logits_gen"]
    return terms


# --------------------------------------------------------------------------
# where this process stands: one device, or its place in a strategy
# --------------------------------------------------------------------------


class _Place:
    """This process's share of the work: its workers, its replicas and its rows of a global batch."""

    def __init__(self, *, n_workers: int, worker_index: int, is_chief: bool, n_replicas: int,
                 n_local: int) -> None:
        self.n_workers = int(n_workers)
        self.worker_index = int(worker_index)
        self.is_chief = bool(is_chief)
        self.n_replicas = int(n_replicas)
        self.n_local = int(n_local)

    def check_batch(self, batch_size: int) -> None:
        """Raise MusicRLError unless ``batch_size`` splits evenly over the replicas."""
        if batch_size % self.n_replicas:
            raise MusicRLError(
                f"batch_size={batch_size} must be a multiple of the {self.n_replicas} replicas "
                f"(the global batch is split evenly over them)"
            )

    def worker_batch(self, batch_size: int) -> int:
        """Rows of a global batch this worker handles."""
        return batch_size // self.n_workers

    def worker_rows(self, batch_size: int) -> slice:
        """This worker's rows of a global batch (workers in index order)."""
        n = self.worker_batch(batch_size)
        return slice(self.worker_index * n, (self.worker_index + 1) * n)

    def worker_rng(self, *key: int) -> np.random.Generator:
        """A generator of this worker's own, derived from ``key`` (e.g. seed, stream, counter) and its index."""
        return np.random.default_rng([*(int(k) for k in key), self.worker_index])


class OneDevice(_Place):
    """One device and no strategy, behind the interface of :class:`Distribution`.

    The training loop calls the same methods whatever the devices: here the
    steps are the agent's and D's own, the scope changes nothing and the
    collectives return their input.
    """

    def __init__(self) -> None:
        super().__init__(n_workers=1, worker_index=0, is_chief=True, n_replicas=1, n_local=1)

    def __repr__(self) -> str:
        return "OneDevice()"

    def scope(self) -> contextlib.AbstractContextManager:
        """A scope that changes nothing: models are made as they would be without it."""
        return contextlib.nullcontext()

    def any(self, flags: Sequence[bool]) -> list[bool]:
        """The flags as they are (there is no other worker to ask)."""
        return [bool(f) for f in flags]

    def gather(self, local: np.ndarray) -> np.ndarray:
        """This worker's rows, which are all the rows."""
        return np.asarray(local)

    def train_and_score(self, trainer: DiscriminatorTrainer, real_x: Any, gen_x: Any) -> tuple[dict, np.ndarray]:
        """:meth:`DiscriminatorTrainer.train_and_score`: one update of D, and its logits of ``gen_x`` before it."""
        return trainer.train_and_score(real_x, gen_x)

    def score_d(self, trainer: DiscriminatorTrainer, gen_x: Any) -> np.ndarray:
        """:meth:`DiscriminatorTrainer.step_logits`: D's per-step logits of ``gen_x``, no update."""
        return trainer.step_logits(gen_x)

    def train_d(self, trainer: DiscriminatorTrainer, real_x: Any, gen_x: Any) -> dict[str, float]:
        """:meth:`DiscriminatorTrainer.train_step`: one update of D."""
        return trainer.train_step(real_x, gen_x)

    def pretrain_step(self, policy: ChordPolicy, optimizer: keras.optimizers.Optimizer, real_seqs: np.ndarray,
                      **kwargs: Any) -> float:
        """:func:`~musicrl.learning.agent.pretrain_step` with the same arguments."""
        return pretrain_step(policy, optimizer, real_seqs, **kwargs)

    def reinforce_step(self, policy: ChordPolicy, optimizer: keras.optimizers.Optimizer, gen_seqs: np.ndarray,
                       advantages: np.ndarray, **kwargs: Any) -> dict[str, float]:
        """:func:`~musicrl.learning.agent.reinforce_step` with the same arguments."""
        return reinforce_step(policy, optimizer, gen_seqs, advantages, **kwargs)


class Distribution(_Place):
    """A ``tf.distribute`` strategy, where this process stands in it, and how values cross it.

    The steps of D (:class:`_ReplicaD`) and of the policy
    (:class:`_ReplicaPolicy`) run per replica through this object; they are
    its methods ``score``, ``score_d``, ``train_d``, ``train_and_score``,
    ``pretrain_step`` and ``reinforce_step``, as on :class:`OneDevice`.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    n_workers : int
        Processes of the cluster (1 for 'mirrored').
    worker_index : int
        This process's index (0: the chief), which orders its rows in the
        global batch.
    is_chief : bool
        Whether this process writes the run folder.

    Attributes
    ----------
    n_replicas : int
        Replicas over all workers (``strategy.num_replicas_in_sync``).
    n_local : int
        Replicas of this worker.
    """

    def __init__(self, strategy: tf.distribute.Strategy, *, n_workers: int, worker_index: int,
                 is_chief: bool) -> None:
        self.strategy = strategy
        self.devices = list(strategy.extended.worker_devices)
        super().__init__(n_workers=n_workers, worker_index=worker_index, is_chief=is_chief,
                         n_replicas=strategy.num_replicas_in_sync, n_local=len(self.devices))
        if self.n_local * self.n_workers != self.n_replicas:
            raise MusicRLError(
                f"{self.n_replicas} replicas do not split evenly over {self.n_workers} workers of "
                f"{self.n_local} devices each: give every worker the same number of devices"
            )
        self._fns: dict[tuple, Any] = {}
        d_steps, policy_steps = _ReplicaD(self), _ReplicaPolicy(self)
        self.score, self.train_d, self.train_and_score = d_steps.score, d_steps.train_d, d_steps.train_and_score
        self.score_d = d_steps.score_d
        self.pretrain_step, self.reinforce_step = policy_steps.pretrain_step, policy_steps.reinforce_step

    def __repr__(self) -> str:
        return (f"Distribution({type(self.strategy).__name__}, {self.n_replicas} replicas, "
                f"worker {self.worker_index} of {self.n_workers})")

    def scope(self) -> contextlib.AbstractContextManager:
        """The strategy's scope: models, optimizers and buffers made in it are distributed."""
        return self.strategy.scope()

    # ---- moving values between the replicas and the workers -------------------------
    def _split(self, array: np.ndarray) -> list[np.ndarray]:
        """A worker's rows -> one equal part per local replica."""
        array = np.asarray(array)
        if len(array) % self.n_local:
            raise MusicRLError(f"{len(array)} rows do not split evenly over {self.n_local} local replicas")
        return np.split(array, self.n_local)

    def _distribute(self, parts: Sequence[Any]) -> Any:
        """Per-replica values from one structure of arrays per local replica."""
        first = self.worker_index * self.n_local

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group - first
            if not 0 <= i < self.n_local:
                raise MusicRLError(f"replica {ctx.replica_id_in_sync_group} is not one of worker "
                                   f"{self.worker_index}'s (is its place in TF_CONFIG right?)")
            with tf.device(self.devices[i]):
                return tf.nest.map_structure(tf.constant, parts[i])

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def _fn(self, key: tuple, build) -> Any:
        if key not in self._fns:
            self._fns[key] = build()
        return self._fns[key]

    def any(self, flags: Sequence[bool]) -> list[bool]:
        """Each flag, True if it is True on any worker (a collective: every worker must call it)."""
        flags = [bool(f) for f in flags]
        if self.n_workers == 1:
            return flags
        value = np.asarray(flags, np.float32)

        def build():
            # compiled once: eager collectives would be traced anew at every call
            return tf.function(lambda dist_value: self.strategy.reduce(_SUM, dist_value, axis=None))

        summed = self._fn(("any", len(flags)), build)(self._distribute([value] * self.n_local))
        return [bool(v > 0) for v in np.asarray(summed)]

    def gather(self, local: np.ndarray) -> np.ndarray:
        """Every worker's rows, in worker order (a collective with several workers).

        Parameters
        ----------
        local : np.ndarray, shape=(rows, ...)
            This worker's rows (the same shape on every worker).

        Returns
        -------
        rows : np.ndarray, shape=(n_workers * rows, ...)
        """
        local = np.asarray(local)
        if self.n_workers == 1:
            return local
        dtype = local.dtype
        parts = self._split(local.astype(np.float32) if dtype == bool else local)

        def build():
            return tf.function(lambda dist_value: self.strategy.gather(dist_value, axis=0))

        fn = self._fn(("gather", parts[0].shape, parts[0].dtype.str), build)
        return fn(self._distribute(parts)).numpy().astype(dtype, copy=False)


# --------------------------------------------------------------------------
# the steps, per replica
# --------------------------------------------------------------------------


class _ReplicaD:
    """D's steps under a strategy: each replica scores, or learns from, its share of the clips."""

    def __init__(self, dist: Distribution) -> None:
        self.dist = dist

    def score(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        """D's per-step logits of every worker's clips, each replica scoring its share.

        Parameters
        ----------
        model : keras.Model
            D (made under :meth:`Distribution.scope`).
        x : np.ndarray, shape=(rows, *d_input_shape)
            This worker's clips.

        Returns
        -------
        logits : np.ndarray, shape=(n_workers * rows, n_steps), float32
        """
        dist = self.dist

        def build():
            @tf.function
            def fn(dist_x):
                per_replica = dist.strategy.run(lambda xb: model(xb, training=False), args=(dist_x,))
                return dist.strategy.gather(per_replica, axis=0)

            return fn

        fn = dist._fn(("score", id(model)), build)
        return fn(dist._distribute(dist._split(np.asarray(x, np.float32)))).numpy()

    def train_d(self, trainer: DiscriminatorTrainer, real_x: Any, gen_x: Any) -> dict[str, float]:
        """One update of D on this worker's real and generated clips, every replica on its share.

        As :meth:`DiscriminatorTrainer.train_step` on the global batch: a
        ``d_replay_share`` of ``gen_x`` is first swapped for older clips of
        ``trainer.buffer`` (and ``gen_x`` stored), the WGAN-GP mixing weights
        of the whole batch are drawn from ``trainer.rng``.

        Parameters
        ----------
        trainer : DiscriminatorTrainer
            Made under :meth:`Distribution.scope`.
        real_x, gen_x : array-like, shape=(rows, *d_input_shape)
            This worker's clips (``batch_size / n_workers`` of each).

        Returns
        -------
        metrics : dict of float
            As ``train_step``'s, over the global batch: ``loss``,
            ``loss_real``, ``loss_gen``, ``gp``, ``acc_real``, ``acc_gen``.
        """
        dist, cfg = self.dist, trainer.cfg
        real_x = check_d_inputs(real_x, cfg, name="real_x")
        gen_x = check_d_inputs(gen_x, cfg, name="gen_x")
        if len(real_x) != len(gen_x):
            raise MusicRLError(f"real_x and gen_x must hold as many clips, got {len(real_x)} and {len(gen_x)}")
        if trainer.buffer is not None:
            gen_x = trainer.buffer.mix(gen_x, cfg.d_replay_share)
        global_batch = len(gen_x) * dist.n_workers
        mix_eps = trainer.rng.uniform(size=global_batch).astype(np.float32)
        mix_eps = mix_eps[dist.worker_rows(global_batch)]
        model, optimizer = trainer.model, trainer.optimizer

        def build():
            @tf.function
            def fn(dist_real, dist_gen, dist_eps):
                def replica(real, gen, eps):
                    with tf.GradientTape() as tape:
                        terms = d_replica_losses(model, cfg, real, gen, eps, global_batch_size=global_batch)
                    variables = model.trainable_variables
                    optimizer.apply_gradients(zip(tape.gradient(terms["loss"], variables), variables))
                    return terms

                per_replica = dist.strategy.run(replica, args=(dist_real, dist_gen, dist_eps))
                return {k: dist.strategy.reduce(_SUM, v, axis=None) for k, v in per_replica.items()}

            return fn

        fn = dist._fn(("train_d", id(trainer), global_batch), build)
        out = fn(*(dist._distribute(dist._split(a)) for a in (real_x, gen_x, mix_eps)))
        return {k: float(v) for k, v in out.items()}

    def train_and_score(self, trainer: DiscriminatorTrainer, real_x: Any, gen_x: Any) -> tuple[dict, np.ndarray]:
        """:meth:`train_d`, and D's logits of every worker's ``gen_x`` (:meth:`score`) from before it.

        Returns
        -------
        metrics : dict of float
            As :meth:`train_d`'s.
        logits : np.ndarray, shape=(n_workers * rows, n_steps), float32
        """
        logits = self.score(trainer.model, gen_x)
        return self.train_d(trainer, real_x, gen_x), logits

    def score_d(self, trainer: DiscriminatorTrainer, gen_x: Any) -> np.ndarray:
        """D's logits of every worker's ``gen_x`` (:meth:`score`), no update."""
        return self.score(trainer.model, gen_x)


class _ReplicaPolicy:
    """The policy's steps under a strategy: the agent's own update functions on each replica's share.

    Each replica's gradients are caught (:class:`GradientCatcher`), weighted
    by its share of the global batch, all-reduced, clipped by the norm of
    their sum and applied.
    """

    def __init__(self, dist: Distribution) -> None:
        self.dist = dist
        self._catchers: dict[tuple, GradientCatcher] = {}

    def _catcher(self, policy: ChordPolicy, optimizer: keras.optimizers.Optimizer, kind: str) -> GradientCatcher:
        # one per update function: which variables get a gradient is learned when it is traced
        key = (id(policy), id(optimizer), kind)
        if key not in self._catchers:
            self._catchers[key] = GradientCatcher(policy.trainable_variables)
        return self._catchers[key]

    def _apply(self, policy: ChordPolicy, optimizer: keras.optimizers.Optimizer, catcher: GradientCatcher,
               grads: list[list[np.ndarray]], stats: list[np.ndarray], clip_norm: float | None) -> tuple:
        """Sum the replicas' gradients, clip by the norm of the sum, apply; return (norm, summed stats)."""
        dist = self.dist
        used = [i for i, got in enumerate(catcher.received) if got]
        variables = [policy.trainable_variables[i] for i in used]

        def build():
            @tf.function
            def fn(dist_grads, dist_stats):
                def replica(local_grads, local_stats):
                    # placed on the replica's device: collectives need a device on every input
                    local_grads = [tf.identity(g) for g in local_grads]
                    total = tf.distribute.get_replica_context().all_reduce(_SUM, local_grads)
                    norm = tf.linalg.global_norm(total)
                    if clip_norm is not None:
                        # tf.clip_by_global_norm's factor, from the norm of the whole batch's gradient
                        scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm)
                        local_grads = [g * scale for g in local_grads]
                    # apply_gradients sums the replicas' (scaled) gradients again
                    optimizer.apply_gradients(zip(local_grads, variables))
                    return norm, local_stats

                norm, summed = dist.strategy.run(replica, args=(dist_grads, dist_stats))
                return dist.strategy.reduce(_MEAN, norm, axis=None), dist.strategy.reduce(_SUM, summed, axis=None)

            return fn

        fn = dist._fn(("apply", id(policy), id(optimizer), tuple(used), clip_norm), build)
        dist_grads = dist._distribute([[g[i] for i in used] for g in grads])
        norm, summed = fn(dist_grads, dist._distribute(stats))
        return float(norm), np.asarray(summed)

    def _shard_updates(self, policy, optimizer, arrays: dict[str, np.ndarray | None], step, keys, clip_norm):
        """Run ``step(policy, catcher, **shard)`` on each local replica's share; apply the gradients."""
        dist = self.dist
        catcher = self._catcher(policy, optimizer, step.__name__)
        rows = len(next(a for a in arrays.values() if a is not None))
        global_batch = rows * dist.n_workers
        shards = {k: (None if a is None else dist._split(a)) for k, a in arrays.items()}
        grads, stats = [], []
        for i in range(dist.n_local):
            out = step(policy, catcher, **{k: (None if s is None else s[i]) for k, s in shards.items()})
            weight = (rows // dist.n_local) / global_batch
            grads.append([np.asarray(g.numpy()) * weight for g in catcher.gradients])
            stats.append(np.asarray([out[k] for k in keys], np.float32) * weight)
        return self._apply(policy, optimizer, catcher, grads, stats, clip_norm)

    def pretrain_step(self, policy: ChordPolicy, optimizer: keras.optimizers.Optimizer, real_seqs: np.ndarray,
                      *, clip_norm: float | None = None, own_share: float = 0.0, dropout: float = 0.0,
                      rng: int | np.random.Generator | None = None) -> float:
        """:func:`~musicrl.learning.agent.pretrain_step` on the global batch, this worker holding ``real_seqs``.

        With ``own_share > 0`` or ``dropout > 0`` the local replicas draw
        from one generator in turn.

        Returns
        -------
        nll : float
            Mean negative log-likelihood over the global batch, before the update.
        """

        rng = as_rng(rng) if own_share or dropout else rng

        def pretrain(policy, catcher, seqs):
            return {"nll": pretrain_step(policy, catcher, seqs, own_share=own_share, dropout=dropout, rng=rng)}

        _, summed = self._shard_updates(policy, optimizer, {"seqs": real_seqs}, pretrain, ("nll",),
                                        clip_norm or None)
        return float(summed[0])

    def reinforce_step(
        self,
        policy: ChordPolicy,
        optimizer: keras.optimizers.Optimizer,
        gen_seqs: np.ndarray,
        advantages: np.ndarray,
        *,
        returns: np.ndarray | None = None,
        old_log_prob: np.ndarray | None = None,
        clip_norm: float | None = None,
        **loss_settings: Any,
    ) -> dict[str, float]:
        """:func:`~musicrl.learning.agent.reinforce_step` on the global batch, this worker holding its episodes.

        Parameters are those of ``reinforce_step`` for this worker's rows:
        the per-episode arrays (``gen_seqs``, ``advantages``, ``returns``,
        ``old_log_prob``) are sharded over the replicas, the other keyword
        settings (``entropy_coef``, ``kl_coef``, ``ref_policy``,
        ``value_coef``, ``clip_ratio``) go to every replica as they are. The
        update is the one of the whole batch (gradients summed over the
        replicas, then clipped).

        Returns
        -------
        stats : dict of float
            As ``reinforce_step``'s, over the global batch (``grad_norm``:
            the norm of the whole batch's gradient, before clipping).
        """
        keys = ("loss", "pg_loss", "entropy", "kl") + (("value_loss",) if returns is not None else ())
        keys += ("clip_frac",) if old_log_prob is not None else ()

        def reinforce(policy, catcher, seqs, adv, ret, old):
            return reinforce_step(policy, catcher, seqs, adv, returns=ret, old_log_prob=old, clip_norm=None,
                                  **loss_settings)

        arrays = {"seqs": gen_seqs, "adv": advantages, "ret": returns, "old": old_log_prob}
        norm, summed = self._shard_updates(policy, optimizer, arrays, reinforce, keys, clip_norm or None)
        out = {k: float(v) for k, v in zip(keys, summed)}
        out["grad_norm"] = norm
        return out
