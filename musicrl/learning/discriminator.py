"""The discriminator D: a causal judge of music that gives one logit per chord step.

D reads log-mel frames ``(batch, n_frames, n_mels)`` (or, for the symbolic
baseline, the seq ``(batch, n_steps, n_pitches)``) and returns a logit per
chord step ``(batch, n_steps)``; ``sigmoid(logit)`` is D's probability that the
piece heard so far is real. The clip's logit is the one of its last step.

Causality
---------
Mel frame ``i`` is centred on sample ``i * hop_length`` and its window covers
samples ``[i * hop_length - n_fft // 2, i * hop_length + n_fft // 2)``. Step
``t`` ends at sample ``(t + 1) * step_samples``. The logit of step ``t`` is read
at frame::

    f_t = max(0, floor(((t + 1) * step_samples - n_fft // 2) / hop_length))

the last frame whose window ends by the end of step ``t``
(:func:`step_frame_indices`), after layers that are causal over time (causal
convolutions, a forward LSTM, running means). So the logit of step ``t`` has
heard no audio after step ``t``. The first ``ceil(n_fft / 2 / hop_length)``
frames have windows that start before sample 0 and see the mel's padding
instead; that padding is built from the clip's first ``n_fft // 2`` samples at
most, which lie in step 0 whenever ``step_samples >= n_fft // 2`` (always, for
musical step lengths). Only for shorter steps is ``f_t`` clamped to 0, and the
logit of such a step then hears up to ``n_fft // 2`` samples.

The 'cnn' D downsamples time by ``CNN_STRIDE`` with strided causal
convolutions; its output ``j`` has heard frames ``<= j * CNN_STRIDE``, so it
reads step ``t`` at output ``f_t // CNN_STRIDE`` (at most ``CNN_STRIDE - 1``
frames older than ``f_t``). The 'lstm' D reads frame ``f_t`` itself. The 'seq'
D reads chord ``t`` after causal convolutions over steps.

Entry points
------------
:func:`build_discriminator` makes the Keras model; :func:`d_input_kind` /
:func:`d_inputs` say and build what it reads ('mel' or 'seq');
:class:`DiscriminatorTrainer` trains it (its ``train_step`` on ``real_x`` vs
``gen_x``) with the stabilisers of the config (replay buffer of older
generated clips, one-sided label smoothing, a gradient penalty, spectral
normalisation, a minibatch-stddev feature, loudness normalisation).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from ..errors import MusicRLError
from ..seeding import as_rng
from ..music.vectorize import check_seqs
# kept importable from here, where callers have always found it
from .replay import BatchDraws, ReplayBuffer

__all__ = [
    "CNN_STRIDE",
    "CausalMean",
    "DiscriminatorTrainer",
    "MelScale",
    "MinibatchStd",
    "ReplayBuffer",
    "StepGather",
    "build_discriminator",
    "check_d_inputs",
    "check_d_seqs",
    "d_loss_terms",
    "d_input_kind",
    "d_input_shape",
    "d_inputs",
    "discriminator_accuracy",
    "fit_discriminator",
    "predict_step_logits",
    "predict_step_probs",
    "step_frame_indices",
    "step_logits_fn",
]

# Time downsampling of the 'cnn' D: causal convolutions of stride 4 and 2.
CNN_STRIDE = 8


# --------------------------------------------------------------------------
# what D reads
# --------------------------------------------------------------------------
def step_frame_indices(*, n_steps: int, step_samples: int, hop_length: int, n_fft: int) -> np.ndarray:
    """The mel frame at which D reads each step's logit (see module docs).

    Parameters
    ----------
    n_steps : int
        Chord steps of the clip.
    step_samples : int
        Samples per step.
    hop_length, n_fft : int
        Hop and window of the (centred) mel frames, in samples.

    Returns
    -------
    frames : np.ndarray, shape=(n_steps,), dtype=int64
        ``max(0, ((t + 1) * step_samples - n_fft // 2) // hop_length)``.
    """
    if min(n_steps, step_samples, hop_length, n_fft) < 1:
        raise MusicRLError(
            "n_steps, step_samples, hop_length and n_fft must be >= 1, got "
            f"{n_steps}, {step_samples}, {hop_length}, {n_fft}"
        )
    ends = (np.arange(1, n_steps + 1, dtype=np.int64)) * step_samples
    return np.maximum(0, (ends - n_fft // 2) // hop_length)


def _cfg_step_frames(cfg) -> np.ndarray:
    return step_frame_indices(
        n_steps=cfg.n_steps, step_samples=cfg.step_samples, hop_length=cfg.hop_length, n_fft=cfg.n_fft
    )


def d_input_kind(cfg) -> str:
    """'seq' if D judges the symbolic seq (``d_arch='seq'``), else 'mel'."""
    return "seq" if cfg.d_arch == "seq" else "mel"


def d_input_shape(cfg) -> tuple[int, int]:
    """Shape of one D input: ``(n_frames, n_mels)`` or ``(n_steps, n_pitches)``."""
    if d_input_kind(cfg) == "seq":
        return (cfg.n_steps, cfg.n_pitches)
    return (cfg.n_frames, cfg.n_mels)


def check_d_inputs(x: Any, cfg, *, name: str = "x") -> np.ndarray:
    """Validate a batch of D inputs and return it as float32 (batch, *d_input_shape(cfg))."""
    arr = np.asarray(x)
    want = d_input_shape(cfg)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != want:
        what = "(batch, n_steps, n_pitches)" if d_input_kind(cfg) == "seq" else "(batch, n_frames, n_mels)"
        raise MusicRLError(f"{name} must have shape {what} = (batch, {want[0]}, {want[1]}), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MusicRLError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} contains NaN or inf")
    return arr


def check_d_seqs(seqs: Any, cfg, *, name: str = "seqs") -> np.ndarray:
    """Validate pieces for D: multi-hot seqs of ``cfg.n_steps`` steps on ``cfg.n_pitches`` pitches.

    Returns the seqs as float32, shape=(batch, n_steps, n_pitches).
    """
    seqs = check_seqs(seqs, n_pitches=cfg.n_pitches, name=name)
    if seqs.shape[1] != cfg.n_steps:
        raise MusicRLError(f"{name} must have {cfg.n_steps} steps (cfg.n_steps), got shape {seqs.shape}")
    return seqs


def d_inputs(seqs: Any, cfg, *, mels: Any = None) -> np.ndarray:
    """What D reads for a batch of pieces: their mels, or their seqs for the 'seq' D.

    Parameters
    ----------
    seqs : array-like, shape=(batch, n_steps, n_pitches)
        Multi-hot chords.
    cfg : Config
    mels : array-like, shape=(batch, n_frames, n_mels), optional
        Already computed mels of ``seqs`` (for a mel D); computed with
        ``mel.seq_to_mel`` when not given.

    Returns
    -------
    x : np.ndarray, float32, shape=(batch, *d_input_shape(cfg))
    """
    seqs = check_d_seqs(seqs, cfg)
    if d_input_kind(cfg) == "seq":
        return seqs
    if mels is None:
        from ..audio.mel import seq_to_mel

        mels = seq_to_mel(seqs, **{**cfg.synth_kwargs(), **cfg.mel_kwargs()})
    return check_d_inputs(mels, cfg, name="mels")


# --------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="musicrl")
class MelScale(keras.layers.Layer):
    """dB in [-top_db, 0] -> about [-1, 1], after optional causal loudness normalisation.

    ``loudness='frame'`` subtracts each frame's mean over mel bands;
    ``'running'`` subtracts the mean dB of the clip up to and including the
    frame (a running mean, so D stays causal).
    """

    def __init__(self, top_db: float = 80.0, loudness: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.top_db = float(top_db)
        self.loudness = loudness

    def call(self, x):
        half = self.top_db / 2.0
        if self.loudness == "frame":
            return (x - keras.ops.mean(x, axis=-1, keepdims=True)) / half
        if self.loudness == "running":
            frame_mean = keras.ops.mean(x, axis=-1, keepdims=True)
            count = keras.ops.arange(1, keras.ops.shape(x)[1] + 1, dtype=x.dtype)[None, :, None]
            return (x - keras.ops.cumsum(frame_mean, axis=1) / count) / half
        return (x + half) / half

    def get_config(self):
        return {**super().get_config(), "top_db": self.top_db, "loudness": self.loudness}


@keras.saving.register_keras_serializable(package="musicrl")
class CausalMean(keras.layers.Layer):
    """Running mean over time: output ``t`` is the mean of inputs ``0..t``."""

    def call(self, x):
        count = keras.ops.arange(1, keras.ops.shape(x)[1] + 1, dtype=x.dtype)[None, :, None]
        return keras.ops.cumsum(x, axis=1) / count


@keras.saving.register_keras_serializable(package="musicrl")
class MinibatchStd(keras.layers.Layer):
    """Appends the std over the batch, averaged over channels, per time step.

    Computed per time step, so causality over time is kept; D's output for one
    clip then depends on the rest of its batch (a batch of one sees 0).
    """

    def call(self, x):
        var = keras.ops.var(x, axis=0, keepdims=True)
        std = keras.ops.mean(keras.ops.sqrt(var + 1e-8), axis=-1, keepdims=True)
        return keras.ops.concatenate([x, std * keras.ops.ones_like(x[..., :1])], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


@keras.saving.register_keras_serializable(package="musicrl")
class StepGather(keras.layers.Layer):
    """Picks time indices ``indices`` of ``(batch, time, 1)`` -> ``(batch, n_steps)``."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, x):
        return keras.ops.take(x[..., 0], np.asarray(self.indices, dtype="int32"), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


def _wrap(layer, spectral_norm: bool):
    return keras.layers.SpectralNormalization(layer) if spectral_norm else layer


def _conv(h, filters, kernel, *, strides=1, dilation=1, sn=False, name=None):
    layer = keras.layers.Conv1D(
        filters, kernel, strides=strides, dilation_rate=dilation, padding="causal", name=name
    )
    h = _wrap(layer, sn)(h)
    return keras.layers.LeakyReLU(0.2)(h)


def _head(h, cfg, indices):
    if cfg.d_minibatch_std:
        h = MinibatchStd(name="minibatch_std")(h)
    if cfg.d_head_units:
        h = _wrap(keras.layers.Dense(cfg.d_head_units, name="head_hidden"), cfg.d_spectral_norm)(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    out = _wrap(keras.layers.Dense(1, name="logit"), cfg.d_spectral_norm)(h)
    return StepGather(indices, name="step_logits")(out)


def build_discriminator(cfg, *, name: str | None = None) -> keras.Model:
    """Build D for ``cfg.d_arch``, with per-step causal logits.

    Parameters
    ----------
    cfg : Config
        Uses ``d_arch``, ``d_channels``, ``d_lstm_units``, ``d_head_units``,
        ``d_spectral_norm``, ``d_minibatch_std``, ``d_loudness_norm``, the
        grid and the mel settings.
    name : str, optional
        Model name (default ``'discriminator_<arch>'``).

    Returns
    -------
    d : keras.Model
        Maps ``(batch, *d_input_shape(cfg))`` float32 to ``(batch, n_steps)``
        logits.

    Notes
    -----
    * 'cnn': input scaling; causal Conv1D layers of ``c = d_channels``
      channels: kernel 4 stride 4, kernel 3 stride 2 (time / 8), then four
      residual dilated ones (kernel 3, dilations 1, 2, 4, 8: a receptive field
      of 252 frames, 8 steps at the defaults); the output concatenated with
      its running mean over time (the piece so far); a per-time Dense logit.
      About 2 M multiply-adds per 16-step clip, to stay fast on a CPU.
    * 'lstm': input scaling; one LSTM of ``d_lstm_units`` over every mel
      frame; a per-frame Dense logit.
    * 'seq': causal Conv1D layers over chord steps (dilations 1, 2, 4) and a
      running mean; a per-step Dense logit.
    * Any of them with ``d_head_units`` > 0: a hidden LeakyReLU layer of that
      many units before the logit. A linear logit over the features and their
      running mean can only add what D hears now to what it heard so far, not
      compare the two (a chord out of the key the piece has set).
    """
    kind = d_input_kind(cfg)
    sn = cfg.d_spectral_norm
    c = cfg.d_channels
    x = keras.Input(shape=d_input_shape(cfg), name="seq" if kind == "seq" else "mel")
    if cfg.d_arch == "seq":
        h = _conv(x, c, 3, sn=sn, name="conv0")
        h = _conv(h, 2 * c, 3, dilation=2, sn=sn, name="conv1")
        h = _conv(h, 2 * c, 3, dilation=4, sn=sn, name="conv2")
        h = keras.layers.Concatenate()([h, CausalMean()(h)])
        indices = np.arange(cfg.n_steps)
    elif cfg.d_arch == "cnn":
        h = MelScale(cfg.top_db, cfg.d_loudness_norm, name="mel_scale")(x)
        h = _conv(h, c, 4, strides=4, sn=sn, name="down0")
        h = _conv(h, c, 3, strides=2, sn=sn, name="down1")
        for i, d in enumerate((1, 2, 4, 8)):
            h = keras.layers.Add()([h, _conv(h, c, 3, dilation=d, sn=sn, name=f"dilated{i}")])
        h = keras.layers.Concatenate()([h, CausalMean()(h)])
        indices = _cfg_step_frames(cfg) // CNN_STRIDE
    elif cfg.d_arch == "lstm":
        h = MelScale(cfg.top_db, cfg.d_loudness_norm, name="mel_scale")(x)
        h = keras.layers.LSTM(cfg.d_lstm_units, return_sequences=True, name="lstm")(h)
        indices = _cfg_step_frames(cfg)
    else:
        raise MusicRLError(f"config field 'd_arch' must be one of ('cnn', 'lstm', 'seq'), got {cfg.d_arch!r}")
    out = _head(h, cfg, indices)
    return keras.Model(x, out, name=name or f"discriminator_{cfg.d_arch}")


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------
def _scores_in_update(cfg, model: keras.Model) -> bool:
    # whether D's training forward pass gives the scores an inference pass would
    if cfg.d_minibatch_std or cfg.d_spectral_norm:
        return False
    training_only = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
                     keras.layers.AlphaDropout, keras.layers.BatchNormalization,
                     keras.layers.SpectralNormalization, MinibatchStd)
    return not any(
        isinstance(layer, training_only) or getattr(layer, "dropout", 0) or getattr(layer, "recurrent_dropout", 0)
        for layer in model.layers
    )


def d_loss_terms(
    model: keras.Model,
    cfg: Any,
    real_x: tf.Tensor,
    gen_x: tf.Tensor,
    mix_eps: tf.Tensor,
    *,
    reduce: Callable[[tf.Tensor], tf.Tensor] = tf.reduce_mean,
) -> dict[str, tf.Tensor]:
    """D's training loss on a batch of real and generated inputs, term by term.

    Differentiate ``loss`` inside a ``tf.GradientTape`` to update D. The
    model runs in training mode and no update is applied here (layers with
    training-mode state, such as spectral normalisation's power iteration,
    update it as in any training call).

    Parameters
    ----------
    model : keras.Model
        D.
    cfg : Config
        Reads ``d_loss_steps``, ``d_label_smoothing``, ``d_gp_kind``,
        ``d_gp_weight`` and ``d_minibatch_std``.
    real_x : tf.Tensor, shape=(b_real, *d_input_shape(cfg)), float32
        Real inputs, labelled ``1 - d_label_smoothing``.
    gen_x : tf.Tensor, shape=(b_gen, *d_input_shape(cfg)), float32
        Generated inputs, labelled 0.
    mix_eps : tf.Tensor, shape=(>= min(b_real, b_gen),), float32
        Mixing weights of the WGAN-GP penalty (unused otherwise).
    reduce : callable
        Turns a per-clip vector into the batch's scalar: the mean on one
        device; under ``tf.distribute`` a sum divided by the global batch
        (``tf.nn.compute_average_loss``), so replicas' terms add up to the
        whole batch's mean.

    Returns
    -------
    terms : dict of tf.Tensor
        Scalars ``loss`` (``loss_real + loss_gen + d_gp_weight * gp``),
        ``loss_real``, ``loss_gen`` (sigmoid cross-entropy, mean over the
        trained steps of a clip), ``gp`` (the unweighted penalty, 0 when off),
        ``acc_real``, ``acc_gen`` (on the last step); and ``logits_gen``,
        shape=(b_gen, n_steps), D's per-step logits of ``gen_x``.
    """

    def trained(logits):
        return logits[:, -1:] if cfg.d_loss_steps == "last" else logits

    def score(logits):
        # the scalar whose input gradient is penalized: the mean trained logit per clip
        return tf.reduce_sum(tf.reduce_mean(trained(logits), axis=1))

    gp_on = cfg.d_gp_weight > 0
    per_clip_gp = None
    if gp_on and cfg.d_gp_kind == "r1":
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(real_x)
            logits_real = model(real_x, training=True)
            real_score = score(logits_real)
        per_clip_gp = 0.5 * tf.reduce_sum(tf.square(gp_tape.gradient(real_score, real_x)), axis=[1, 2])
        logits_gen = model(gen_x, training=True)
    elif cfg.d_minibatch_std or gp_on:
        # batch statistics must not mix real and generated clips
        logits_real = model(real_x, training=True)
        logits_gen = model(gen_x, training=True)
    else:
        n_real = tf.shape(real_x)[0]
        logits = model(tf.concat([real_x, gen_x], axis=0), training=True)
        logits_real, logits_gen = logits[:n_real], logits[n_real:]
    if gp_on and cfg.d_gp_kind == "wgan_gp":
        n = tf.minimum(tf.shape(real_x)[0], tf.shape(gen_x)[0])
        eps = mix_eps[:n, None, None]
        x_hat = eps * real_x[:n] + (1.0 - eps) * gen_x[:n]
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(x_hat)
            mixed_score = score(model(x_hat, training=True))
        grad = gp_tape.gradient(mixed_score, x_hat)
        per_clip_gp = tf.square(tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2]) + 1e-12) - 1.0)
    lr, lg = trained(logits_real), trained(logits_gen)
    y_real = tf.fill(tf.shape(lr), 1.0 - cfg.d_label_smoothing)
    loss_real = reduce(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y_real, logits=lr), axis=1))
    loss_gen = reduce(tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(lg), logits=lg), axis=1))
    gp = tf.constant(0.0) if per_clip_gp is None else reduce(per_clip_gp)
    return {
        "loss": loss_real + loss_gen + cfg.d_gp_weight * gp,
        "loss_real": loss_real,
        "loss_gen": loss_gen,
        "gp": gp,
        "acc_real": reduce(tf.cast(logits_real[:, -1] > 0, tf.float32)),
        "acc_gen": reduce(tf.cast(logits_gen[:, -1] < 0, tf.float32)),
        "logits_gen": logits_gen,
    }


def _unswapped_logits(gen_logits: tf.Tensor, logits_swapped: tf.Tensor | None) -> tf.Tensor:
    """D's logits of the fresh generated batch: its first rows, which replay swapped, scored apart.

    ``gen_logits`` (batch, n_steps) are those of the batch D was trained on;
    ``logits_swapped`` (n_swapped, n_steps) those of the fresh clips replay
    swapped out of it (None: none were).
    """
    if logits_swapped is None:
        return gen_logits
    return tf.concat([logits_swapped, gen_logits[tf.shape(logits_swapped)[0]:]], axis=0)


class DiscriminatorTrainer:
    """Trains D on real vs generated inputs (keras-io GAN style, one compiled step).

    Parameters
    ----------
    cfg : Config
        The discriminator section sets the optimizer and stabilisers.
    model : keras.Model, optional
        D (default: ``build_discriminator(cfg)``).
    seed : int or np.random.Generator, optional
        Randomness of the replay buffer and of the WGAN-GP mixes (default ``cfg.seed``).
    jit_compile : bool, optional
        Compile the train step with XLA (default ``cfg.d_jit_compile``).
    predict_jit_compile : bool, optional
        Compile the scoring step with XLA (default ``cfg.d_predict_jit_compile``).

    Attributes
    ----------
    model : keras.Model
    optimizer : keras.optimizers.Adam
    draws : BatchDraws
        The random part of each batch: replay's swaps and the WGAN-GP mixes.
    rng : np.random.Generator
        ``draws.rng``.
    buffer : ReplayBuffer or None
        ``draws.buffer``: None when ``cfg.d_replay_share == 0``.
    scores_in_update : bool
        Whether :meth:`train_and_score` reads its scores off the update's forward pass.
    """

    def __init__(self, cfg, model: keras.Model | None = None, *, seed=None, jit_compile: bool | None = None,
                 predict_jit_compile: bool | None = None):
        self.cfg = cfg
        self.model = model if model is not None else build_discriminator(cfg)
        self.optimizer = keras.optimizers.Adam(cfg.d_learning_rate, beta_1=cfg.d_beta_1)
        self.optimizer.build(self.model.trainable_variables)
        self.draws = BatchDraws(replay_share=cfg.d_replay_share, replay_capacity=cfg.d_replay_capacity,
                                seed=cfg.seed if seed is None else seed)
        self.jit_compile = cfg.d_jit_compile if jit_compile is None else bool(jit_compile)
        self._compile(cfg.d_predict_jit_compile if predict_jit_compile is None else bool(predict_jit_compile))
        self.scores_in_update = _scores_in_update(cfg, self.model)

    def _compile(self, predict_jit_compile: bool) -> None:
        """Wrap the graph bodies in tf.functions: training with ``self.jit_compile``, scoring with the given flag."""
        jit = self.jit_compile
        self._train_fn = tf.function(self._train_graph, jit_compile=jit, reduce_retracing=True)
        self._train_score_fn = tf.function(self._train_score_graph, jit_compile=jit, reduce_retracing=True)
        self._predict_fn = tf.function(self._predict_graph, jit_compile=predict_jit_compile, reduce_retracing=True)

    # compiled bodies -----------------------------------------------------
    def _predict_graph(self, x):
        return self.model(x, training=False)

    def _train_score_graph(self, real_x, gen_x, mix_eps, swapped_x=None):
        # swapped_x is None when replay swapped nothing (an empty batch would not pass the convolutions);
        # it is read before the update: the scores are the ones of the D that the update starts from
        logits_swapped = None if swapped_x is None else self.model(swapped_x, training=False)
        out = self._train_graph(real_x, gen_x, mix_eps)
        out["gen_logits"] = _unswapped_logits(out.pop("logits_gen"), logits_swapped)
        return out

    def _train_graph(self, real_x, gen_x, mix_eps):
        with tf.GradientTape() as tape:
            out = d_loss_terms(self.model, self.cfg, real_x, gen_x, mix_eps)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(out["loss"], variables), variables))
        return out

    # public ----------------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """The source of the WGAN-GP mixing weights (and, once, of the buffer's seed)."""
        return self.draws.rng

    @property
    def buffer(self) -> ReplayBuffer | None:
        """The replay buffer, None when ``cfg.d_replay_share == 0``."""
        return self.draws.buffer

    @property
    def input_kind(self) -> str:
        """'mel' or 'seq': what :meth:`train_step` and :meth:`step_logits` read."""
        return d_input_kind(self.cfg)

    def train_step(self, real_x: Any, gen_x: Any) -> dict[str, float]:
        """One update of D on a batch of real and a batch of generated inputs.

        With replay on, a ``cfg.d_replay_share`` of ``gen_x`` is first swapped
        for older generated clips and ``gen_x`` is stored.

        Parameters
        ----------
        real_x, gen_x : array-like, shape=(batch, *d_input_shape(cfg))
            Real inputs (label ``1 - d_label_smoothing``) and generated ones (label 0).

        Returns
        -------
        metrics : dict of float
            ``loss`` (total), ``loss_real``, ``loss_gen`` (mean sigmoid
            cross-entropy over the trained steps), ``gp`` (the unweighted
            penalty, 0 when off), ``acc_real`` / ``acc_gen`` (share of clips
            whose last-step logit is on the right side of 0).
        """
        real_x, _, mixed_x, _, mix_eps = self._batches(real_x, gen_x)
        out = self._train_fn(tf.constant(real_x), tf.constant(mixed_x), tf.constant(mix_eps))
        return {k: float(v) for k, v in out.items() if k != "logits_gen"}

    def _batches(self, real_x, gen_x):
        # checked inputs, the generated batch after replay, how many clips replay swapped, WGAN-GP mixes
        real_x = check_d_inputs(real_x, self.cfg, name="real_x")
        gen_x = check_d_inputs(gen_x, self.cfg, name="gen_x")
        return (real_x, gen_x, *self.draws.draw(real_x, gen_x))

    def train_and_score(self, real_x: Any, gen_x: Any) -> tuple[dict[str, float], np.ndarray]:
        """:meth:`train_step`, also returning :meth:`step_logits` of ``gen_x`` from before the update.

        The policy's rewards need D's scores of the fresh clips, and D's update
        computes most of them anyway: the clips the replay buffer swapped out
        are scored apart, the rest are read off the update's forward pass.
        Where that would change the scores (``scores_in_update`` is False:
        a layer of D behaves differently in training, such as spectral
        normalisation, which also rewrites its kernel, dropout, noise or batch
        normalisation, or looks across the batch, as minibatch statistics do),
        the clips are scored in a separate inference pass first.

        Parameters
        ----------
        real_x, gen_x : array-like, shape=(batch, *d_input_shape(cfg))
            As in :meth:`train_step`.

        Returns
        -------
        metrics : dict of float
            As :meth:`train_step`'s.
        gen_logits : np.ndarray, shape=(batch, n_steps), dtype=float32
            D's per-step logits of ``gen_x`` before the update, in its order.
        """
        if not self.scores_in_update:
            gen_logits = self.step_logits(gen_x)
            return self.train_step(real_x, gen_x), gen_logits
        real_x, gen_x, mixed_x, n_swapped, mix_eps = self._batches(real_x, gen_x)
        out = self._train_score_fn(tf.constant(real_x), tf.constant(mixed_x), tf.constant(mix_eps),
                                   tf.constant(gen_x[:n_swapped]) if n_swapped else None)
        gen_logits = out.pop("gen_logits").numpy()
        return {k: float(v) for k, v in out.items()}, gen_logits

    def step_logits(self, x: Any) -> np.ndarray:
        """D's per-step logits ``(batch, n_steps)`` float32 for inputs ``x`` (inference mode)."""
        x = check_d_inputs(x, self.cfg)
        return self._predict_fn(tf.constant(x)).numpy()

    def __call__(self, x: Any) -> np.ndarray:
        return self.step_logits(x)

    def get_state(self) -> dict[str, np.ndarray]:
        """Replay buffer and random state as arrays (model and optimizer: save with Keras / tf.train.Checkpoint)."""
        return self.draws.get_state("trainer_rng_state")

    def mark(self) -> None:
        """Remember the random state and the replay buffer, so :meth:`undo` can return to them.

        The model's and optimizer's variables are not covered: copy them apart.
        """
        self.draws.mark()

    def undo(self) -> None:
        """Return the random state and the replay buffer to the last :meth:`mark`."""
        self.draws.undo("discriminator trainer")

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (and forget the last :meth:`mark`)."""
        self.draws.set_state(state, "trainer_rng_state")


# compiled inference of plain Keras models, kept as long as the model lives
_PREDICT_FNS: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def step_logits_fn(discriminator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``x -> (batch, n_steps)`` logits for a trainer, a Keras model or a callable.

    A :class:`DiscriminatorTrainer` gives its compiled ``step_logits``; a
    ``keras.Model`` is wrapped once in a ``tf.function`` (inference mode),
    cached per model; any other callable is returned as is.
    """
    if isinstance(discriminator, DiscriminatorTrainer):
        return discriminator.step_logits
    if isinstance(discriminator, keras.Model):
        fn = _PREDICT_FNS.get(discriminator)
        if fn is None:
            ref = weakref.ref(discriminator)
            graph = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
            fn = lambda x: graph(tf.constant(np.asarray(x, dtype=np.float32))).numpy()  # noqa: E731
            _PREDICT_FNS[discriminator] = fn
        return fn
    if callable(discriminator):
        return discriminator
    raise MusicRLError(
        "discriminator must be a DiscriminatorTrainer, keras.Model or callable, "
        f"got {type(discriminator).__name__}"
    )


def predict_step_logits(discriminator: Any, x: Any, cfg=None) -> np.ndarray:
    """Per-step logits from a :class:`DiscriminatorTrainer`, a Keras model, or any callable.

    Parameters
    ----------
    discriminator : DiscriminatorTrainer, keras.Model or callable
        A callable maps a float32 batch of D inputs to ``(batch, n_steps)`` logits.
    x : array-like, shape=(batch, *d_input_shape)
    cfg : Config, optional
        When given, ``x`` is validated against it.

    Returns
    -------
    step_logits : np.ndarray, shape=(batch, n_steps), dtype=float32
    """
    x = check_d_inputs(x, cfg) if cfg is not None else np.asarray(x, dtype=np.float32)
    out = np.asarray(step_logits_fn(discriminator)(x), dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise MusicRLError(
            f"discriminator must return (batch, n_steps) = ({x.shape[0]}, n_steps) logits, got shape {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        raise MusicRLError("discriminator returned NaN or inf logits")
    return out


def predict_step_probs(discriminator: Any, x: Any, cfg=None) -> np.ndarray:
    """D's per-step probability that the piece heard so far is real: ``sigmoid`` of :func:`predict_step_logits`.

    Parameters
    ----------
    discriminator, x, cfg
        As in :func:`predict_step_logits`.

    Returns
    -------
    step_probs : np.ndarray, shape=(batch, n_steps), dtype=float32
        In [0, 1]; column ``-1`` is D's judgement of the whole clip.
    """
    logits = predict_step_logits(discriminator, x, cfg)
    # tanh form: no overflow for large negative logits
    return (0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))).astype(np.float32)


def discriminator_accuracy(discriminator: Any, real_x: Any, gen_x: Any, cfg=None) -> dict[str, float]:
    """Share of clips D puts on the right side, judged by the sign of its last-step logit.

    Parameters
    ----------
    discriminator : DiscriminatorTrainer, keras.Model or callable
        As in :func:`predict_step_logits`.
    real_x, gen_x : array-like, shape=(n_real, *d_input_shape), (n_gen, *d_input_shape)
        Inputs of real clips (right when the logit is > 0) and of generated
        or random clips (right when it is < 0); e.g. held-out clips.
    cfg : Config, optional
        When given, the inputs are validated against it.

    Returns
    -------
    accuracy : dict of str to float
        ``acc_real``, ``acc_gen`` (each in [0, 1]) and ``acc``, their mean
        (balanced accuracy: 0.5 is chance whatever the two sizes).
    """
    logits_real = predict_step_logits(discriminator, real_x, cfg)[:, -1]
    logits_gen = predict_step_logits(discriminator, gen_x, cfg)[:, -1]
    if len(logits_real) == 0 or len(logits_gen) == 0:
        raise MusicRLError(
            f"need at least one clip of each set, got {len(logits_real)} real and {len(logits_gen)} generated"
        )
    acc_real = float(np.mean(logits_real > 0))
    acc_gen = float(np.mean(logits_gen < 0))
    return {"acc_real": acc_real, "acc_gen": acc_gen, "acc": 0.5 * (acc_real + acc_gen)}


def fit_discriminator(
    trainer: DiscriminatorTrainer,
    real_x: Any,
    gen_x: Any,
    *,
    steps: int,
    batch_size: int,
    seed: Any = 0,
    val_real_x: Any = None,
    val_gen_x: Any = None,
    eval_every: int = 10,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train D alone on fixed sets of real and generated inputs (e.g. real vs random clips).

    Every step draws ``batch_size`` real and ``batch_size`` generated inputs
    (distinct within a step; at most the whole set) and calls
    ``trainer.train_step`` once, so the trainer's stabilisers (label
    smoothing, replay, penalty) apply as in adversarial training.

    Parameters
    ----------
    trainer : DiscriminatorTrainer
        The D to train (updated in place).
    real_x, gen_x : array-like, shape=(n_real, *d_input_shape), (n_gen, *d_input_shape)
        Training inputs: mels, or seqs for the 'seq' D (see :func:`d_inputs`).
    steps : int
        Updates of D.
    batch_size : int
        Inputs of each set per update.
    seed : int or np.random.Generator
        Randomness of the batch draws.
    val_real_x, val_gen_x : array-like, optional
        Held-out inputs; when both are given, every row also holds
        ``val_acc_real``, ``val_acc_gen`` and ``val_acc``
        (:func:`discriminator_accuracy` at that step).
    eval_every : int
        Steps per row of the history.
    progress : bool
        Show a progress bar.

    Returns
    -------
    history : list of dict
        One row per ``eval_every`` steps and one after the last step:
        ``step`` (updates done), and the training metrics of
        :meth:`DiscriminatorTrainer.train_step` (``loss``, ``loss_real``,
        ``loss_gen``, ``gp``, ``acc_real``, ``acc_gen``) averaged over the
        steps since the previous row, plus the held-out accuracies.

    Raises
    ------
    MusicRLError
        On a bad input shape or setting, or only one of the held-out sets.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MusicRLError(f"{name} must be a positive int, got {value!r}")
    if (val_real_x is None) != (val_gen_x is None):
        raise MusicRLError("give both val_real_x and val_gen_x, or neither")
    cfg = trainer.cfg
    real = check_d_inputs(real_x, cfg, name="real_x")
    gen = check_d_inputs(gen_x, cfg, name="gen_x")
    if val_real_x is not None:
        val_real = check_d_inputs(val_real_x, cfg, name="val_real_x")
        val_gen = check_d_inputs(val_gen_x, cfg, name="val_gen_x")
    rng = as_rng(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), desc="D", unit="step")
    history: list[dict[str, float]] = []
    since: list[dict[str, float]] = []
    for step in range(1, int(steps) + 1):
        real_b = real[rng.choice(len(real), min(int(batch_size), len(real)), replace=False)]
        gen_b = gen[rng.choice(len(gen), min(int(batch_size), len(gen)), replace=False)]
        since.append(trainer.train_step(real_b, gen_b))
        if bar is not None:
            bar.update(1)
        if step % eval_every == 0 or step == steps:
            row = {"step": step}
            row.update({k: float(np.mean([m[k] for m in since])) for k in since[0]})
            if val_real_x is not None:
                acc = discriminator_accuracy(trainer, val_real, val_gen)
                row.update({f"val_{k}": v for k, v in acc.items()})
            history.append(row)
            since = []
            if bar is not None:
                bar.set_postfix_str(f"loss {row['loss']:.3f}")
    if bar is not None:
        bar.close()
    return history
