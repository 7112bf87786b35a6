"""Rewards from the discriminator, and the return helpers of REINFORCE.

The discriminator D gives one logit per chord step, causal in time: the logit
``l_t`` of step ``t`` has heard the piece only up to the end of step ``t``, and
the clip's logit is that of its last step. With ``D = sigmoid(l)``:

* ``kind="log_d"``: the potential is ``log D = -softplus(-l)`` (always <= 0),
  computed without ever forming ``log(0)``, so logits of +-1000 stay finite;
* ``kind="logit"``: the potential is ``log D - log(1 - D)``, which equals ``l``;
* ``kind="neg_log_1m_d"``: the potential is ``-log(1 - D) = softplus(l)``
  (always >= 0), the generator's reward of the non-saturating GAN loss as
  GAPT uses it: it grows without bound as D is fooled, where ``log D``
  saturates at 0.

The optional clipping bounds the potential to ``[-clip, clip]``. The potential
``phi_t`` is paid

* at the END of the episode (the default, as in SPIRAL): ``r_t = 0`` for
  ``t < n_steps - 1`` and ``r_(n_steps-1) = phi_(n_steps-1)``;
* DENSE: ``r_t = phi_t - phi_(t-1)`` with ``phi_(-1) := 0``, potential-based
  shaping whose undiscounted return ``sum_t r_t`` equals the end reward;
* for EVERY PREFIX: ``r_t = phi_t / n_steps``, so the undiscounted return is
  the mean of D's judgments of the piece after each of its steps. This is a
  different objective, not shaping: the piece must sound real all along, and
  a last chord only counts for one judgment in ``n_steps``, where at the end
  it can buy the whole reward by pleasing D's last read.

Every function takes NumPy arrays (and returns NumPy float32) or TensorFlow
tensors (and returns float32 tensors, usable inside ``tf.function``); the
classes that keep running statistics work in NumPy and expose
``get_state()``/``set_state()`` for checkpoints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MusicRLError

__all__ = [
    "REWARD_KINDS",
    "MovingAverageBaseline",
    "RunningMeanStd",
    "advantages",
    "discounted_returns",
    "gae_advantages",
    "logits_to_potentials",
    "logits_to_rewards",
    "reward_kwargs",
]

REWARD_KINDS = ("log_d", "logit", "neg_log_1m_d")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith(("tensorflow", "keras"))


def _check_batch(x: Any, name: str) -> Any:
    """Validate a (batch, n_steps) array; NumPy input becomes float32 NumPy."""
    if _is_tensor(x):
        if x.shape.rank is not None and x.shape.rank != 2:
            raise MusicRLError(f"{name} must have shape (batch, n_steps), got shape {tuple(x.shape)}")
        import tensorflow as tf

        return tf.cast(x, tf.float32)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise MusicRLError(f"{name} must have shape (batch, n_steps), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MusicRLError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.shape[1] == 0:
        raise MusicRLError(f"{name} must have at least one step, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} contains NaN or inf")
    return arr


def _check_kind(kind: str) -> None:
    if kind not in REWARD_KINDS:
        raise MusicRLError(f"reward kind must be one of {REWARD_KINDS}, got {kind!r}")


def _check_clip(clip: float | None) -> float | None:
    if clip is None or clip == 0:
        return None
    if not (np.isfinite(clip) and clip > 0):
        raise MusicRLError(f"reward clip must be a positive finite number or None, got {clip!r}")
    return float(clip)


def logits_to_potentials(step_logits: Any, *, kind: str = "log_d", clip: float | None = None) -> Any:
    """D's per-step logits -> the per-step potential ``phi_t`` (see module docs).

    Parameters
    ----------
    step_logits : array-like or tf.Tensor, shape=(batch, n_steps)
        D's causal logit per chord step.
    kind : {'log_d', 'logit', 'neg_log_1m_d'}
        ``log D`` (stable log-sigmoid), ``log D - log(1 - D)`` (the logit) or
        ``-log(1 - D)`` (stable softplus).
    clip : float or None
        Bound the potential to ``[-clip, clip]``; None or 0 for no bound.

    Returns
    -------
    potentials : np.ndarray or tf.Tensor, shape=(batch, n_steps), dtype=float32
    """
    _check_kind(kind)
    clip = _check_clip(clip)
    logits = _check_batch(step_logits, "step_logits")
    if _is_tensor(logits):
        import tensorflow as tf

        phi = {"log_d": lambda: -tf.nn.softplus(-logits), "logit": lambda: logits,
               "neg_log_1m_d": lambda: tf.nn.softplus(logits)}[kind]()
        if clip is not None:
            phi = tf.clip_by_value(phi, -clip, clip)
        return phi
    # logaddexp(0, -l) = softplus(-l) without overflow for large |l|
    zero = np.float32(0)
    phi = {"log_d": lambda: -np.logaddexp(zero, -logits), "logit": logits.copy,
           "neg_log_1m_d": lambda: np.logaddexp(zero, logits)}[kind]()
    if clip is not None:
        phi = np.clip(phi, -clip, clip)
    return phi.astype(np.float32, copy=False)


def logits_to_rewards(
    step_logits: Any,
    *,
    kind: str = "log_d",
    dense: bool = False,
    prefixes: bool = False,
    clip: float | None = None,
    episode_steps: int | None = None,
) -> Any:
    """D's per-step logits -> the reward of every step of the episode.

    Parameters
    ----------
    step_logits : array-like or tf.Tensor, shape=(batch, n_steps)
        D's causal logit per chord step (the last one is the clip's logit).
    kind : {'log_d', 'logit', 'neg_log_1m_d'}
        Potential: ``log D``, ``log D - log(1 - D)`` or ``-log(1 - D)``.
    dense : bool
        False: zeros, then the final potential on the last step. True: step
        ``t`` earns ``phi_t - phi_(t-1)`` with ``phi_(-1) = 0``; the rewards of
        an episode then sum to its end reward.
    prefixes : bool
        Step ``t`` earns ``phi_t / episode_steps``: every prefix is paid, and
        an episode's rewards sum to the mean potential. Excludes ``dense``.
    clip : float or None
        Bound on the potential (applied before differencing, so the dense sum
        still equals the clipped end reward); None or 0 for none.
    episode_steps : int, optional
        Steps of the whole episode, for ``prefixes`` when ``step_logits`` holds
        only its first steps (an environment mid-episode); default
        ``step_logits.shape[1]``.

    Returns
    -------
    rewards : np.ndarray or tf.Tensor, shape=(batch, n_steps), dtype=float32
    """
    if dense and prefixes:
        raise MusicRLError("rewards can be dense or paid for every prefix, not both")
    phi = logits_to_potentials(step_logits, kind=kind, clip=clip)
    width = phi.shape[1]
    if episode_steps is not None and (
        isinstance(episode_steps, bool) or not isinstance(episode_steps, (int, np.integer))
        or episode_steps < (1 if width is None else width)
    ):
        least = "1" if width is None else f"the {width} steps of step_logits"
        raise MusicRLError(f"episode_steps must be an int >= {least}, got {episode_steps!r}")
    if prefixes:
        n = width if episode_steps is None else episode_steps
        if n is None:  # a tensor of unknown width
            import tensorflow as tf

            return phi / tf.cast(tf.shape(phi)[1], phi.dtype)
        return phi / np.float32(n)
    if _is_tensor(phi):
        import tensorflow as tf

        prev = tf.concat([tf.zeros_like(phi[:, :1]), phi[:, :-1]], axis=1)
        if dense:
            return phi - prev
        last = tf.one_hot(tf.shape(phi)[1] - 1, tf.shape(phi)[1], dtype=phi.dtype)
        return phi * last[None, :]
    rewards = np.zeros_like(phi)
    if dense:
        rewards[:, 0] = phi[:, 0]
        rewards[:, 1:] = phi[:, 1:] - phi[:, :-1]
    else:
        rewards[:, -1] = phi[:, -1]
    return rewards


def reward_kwargs(cfg) -> dict[str, Any]:
    """Keyword arguments of :func:`logits_to_rewards` for a :class:`~musicrl.config.Config`."""
    return {"kind": cfg.reward_kind, "dense": cfg.reward_dense, "prefixes": cfg.reward_prefixes,
            "clip": cfg.reward_clip or None}


def _check_gamma(gamma: float) -> float:
    if not (np.isfinite(gamma) and 0 <= gamma <= 1):
        raise MusicRLError(f"gamma must be in [0, 1], got {gamma!r}")
    return float(gamma)


def discounted_returns(rewards: Any, *, gamma: float = 1.0) -> Any:
    """Reward-to-go of every step: ``G_t = r_t + gamma * G_(t+1)``, ``G_n = 0``.

    Parameters
    ----------
    rewards : array-like or tf.Tensor, shape=(batch, n_steps)
    gamma : float
        Discount in [0, 1]; 1 gives the reverse cumulative sum.

    Returns
    -------
    returns : np.ndarray or tf.Tensor, shape=(batch, n_steps), dtype=float32
    """
    gamma = _check_gamma(gamma)
    r = _check_batch(rewards, "rewards")
    if _is_tensor(r):
        import tensorflow as tf

        # scan over the reversed time axis; steps are few, the batch is vectorized
        rev = tf.reverse(tf.transpose(r), axis=[0])
        out = tf.scan(lambda acc, x: x + gamma * acc, rev, initializer=tf.zeros_like(rev[0]))
        return tf.transpose(tf.reverse(out, axis=[0]))
    out = np.empty_like(r)
    acc = np.zeros(r.shape[0], dtype=np.float64)
    for t in range(r.shape[1] - 1, -1, -1):
        acc = r[:, t] + gamma * acc
        out[:, t] = acc
    return out


def gae_advantages(rewards: np.ndarray, values: np.ndarray, *, gamma: float = 1.0, lam: float = 0.95) -> np.ndarray:
    """Generalized advantage estimates (Schulman et al. 2016) of every step.

    ``delta_t = r_t + gamma * V_(t+1) - V_t`` with ``V_n = 0`` (the episode
    ends), and ``A_t = sum_k (gamma * lam)**k * delta_(t+k)``. ``lam = 1``
    gives ``G_t - V_t`` (the return against the value baseline), ``lam = 0``
    the one-step temporal difference: lower ``lam`` trades the return's
    variance for the value estimate's bias, and lets the credit of a reward
    fall mostly on the steps just before it.

    Parameters
    ----------
    rewards : array-like, shape=(batch, n_steps)
    values : array-like, shape=(batch, n_steps)
        The value estimate ``V_t`` of the state before step ``t``'s action.
    gamma : float
        Discount in [0, 1].
    lam : float
        GAE's lambda in [0, 1].

    Returns
    -------
    advantages : np.ndarray, shape=(batch, n_steps), dtype=float32
    """
    gamma = _check_gamma(gamma)
    if not (np.isfinite(lam) and 0 <= lam <= 1):
        raise MusicRLError(f"GAE lambda must be in [0, 1], got {lam!r}")
    r = _check_batch(rewards, "rewards")
    v = _check_batch(values, "values")
    if v.shape != r.shape:
        raise MusicRLError(f"values must have the shape of rewards {r.shape}, got {v.shape}")
    next_v = np.concatenate([v[:, 1:], np.zeros_like(v[:, :1])], axis=1)
    # the estimates are the temporal differences' reward-to-go at the discount gamma * lam
    return discounted_returns(r + gamma * next_v - v, gamma=gamma * lam)


def advantages(
    returns: Any, baseline: Any = None, *, normalize: bool = False, eps: float = 1e-8
) -> Any:
    """Advantage ``A_t = G_t - b_t`` of every step, optionally standardized.

    Parameters
    ----------
    returns : array-like or tf.Tensor, shape=(batch, n_steps)
    baseline : scalar, array of shape (n_steps,) or (batch, n_steps), or None
        Subtracted from the returns (None: no baseline).
    normalize : bool
        Standardize the advantages over the whole batch (zero mean, unit std).
    eps : float
        Added to the std before dividing.

    Returns
    -------
    advantages : np.ndarray or tf.Tensor, shape=(batch, n_steps), dtype=float32
    """
    g = _check_batch(returns, "returns")
    if _is_tensor(g):
        import tensorflow as tf

        adv = g if baseline is None else g - tf.cast(baseline, tf.float32)
        if normalize:
            mean, var = tf.nn.moments(adv, axes=[0, 1])
            adv = (adv - mean) / (tf.sqrt(var) + eps)
        return adv
    if baseline is None:
        adv = g.copy()
    else:
        b = np.asarray(baseline, dtype=np.float32)
        if b.ndim > 2 or (b.ndim >= 1 and b.shape[-1] != g.shape[1]) or (
            b.ndim == 2 and b.shape[0] != g.shape[0]
        ):
            raise MusicRLError(
                f"baseline must be a scalar, (n_steps,) or (batch, n_steps) = {g.shape}, got shape {b.shape}"
            )
        if not np.all(np.isfinite(b)):
            raise MusicRLError("baseline contains NaN or inf")
        adv = g - b
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + eps)
    return adv.astype(np.float32, copy=False)


class MovingAverageBaseline:
    """Exponential moving average of the returns, one value per step.

    The first :meth:`update` sets the average to the batch mean (so early
    advantages are not biased towards a zero start); later ones blend
    ``value = decay * value + (1 - decay) * batch_mean``.

    Parameters
    ----------
    n_steps : int
        Steps per episode.
    decay : float
        EMA decay in [0, 1).
    """

    def __init__(self, n_steps: int, *, decay: float = 0.9) -> None:
        if int(n_steps) < 1:
            raise MusicRLError(f"n_steps must be >= 1, got {n_steps}")
        if not (np.isfinite(decay) and 0 <= decay < 1):
            raise MusicRLError(f"decay must be in [0, 1), got {decay!r}")
        self.n_steps = int(n_steps)
        self.decay = float(decay)
        self.value = np.zeros(self.n_steps, dtype=np.float64)
        self.n_updates = 0

    def __call__(self) -> np.ndarray:
        """The baseline per step, shape (n_steps,), float32."""
        return self.value.astype(np.float32)

    def update(self, returns: Any) -> np.ndarray:
        """Blend in the batch mean of ``returns`` (batch, n_steps); return the new baseline."""
        g = _check_batch(np.asarray(returns), "returns")
        if g.shape[1] != self.n_steps:
            raise MusicRLError(f"returns must have {self.n_steps} steps, got shape {g.shape}")
        mean = g.astype(np.float64).mean(axis=0)
        if self.n_updates == 0:
            self.value = mean
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * mean
        self.n_updates += 1
        return self()

    def get_state(self) -> dict[str, Any]:
        """Everything needed to resume: plain arrays and numbers."""
        return {"value": self.value.copy(), "n_updates": int(self.n_updates), "decay": self.decay}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        value = np.asarray(state["value"], dtype=np.float64)
        if value.shape != (self.n_steps,):
            raise MusicRLError(f"baseline state must hold {self.n_steps} values, got shape {value.shape}")
        self.value = value.copy()
        self.n_updates = int(state["n_updates"])
        self.decay = float(state.get("decay", self.decay))


class RunningMeanStd:
    """Running mean and variance of every value seen (parallel Welford update).

    Used to normalize rewards or returns: ``normalize(x) = (x - mean) / sqrt(var + eps)``
    (or only scaled, with ``center=False``).
    """

    def __init__(self, *, eps: float = 1e-8) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.count = 0.0
        self.eps = float(eps)

    def update(self, x: Any) -> None:
        """Fold the values of ``x`` (any shape) into the statistics."""
        arr = np.asarray(x, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        if not np.all(np.isfinite(arr)):
            raise MusicRLError("values to normalize contain NaN or inf")
        b_mean, b_var, b_count = arr.mean(), arr.var(), float(arr.size)
        if self.count == 0:
            self.mean, self.var, self.count = b_mean, b_var, b_count
            return
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean = self.mean + delta * b_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: Any, *, center: bool = True) -> np.ndarray:
        """``x`` standardized by the running statistics, float32."""
        arr = np.asarray(x, dtype=np.float64)
        out = (arr - self.mean) if center else arr
        return (out / np.sqrt(self.var + self.eps)).astype(np.float32)

    def get_state(self) -> dict[str, float]:
        """Everything needed to resume."""
        return {"mean": float(self.mean), "var": float(self.var), "count": float(self.count)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        self.mean = float(state["mean"])
        self.var = float(state["var"])
        self.count = float(state["count"])
