"""Two-sample classifier tests (Lopez-Paz & Oquab 2017): can a fresh classifier tell two sets apart?

A fresh classifier learns to tell held-out real clips from generated ones;
its held-out accuracy is 0.5 when the sets cannot be told apart and 1.0 when
they always can. The classifier is a scikit-learn model on feature vectors of
the seqs (:func:`seq_two_sample_test`), or a freshly built musicrl
discriminator on its own inputs (mels, or seqs for the 'seq' architecture:
:func:`discriminator_two_sample_test`, :func:`discriminator_train_test`),
never the D that trained the agent.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..audio import mel
from ..errors import MusicRLError
from ..learning.discriminator import build_discriminator, check_d_inputs, check_d_seqs, d_input_kind, d_inputs
from ..music.vectorize import check_seqs
from ..seeding import as_rng
from .checks import check_int, piece_codes
from .mgeval import piece_features

__all__ = [
    "FRESH_D_BETA_1",
    "FRESH_D_LEARNING_RATE",
    "classifier_two_sample_test",
    "discriminator_train_test",
    "discriminator_two_sample_test",
    "fewest_pieces",
    "seq_feature_vectors",
    "seq_two_sample_test",
    "set_d_inputs",
]

# The fresh discriminators learn with one recipe whatever the run's own D learned with (these are the
# online D's defaults), so a run that changes D's optimizer is measured with the same instrument.
FRESH_D_LEARNING_RATE = 5e-4
FRESH_D_BETA_1 = 0.5


def seq_feature_vectors(seqs: np.ndarray, *, lowest_pitch: int = 36) -> np.ndarray:
    """A feature vector per piece for a two-sample classifier.

    The concatenation of the share of notes on each pitch column
    (``n_pitches``: register), the pitch-class histogram (12), the chord
    quality histogram (11: the :data:`~musicrl.music.metrics.CHORD_QUALITIES`,
    other chords, rests) and every scalar feature of :data:`PIECE_FEATURES`.

    Returns
    -------
    x : np.ndarray, shape=(batch, n_pitches + 23 + n_scalar), dtype=float64
        NaN where a scalar feature is undefined for a piece.
    """
    on = check_seqs(seqs, name="seqs") > 0
    counts = on.sum(axis=1).astype(np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    pitch_hist = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    feats = piece_features(on, lowest_pitch=lowest_pitch)
    scalars = [v[:, None] for v in feats.values() if v.ndim == 1]
    vectors = [feats["pitch_class_histogram"], feats["chord_quality_histogram"]]
    return np.concatenate([pitch_hist, *vectors, *scalars], axis=1)


def fewest_pieces(real: Any, gen: Any, *, real_groups: Any = None, gen_groups: Any = None) -> int:
    """The most folds a two-sample test of ``real`` against ``gen`` can have: the clips of the smaller
    set, or its pieces where ``real_groups`` / ``gen_groups`` give the piece of each clip (a fold holds
    out whole pieces, so a side of two pieces allows two folds however many clips it has).

    Parameters
    ----------
    real, gen : array-like, shape=(n_real, ...), (n_gen, ...)
        The two sets, one row per clip.
    real_groups, gen_groups : array-like, shape=(n_real,), (n_gen,), optional
        The piece of each clip; without them each clip is its own piece.

    Returns
    -------
    n : int
        Pieces of the side with fewer.
    """
    return min(
        len(gen) if gen_groups is None else np.unique(np.asarray(gen_groups)).size,
        len(real) if real_groups is None else np.unique(np.asarray(real_groups)).size,
    )


def _draw_clips(codes: np.ndarray, n: int, grouped: bool, rng: np.random.Generator) -> np.ndarray:
    """``n`` of the clips, sorted; by piece (codes) where grouped, every piece's first clip before any
    piece's second, so that cutting a side down keeps as many pieces as it can (one long piece cut into
    many windows would otherwise fill the sample)."""
    if not grouped:
        return np.sort(rng.choice(len(codes), n, replace=False))
    order = rng.permutation(len(codes))
    rank = np.empty(len(codes), dtype=np.int64)
    seen: dict[int, int] = {}
    for i in order:
        rank[i] = seen.get(codes[i], 0)
        seen[codes[i]] = rank[i] + 1
    return np.sort(order[np.argsort(rank[order], kind="stable")][:n])


def _balanced_split_data(
    real_x: np.ndarray, gen_x: np.ndarray, n_splits: int, rng, real_groups: Any = None, gen_groups: Any = None
) -> tuple:
    """Equal-size real and generated samples, with labels (1 real, 0 generated) and group codes.

    The codes are None when neither set has groups (plain stratified folds).
    """
    check_int(n_splits, "n_splits", 2)
    grouped = real_groups is not None or gen_groups is not None
    g_real = piece_codes(real_groups, len(real_x), "real_groups")
    g_gen = piece_codes(gen_groups, len(gen_x), "gen_groups")
    n = min(len(real_x), len(gen_x))
    if n < n_splits:
        raise MusicRLError(
            f"a {n_splits}-fold test needs at least {n_splits} clips of each set, got "
            f"{len(real_x)} real and {len(gen_x)} generated"
        )
    # the larger set is subsampled so that chance accuracy is exactly 0.5
    i_real = _draw_clips(g_real, n, real_groups is not None, rng)
    i_gen = _draw_clips(g_gen, n, gen_groups is not None, rng)
    x = np.concatenate([real_x[i_real], gen_x[i_gen]])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    if not grouped:
        return x, y, n, None
    groups = np.concatenate([g_real[i_real], g_gen[i_gen] + len(real_x)])
    for label, side in (("real", groups[:n]), ("generated", groups[n:])):
        if np.unique(side).size < n_splits:
            raise MusicRLError(
                f"a {n_splits}-fold test by groups needs at least {n_splits} groups of {label} clips, "
                f"got {np.unique(side).size}"
            )
    return x, y, n, groups


def _folds(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, n_splits: int, random_state: int) -> list:
    """Shuffled stratified folds; with groups, no group is split between training and test folds."""
    if groups is None:
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(x, y))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(folds.split(x, y, groups))


def classifier_two_sample_test(
    real_x: np.ndarray,
    gen_x: np.ndarray,
    *,
    model: str = "logistic",
    n_splits: int = 5,
    seed: Any = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
) -> dict[str, float]:
    """Cross-validated accuracy of a fresh scikit-learn classifier telling real from generated.

    The larger set is subsampled to the size of the smaller one, so chance
    is 0.5. Features are mean-imputed (NaN) and standardised inside each
    training fold (a pipeline, so no statistics leak from the test fold).
    With groups (e.g. the piece each real window was cut from), the clips of
    a group are never split between training and test folds, so the
    classifier cannot score by recognising a piece it trained on.

    Parameters
    ----------
    real_x, gen_x : np.ndarray, shape=(n_real, d), (n_gen, d)
        Feature vectors of held-out real clips and of generated clips.
    model : {'logistic', 'boosting'}
        L2 logistic regression, or histogram gradient boosting.
    n_splits : int
        Folds of the stratified, shuffled cross-validation.
    seed : int or np.random.Generator
        Subsampling, fold assignment and the model's randomness.
    real_groups, gen_groups : array-like, shape=(n_real,), (n_gen,), optional
        A group label per clip (default: each clip its own group); folds are
        then ``StratifiedGroupKFold``, which needs ``n_splits`` groups per set.

    Returns
    -------
    result : dict of str to float
        ``accuracy`` (mean held-out accuracy over folds: 0.5 means the sets
        are indistinguishable to this classifier, 1.0 always told apart),
        ``accuracy_std`` (over folds), ``n_per_class``, ``n_splits``.
    """
    real = np.asarray(real_x, dtype=np.float64)
    gen = np.asarray(gen_x, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise MusicRLError(
            f"real_x and gen_x must be (n, d) arrays with the same d, got shapes {real.shape} and {gen.shape}"
        )
    if np.isinf(real).any() or np.isinf(gen).any():
        raise MusicRLError("feature vectors contain inf")
    rng = as_rng(seed)
    x, y, n, groups = _balanced_split_data(real, gen, n_splits, rng, real_groups, gen_groups)
    random_state = int(rng.integers(2**31 - 1))
    if model == "logistic":
        clf = LogisticRegression(max_iter=2000)
    elif model == "boosting":
        clf = HistGradientBoostingClassifier(random_state=random_state)
    else:
        raise MusicRLError(f"model must be 'logistic' or 'boosting', got {model!r}")
    # columns that are NaN everywhere would be dropped by the imputer; 0 keeps the shape
    x = np.where(np.isnan(x).all(axis=0), 0.0, x)
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), clf)
    scores = cross_val_score(pipe, x, y, cv=_folds(x, y, groups, n_splits, random_state), scoring="accuracy")
    return _fold_result(scores, n, n_splits)


def seq_two_sample_test(
    real_seqs: np.ndarray,
    gen_seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    model: str = "logistic",
    n_splits: int = 5,
    seed: Any = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
) -> dict[str, float]:
    """Two-sample classifier test on the :func:`seq_feature_vectors` of two sets of seqs.

    ``real_seqs`` should be clips the agent's discriminator never trained on
    (a held-out split). See :func:`classifier_two_sample_test` for the
    groups and the result.
    """
    real = seq_feature_vectors(real_seqs, lowest_pitch=lowest_pitch)
    gen = seq_feature_vectors(gen_seqs, lowest_pitch=lowest_pitch)
    if real.shape[1] != gen.shape[1]:
        raise MusicRLError(
            f"real_seqs and gen_seqs must have the same number of pitch columns, got feature "
            f"sizes {real.shape[1]} and {gen.shape[1]}"
        )
    return classifier_two_sample_test(
        real, gen, model=model, n_splits=n_splits, seed=seed, real_groups=real_groups, gen_groups=gen_groups
    )


def discriminator_two_sample_test(
    real_x: np.ndarray,
    gen_x: np.ndarray,
    cfg: Any,
    *,
    n_splits: int = 3,
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
    cache: dict | None = None,
    learning_rate: float = FRESH_D_LEARNING_RATE,
    beta_1: float = FRESH_D_BETA_1,
) -> dict[str, float]:
    """Two-sample test with a freshly built musicrl discriminator as the classifier.

    A new ``musicrl.learning.discriminator.build_discriminator(cfg)`` is built, and for
    each fold trained from its untrained weights (Adam with ``learning_rate`` and
    ``beta_1``, not the run's D settings, plain sigmoid cross-entropy of every step's logit
    against the clip's label: no label smoothing, replay or penalty) on the
    other folds, and scored by the sign of its last-step logit on the
    held-out fold. It never sees the D that trained the agent.

    Parameters
    ----------
    real_x, gen_x : np.ndarray, shape=(n, *d_input_shape(cfg))
        D inputs (mels, or seqs for ``d_arch='seq'``) of held-out real clips
        and of generated clips.
    cfg : Config
    n_splits : int
        Folds.
    epochs, batch_size : int
        Training of each fold's model.
    seed : int
        Subsampling, folds, and Keras' global seed (``keras.utils.set_random_seed``
        is called, which reseeds Python, NumPy and TensorFlow's global state).
    real_groups, gen_groups : array-like, optional
        A group label per clip (e.g. its piece): no group is split between
        training and test folds (see :func:`classifier_two_sample_test`).
    cache : dict, optional
        An empty dict the caller keeps and passes to several tests with the
        same ``cfg`` (e.g. one per generated set): the classifier is compiled
        once and only its starting weights are rebuilt for each test, which
        saves TensorFlow's graph tracing. The results are the same as
        without it.
    learning_rate, beta_1 : float
        Adam's settings for the classifier (default: the same for every run,
        ``FRESH_D_LEARNING_RATE`` and ``FRESH_D_BETA_1``).

    Returns
    -------
    result : dict of str to float
        As :func:`classifier_two_sample_test`.
    """
    real = check_d_inputs(real_x, cfg, name="real_x")
    gen = check_d_inputs(gen_x, cfg, name="gen_x")
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    rng = as_rng(seed)
    x, y, n, groups = _balanced_split_data(real, gen, n_splits, rng, real_groups, gen_groups)
    random_state = int(rng.integers(2**31 - 1))
    folds = _folds(x, y, groups, n_splits, random_state)
    scores = []
    model, restart = _fresh_discriminator(cfg, random_state, cache, learning_rate, beta_1)
    for k, (train, test) in enumerate(folds):
        keras.utils.set_random_seed(random_state + k)
        restart()
        logits = _fit_and_score(model, x[train], y[train], x[test], epochs=epochs, batch_size=batch_size)
        scores.append(float(((logits > 0).astype(np.int64) == y[test]).mean()))
    return _fold_result(scores, n, n_splits)


def _fold_result(scores: Any, n: int, n_splits: int) -> dict[str, float]:
    """The result of a cross-validated test from its folds' accuracies."""
    scores = np.asarray(scores, dtype=np.float64)
    return {
        "accuracy": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "n_per_class": float(n),
        "n_splits": float(n_splits),
    }


def _fresh_discriminator(
    cfg: Any, random_state: int, cache: dict | None, learning_rate: float, beta_1: float
) -> tuple[Any, Callable[[], None]]:
    """A new discriminator of ``cfg``, compiled, and a function that puts back its untrained weights
    and optimizer state (one compiled model serves every fold and, with ``cache``, every test)."""
    numbers = (int, float, np.floating)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers) or not learning_rate > 0:
        raise MusicRLError(f"learning_rate must be > 0, got {learning_rate!r}")
    if isinstance(beta_1, bool) or not isinstance(beta_1, numbers) or not 0 <= beta_1 < 1:
        raise MusicRLError(f"beta_1 must be in [0, 1), got {beta_1!r}")
    learning_rate, beta_1 = float(learning_rate), float(beta_1)
    keras.utils.set_random_seed(random_state)
    model = build_discriminator(cfg, name="two_sample_d")
    fresh_weights = model.get_weights()
    key = (cfg, learning_rate, beta_1)
    if cache is not None and cache.get("key") == key:
        model, optimizer, fresh_optimizer = cache["model"], cache["optimizer"], cache["optimizer_state"]
    else:
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1)
        optimizer.build(model.trainable_variables)
        model.compile(
            optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False
        )
        fresh_optimizer = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
        if cache is not None:
            cache.clear()
            cache.update(key=key, model=model, optimizer=optimizer, optimizer_state=fresh_optimizer)

    def restart() -> None:
        model.set_weights(fresh_weights)
        for var, value in zip(optimizer.variables, fresh_optimizer):
            var.assign(value)

    return model, restart


def _fit_and_score(model: Any, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, epochs: int,
                   batch_size: int) -> np.ndarray:
    """Train ``model`` on every step's logit against the clip's label; its last-step logits on ``x_test``."""
    y_steps = np.repeat(y[:, None].astype(np.float32), model.output_shape[-1], axis=1)
    model.fit(x, y_steps, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return keras.ops.convert_to_numpy(model.predict_on_batch(x_test))[:, -1]


def discriminator_train_test(
    train_real_x: np.ndarray,
    train_gen_x: np.ndarray,
    test_real_x: np.ndarray,
    test_gen_x: np.ndarray,
    cfg: Any,
    *,
    epochs: int = 20,
    batch_size: int = 32,
    seed: int = 0,
    cache: dict | None = None,
    learning_rate: float = FRESH_D_LEARNING_RATE,
    beta_1: float = FRESH_D_BETA_1,
) -> dict[str, float]:
    """Two-sample test with a fresh discriminator trained on one pair of samples and scored on another.

    Where :func:`discriminator_two_sample_test` cross-validates on the few
    held-out clips, this test trains on as many clips as there are: e.g.
    windows of the training pieces against other pieces of the same
    generator, and scores on the held-out real clips against the set being
    evaluated, none of which it trained on. The larger training sample
    gives it the power to tell sets apart that the cross-validated test,
    trained on a few hundred clips, cannot (a test that is not
    significant is not evidence that two sets are alike). The model and its
    training are those of :func:`discriminator_two_sample_test`.

    Each pair is subsampled to the size of its smaller side, so chance is
    0.5; the accuracy is the mean of the two sides' accuracies.

    Parameters
    ----------
    train_real_x, train_gen_x : np.ndarray, shape=(n_train, *d_input_shape(cfg))
        D inputs it trains on (label 1 real, 0 generated).
    test_real_x, test_gen_x : np.ndarray, shape=(n_test, *d_input_shape(cfg))
        D inputs it is scored on.
    cfg : Config
    epochs, batch_size : int
        Training of the model.
    seed : int
        Subsampling and Keras' global seed.
    cache : dict, optional
        As in :func:`discriminator_two_sample_test` (the same dict serves both tests).
    learning_rate, beta_1 : float
        As in :func:`discriminator_two_sample_test`.

    Returns
    -------
    result : dict of str to float
        ``accuracy`` (0.5 = the sets cannot be told apart, 1 = always told
        apart), ``accuracy_real`` and ``accuracy_gen`` (of each test side),
        ``n_train_per_class``, ``n_test_per_class``.
    """
    xs = {name: check_d_inputs(x, cfg, name=name) for name, x in (
        ("train_real_x", train_real_x), ("train_gen_x", train_gen_x),
        ("test_real_x", test_real_x), ("test_gen_x", test_gen_x))}
    for name, x in xs.items():
        if len(x) == 0:
            raise MusicRLError(f"{name} holds no clips: the test needs at least one of each")
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    rng = as_rng(seed)
    n_train = min(len(xs["train_real_x"]), len(xs["train_gen_x"]))
    n_test = min(len(xs["test_real_x"]), len(xs["test_gen_x"]))

    def take(name: str, k: int) -> np.ndarray:
        return xs[name][np.sort(rng.choice(len(xs[name]), k, replace=False))]

    x = np.concatenate([take("train_real_x", n_train), take("train_gen_x", n_train)])
    y = np.concatenate([np.ones(n_train, np.int64), np.zeros(n_train, np.int64)])
    x_test = np.concatenate([take("test_real_x", n_test), take("test_gen_x", n_test)])
    random_state = int(rng.integers(2**31 - 1))
    model, restart = _fresh_discriminator(cfg, random_state, cache, learning_rate, beta_1)
    keras.utils.set_random_seed(random_state)
    restart()
    logits = _fit_and_score(model, x, y, x_test, epochs=epochs, batch_size=batch_size)
    acc_real = float((logits[:n_test] > 0).mean())
    acc_gen = float((logits[n_test:] <= 0).mean())
    return {
        "accuracy": (acc_real + acc_gen) / 2,
        "accuracy_real": acc_real,
        "accuracy_gen": acc_gen,
        "n_train_per_class": float(n_train),
        "n_test_per_class": float(n_test),
    }


def set_d_inputs(seqs: np.ndarray, cfg: Any) -> np.ndarray:
    """D inputs of a set; its mels through the fast path grouped by chord width, since a set may hold
    a few clips of dense chords."""
    # before any synthesis, so a set of the wrong length fails at once
    seqs = check_d_seqs(seqs, cfg)
    if d_input_kind(cfg) != "mel":
        return d_inputs(seqs, cfg)
    return d_inputs(seqs, cfg, mels=mel.seq_to_mel_by_width(seqs, **cfg.seq_mel_kwargs()))
