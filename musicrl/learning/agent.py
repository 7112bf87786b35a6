"""The agent: a recurrent policy that writes one chord per step.

A :class:`ChordPolicy` is a GRU over chord steps. At step ``t`` it reads the
chord of step ``t - 1`` (a start flag at ``t = 0``) and outputs a distribution
over the chord of step ``t``; a whole seq is sampled autoregressively. The
notes of a step come from one of two heads (setting ``policy_head``):

``"vocab"`` (default)
    A categorical over a chord vocabulary (every distinct chord of the
    training windows, optionally with transpositions, see
    :func:`~musicrl.learning.vocab.build_chord_vocab`) plus one ``<other>`` token. ``<other>`` is
    followed by an independent Bernoulli per pitch, so any chord, in the
    vocabulary or not, has non-zero probability. The probability of a chord
    ``c`` is that of the mixture::

        p(c) = pi[idx(c)] * [c in vocab] + pi[<other>] * prod_p bern_p(c_p)

    and the log-probabilities reported are exactly ``log p(c)`` (the two
    branches are summed, not only the one that drew the chord).
``"bernoulli"``
    An independent Bernoulli per pitch (a baseline for comparison; its chords
    are rarely musical).

The ``n_vocab + 1`` tokens are split into ``n_blocks`` blocks of
``block_size ~ sqrt(n_vocab + 1)`` consecutive tokens (``<other>`` is the last
token of the last block), and ``pi`` is factored exactly as ``pi[token] =
pi_block[block] * pi_within[token | block]`` (a class-factored softmax): a
step scores ``n_blocks`` block logits and the ``block_size`` tokens of one or
two blocks instead of the whole vocabulary, which keeps sampling and updates
fast with vocabularies of thousands of chords. Within a block, a token's logit
is ``q(h) . (E_token + W c_token) + b_token``: a free embedding plus a
projection of the token's chord, so rare chords share what is learned about
their pitches.

Entropy and KL are per step, of the joint distribution of (branch, chord),
``H = H(pi) + pi[<other>] * H(bern)`` and ``KL = KL(pi || pi') + pi[<other>]
* KL(bern || bern')``, which bound the entropy / KL of the chord alone from
above (equal when the Bernoulli branch never lands on a vocabulary chord).
For the Bernoulli head they are those of the Bernoulli, exactly. For the vocab
head, ``H(pi) = H(pi_block) + sum_b pi_block[b] H(pi_within[. | b])`` needs
every block, so the training step (and :meth:`ChordPolicy.entropy`,
:func:`policy_kl` by default) takes the within-block term in the block of the
step's own chord only: ``H(pi_block) + H(pi_within[. | block(c_t)])``, and
likewise for the KL. For chords drawn from the policy this is a one-sample
estimate of the exact value: its mean over blocks weighted by ``pi_block`` is
the exact value, and the KL estimate is >= 0 and 0 for identical policies.
``exact=True`` gives the full values, at the cost of a pass over the whole
vocabulary.

Sampling draws its uniforms from a NumPy generator and runs one compiled
TensorFlow function, so the same seed gives the same seqs. Training steps
(:func:`pretrain_step`, :func:`reinforce_step`) are compiled once per
(policy, optimizer, options) and recompute log-probabilities under teacher
forcing so gradients flow. The maximum-likelihood step can drop the GRU
states its heads read (dropout) and feed the policy its own draws instead of
some real chords (scheduled sampling); both draw from a NumPy generator too.

The vocabulary and the lookups of chords in it are in
:mod:`~musicrl.learning.vocab` (its public names are also importable from
here); the terms of a step's distribution are in
:mod:`~musicrl.learning.chord_dist`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from ..errors import MusicRLError
from ..seeding import as_rng
from ..music.vectorize import check_seqs
from .chord_dist import (
    all_token_logp,
    bern_entropy,
    bern_log_prob,
    cat_entropy,
    inverse_cdf_draw,
    mixture_terms,
    step_kl,
    within_block_logp,
)
from . import vocab as chord_vocab
# the vocabulary's public names stay importable from here, where callers have always found them
from .vocab import build_chord_vocab, in_vocabulary, vocab_coverage, vocab_kwargs

__all__ = [
    "POLICY_HEADS",
    "ChordPolicy",
    "PolicySample",
    "build_chord_vocab",
    "build_policy",
    "clone_policy",
    "in_vocabulary",
    "kl_weight",
    "policy_kl",
    "ppo_clipped_loss",
    "pretrain_step",
    "reinforce_loss",
    "reinforce_step",
    "vocab_coverage",
    "vocab_kwargs",
]

POLICY_HEADS = ("vocab", "bernoulli")

# --------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------


class PolicySample(NamedTuple):
    """A batch of sampled episodes (NumPy arrays).

    Attributes
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches), dtype=float32
        The ``gen_seqs``: multi-hot chords.
    log_probs : np.ndarray, shape=(batch, n_steps), dtype=float32
        Exact log-probability (nats) of each step's chord given the previous
        ones, under the distribution sampled from (including the temperature).
    entropies : np.ndarray, shape=(batch, n_steps), dtype=float32
        Entropy (nats) of each step's distribution (for the vocab head the
        estimate described in the module docs).
    from_vocab : np.ndarray, shape=(batch, n_steps), dtype=bool
        Whether the step's chord was drawn by a vocabulary token (always False
        for the Bernoulli head).
    values : np.ndarray or None, shape=(batch, n_steps), dtype=float32
        The value head's estimate of each step's return (None without one).
    """

    seqs: np.ndarray
    log_probs: np.ndarray
    entropies: np.ndarray
    from_vocab: np.ndarray
    values: np.ndarray | None


@keras.saving.register_keras_serializable(package="musicrl")
class ChordPolicy(keras.Model):
    """Autoregressive GRU policy over chord steps.

    Parameters
    ----------
    n_pitches : int
        Pitch columns of a chord.
    head : {'vocab', 'bernoulli'}
        How a step's notes are drawn (see module docs).
    vocab : np.ndarray, shape=(n_chords, n_pitches), optional
        The chord vocabulary (required for ``head='vocab'``), e.g. from
        :func:`build_chord_vocab`. It is kept in the model as a non-trainable
        variable (so checkpoints hold it) and in :meth:`get_config`.
    hidden_size : int
        GRU units.
    embed_size : int
        Size of the token embeddings the within-block softmax scores against.
    value_head : bool
        Add a per-step value estimate (actor-critic baseline).
    jit_compile : bool
        Compile sampling and training steps with XLA.

    Attributes
    ----------
    n_vocab : int
        Vocabulary chords (0 for the Bernoulli head); token ``n_vocab`` is ``<other>``.
    block_size, n_blocks : int
        The ``n_vocab + 1`` tokens are split into ``n_blocks`` blocks of
        ``block_size`` consecutive tokens (0 for the Bernoulli head).
    """

    def __init__(
        self,
        n_pitches: int,
        *,
        head: str = "vocab",
        vocab: np.ndarray | None = None,
        hidden_size: int = 128,
        embed_size: int = 32,
        value_head: bool = False,
        jit_compile: bool = True,
        name: str = "chord_policy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        _check_policy_settings(n_pitches, head, hidden_size, embed_size)
        self.n_pitches = int(n_pitches)
        self.head = head
        self.hidden_size = int(hidden_size)
        self.embed_size = int(embed_size)
        self.has_value_head = bool(value_head)
        self.jit_compile = bool(jit_compile)

        self.cell = keras.layers.GRUCell(self.hidden_size, name="gru")
        self.pitch_logits = keras.layers.Dense(self.n_pitches, name="pitch_logits")
        self.value_out = keras.layers.Dense(1, name="value") if self.has_value_head else None
        if head == "vocab":
            self._add_vocab_head(vocab)
        else:
            if vocab is not None:
                raise MusicRLError("head='bernoulli' takes no vocab")
            self.n_vocab = self.block_size = self.n_blocks = 0
        self._key_w = tf.constant(chord_vocab.key_weights(self.n_pitches))
        self._fns: dict = {}
        self._table_of: np.ndarray | None = None
        self._index_of: dict = {}
        # build every weight now, so checkpoints and get_weights see them all
        self(tf.zeros((1, 1, self.n_pitches)))

    def _add_vocab_head(self, vocab: np.ndarray | None) -> None:
        """The vocabulary variable and the class-factored softmax over its tokens (see module docs)."""
        if vocab is None:
            raise MusicRLError("head='vocab' needs a vocab (see build_chord_vocab)")
        vocab = chord_vocab.check_vocab(vocab, self.n_pitches)
        self.n_vocab = int(vocab.shape[0])
        n_tokens = self.n_vocab + 1
        self.block_size = int(np.ceil(np.sqrt(n_tokens)))
        self.n_blocks = -(-n_tokens // self.block_size)
        self.vocab_var = self.add_weight(
            shape=vocab.shape, initializer="zeros", dtype="float32", trainable=False, name="vocab"
        )
        self.vocab_var.assign(vocab)
        self.block_logits = keras.layers.Dense(self.n_blocks, name="block_logits")
        self.query = keras.layers.Dense(self.embed_size, name="query")
        self.chord_proj = keras.layers.Dense(self.embed_size, use_bias=False, name="chord_proj")
        self.token_emb = self.add_weight(
            shape=(n_tokens, self.embed_size),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
            name="token_emb",
        )
        self.token_bias = self.add_weight(shape=(n_tokens,), initializer="zeros", name="token_bias")

    # ---- configuration ------------------------------------------------------------
    @property
    def vocab(self) -> np.ndarray | None:
        """The chord vocabulary, (n_chords, n_pitches) float32, or None for the Bernoulli head."""
        return None if self.head != "vocab" else np.asarray(self.vocab_var.numpy(), dtype=np.float32)

    def get_config(self) -> dict[str, Any]:
        vocab = self.vocab
        return {
            "name": self.name,
            "n_pitches": self.n_pitches,
            "head": self.head,
            "vocab": None if vocab is None else chord_vocab.vocab_to_pitch_lists(vocab),
            "hidden_size": self.hidden_size,
            "embed_size": self.embed_size,
            "value_head": self.has_value_head,
            "jit_compile": self.jit_compile,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ChordPolicy":
        config = dict(config)
        if config.get("vocab") is not None:
            config["vocab"] = chord_vocab.pitch_lists_to_vocab(config["vocab"], config["n_pitches"])
        n_pitches = config.pop("n_pitches")
        return cls(n_pitches, **config)

    # ---- vocabulary lookups ---------------------------------------------------------
    def _lookup(self, seqs: np.ndarray) -> np.ndarray:
        """(batch, n_steps, n_pitches) -> (batch, n_steps) int32 vocab index (n_vocab when not in it).

        A hash lookup in NumPy, for batches given to teacher-forced passes.
        """
        if self.head != "vocab":
            return np.zeros(seqs.shape[:2], np.int32)
        vocab = self.vocab_var.numpy()
        # the vocabulary variable can be overwritten (set_weights, a restored checkpoint)
        if self._table_of is None or not np.array_equal(self._table_of, vocab):
            self._index_of = chord_vocab.index_table(vocab)
            self._table_of = vocab
        return chord_vocab.chords_to_indices(self._index_of, seqs)

    def _vocab_search(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Sorted float64 keys of the vocabulary chords, (n_vocab, n_words), and their vocab indices."""
        return chord_vocab.sorted_vocab_keys(self.vocab_var, self._key_w)

    def _vocab_index(self, chords: tf.Tensor, search: tuple | None = None) -> tf.Tensor:
        """(..., n_pitches) chords -> (...) int32 vocab index, n_vocab when not in it (in the graph)."""
        search = search if search is not None else self._vocab_search()
        return chord_vocab.chords_to_indices_graph(chords, search, self._key_w, self.n_vocab)

    # ---- distributions (TensorFlow, any leading axes) -------------------------------
    def _token_table(self) -> tuple[tf.Tensor, tf.Tensor] | None:
        """Token embeddings (n_blocks, block_size, embed) and logit biases (n_blocks, block_size).

        Padding slots of the last block get a logit of -1e9: probability
        exactly 0 and a finite log-probability (no 0 * inf in entropies).
        """
        if self.head != "vocab":
            return None
        n_tokens = self.n_vocab + 1
        pad = self.n_blocks * self.block_size - n_tokens
        chords = tf.concat([self.vocab_var, tf.zeros((1, self.n_pitches))], axis=0)
        emb = tf.pad(self.token_emb + self.chord_proj(chords), [[0, pad], [0, 0]])
        bias = tf.concat([self.token_bias, tf.fill((pad,), -1e9)], axis=0)
        shape = (self.n_blocks, self.block_size)
        return tf.reshape(emb, shape + (self.embed_size,)), tf.reshape(bias, shape)

    def _dist(self, h: tf.Tensor, temperature: tf.Tensor) -> dict:
        out = {"pitch_logits": self.pitch_logits(h) / temperature}
        if self.head == "vocab":
            out["block_logp"] = tf.nn.log_softmax(self.block_logits(h) / temperature, axis=-1)
            out["query"] = self.query(h)
        return out

    def _step_terms(self, dist: dict, chords: tf.Tensor, idx: tf.Tensor | None, table: Any, temperature: Any) -> dict:
        """Exact log-prob and (estimated) entropy of chords (..., n_pitches) with vocab indices idx (...)."""
        bern_lp = bern_log_prob(dist["pitch_logits"], chords)
        bern_h = bern_entropy(dist["pitch_logits"])
        if self.head != "vocab":
            return {"log_prob": bern_lp, "entropy": bern_h}
        return mixture_terms(dist, bern_lp, bern_h, idx, table, temperature, n_vocab=self.n_vocab)

    def _hidden(self, fed: tf.Tensor) -> tf.Tensor:
        """GRU states (batch, n_steps, hidden_size); step ``t`` reads ``fed[:, t - 1]`` (a start flag at 0)."""
        n_steps = fed.shape[1]
        batch = tf.shape(fed)[0]
        prev = tf.concat([tf.zeros_like(fed[:, :1]), fed[:, :-1]], axis=1)
        start = tf.concat([tf.ones((batch, 1, 1)), tf.zeros((batch, n_steps - 1, 1))], axis=1)
        x = tf.concat([prev, start], axis=-1)
        # a loop in the graph rather than unrolled, so tracing and compiling cost the same at any length
        hs = tf.scan(lambda h, x_t: self.cell(x_t, h)[0], tf.transpose(x, [1, 0, 2]),
                     initializer=tf.zeros((batch, self.hidden_size)))
        return tf.transpose(hs, [1, 0, 2])

    def _forward(self, seqs: tf.Tensor, temperature: tf.Tensor, idx: tf.Tensor | None = None,
                 exact: bool = False, inputs: tf.Tensor | None = None, dropout: tuple | None = None) -> dict:
        """Teacher-forced pass over (batch, n_steps, n_pitches) seqs.

        ``idx`` (batch, n_steps) are the chords' vocab indices (see
        :meth:`_lookup`); found in the graph when not given. ``exact`` adds
        the full token distribution and the exact entropy. ``inputs`` (same
        shape as seqs) are the chords fed to the GRU, step ``t`` reading
        ``inputs[:, t - 1]`` (default: seqs itself); the terms are those of
        seqs. ``dropout`` is ``(rate, uniforms)``: inverted dropout on the
        GRU states the heads read (not on the recurrence), a unit dropped
        where its uniform (batch, n_steps, hidden_size) is below the rate.
        """
        seqs = tf.cast(seqs, tf.float32)
        hs = self._hidden(seqs if inputs is None else tf.cast(inputs, tf.float32))
        heads_read = hs
        if dropout is not None:
            rate, u = dropout
            heads_read = tf.where(u >= rate, hs / (1.0 - rate), 0.0)
        dist = self._dist(heads_read, temperature)
        table = self._token_table()
        if self.head == "vocab" and idx is None:
            idx = self._vocab_index(seqs)
        out = dict(dist)
        out.update(self._step_terms(dist, seqs, idx, table, temperature))
        if exact:
            bern_h = bern_entropy(dist["pitch_logits"])
            if self.head == "vocab":
                token_logp = all_token_logp(dist, table, temperature, n_tokens=self.n_vocab + 1)
                out["token_logp"] = token_logp
                out["exact_entropy"] = cat_entropy(token_logp) + tf.exp(token_logp[..., -1]) * bern_h
            else:
                out["exact_entropy"] = bern_h
        if self.has_value_head:
            out["value"] = self.value_out(hs)[..., 0]
        return out

    def call(self, seqs: Any, training: bool | None = None) -> tf.Tensor:
        """Teacher-forced log-probabilities (batch, n_steps) of seqs, at temperature 1."""
        return self._forward(tf.convert_to_tensor(seqs, tf.float32), tf.constant(1.0))["log_prob"]

    # ---- sampling -----------------------------------------------------------------
    def _draw_lookup(self) -> tuple:
        """What :meth:`_draw_chord` looks chords up in: the vocabulary with an empty row for ``<other>``, and its search keys."""
        if self.head != "vocab":
            return None, None
        return tf.concat([self.vocab_var, tf.zeros((1, self.n_pitches))], axis=0), self._vocab_search()

    def _draw_chord(self, dist: dict, u: tf.Tensor, table: Any, temperature: tf.Tensor,
                    padded_vocab: tf.Tensor | None, search: tuple | None) -> tuple:
        """One chord per row of dist (rows, ...) from uniforms u (rows, 2 + n_pitches).

        Returns the chords (rows, n_pitches), their vocab indices (None for
        the Bernoulli head) and whether the vocabulary branch drew them.
        """
        bern_chord = tf.cast(u[:, 2:] < tf.sigmoid(dist["pitch_logits"]), tf.float32)
        if self.head != "vocab":
            return bern_chord, None, tf.zeros(tf.shape(u)[:1], tf.bool)
        # a block, then a token within it: two small softmaxes instead of one large
        block = inverse_cdf_draw(tf.exp(dist["block_logp"]), u[:, 0])
        within = within_block_logp(dist["query"], table, temperature, block)
        token = tf.minimum(block * self.block_size + inverse_cdf_draw(tf.exp(within), u[:, 1]), self.n_vocab)
        drawn = token < self.n_vocab
        chord = tf.where(drawn[:, None], tf.gather(padded_vocab, token), bern_chord)
        return chord, tf.where(drawn, token, self._vocab_index(chord, search)), drawn

    def _own_inputs(self, seqs: tf.Tensor, uniforms: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        """Seqs with each chord replaced, where ``uniforms[..., -1] < share``, by the policy's own draw.

        The draw at step ``t`` is from the policy's distribution given the
        real chords before ``t`` (one teacher-forced pass, no gradient), so
        the chord fed at step ``t + 1`` is one the policy might have written
        there. ``uniforms`` is (batch, n_steps, 3 + n_pitches).
        """
        seqs = tf.cast(seqs, tf.float32)
        one = tf.constant(1.0)
        dist = self._dist(tf.stop_gradient(self._hidden(seqs)), one)
        rows = tf.shape(seqs)[0] * seqs.shape[1]
        flat = {k: tf.reshape(v, tf.concat([[rows], tf.shape(v)[2:]], 0)) for k, v in dist.items()}
        u = tf.reshape(uniforms[..., :-1], [rows, 2 + self.n_pitches])
        own, _, _ = self._draw_chord(flat, u, self._token_table(), one, *self._draw_lookup())
        own = tf.reshape(own, tf.shape(seqs))
        return tf.where(uniforms[..., -1:] < share, own, seqs)

    def _sample_graph(self, uniforms: tf.Tensor, temperature: tf.Tensor) -> dict:
        n_steps = uniforms.shape[1]
        batch = tf.shape(uniforms)[0]
        table = self._token_table()
        padded_vocab, search = self._draw_lookup()

        def step(prev: tuple, elems: tuple) -> tuple:
            h, chord = prev[0], prev[1]
            u, start = elems
            h, _ = self.cell(tf.concat([chord, tf.fill([batch, 1], start)], axis=-1), h)
            dist = self._dist(h, temperature)
            chord, idx, drawn = self._draw_chord(dist, u, table, temperature, padded_vocab, search)
            terms = self._step_terms(dist, chord, idx, table, temperature)
            value = self.value_out(h)[:, 0] if self.has_value_head else tf.zeros_like(terms["log_prob"])
            return h, chord, terms["log_prob"], terms["entropy"], drawn, value

        zeros = tf.zeros((batch,))
        first = (tf.zeros((batch, self.hidden_size)), tf.zeros((batch, self.n_pitches)), zeros, zeros,
                 tf.zeros((batch,), tf.bool), zeros)
        # a loop in the graph rather than unrolled, so tracing and compiling cost the same at any length;
        # step 0 reads the empty chord with the start flag
        steps = tf.scan(step, (tf.transpose(uniforms, [1, 0, 2]), tf.one_hot(0, n_steps)), initializer=first)
        _, chords, log_probs, entropies, from_vocab, values = (tf.transpose(a, [1, 0, 2][: len(a.shape)])
                                                               for a in steps)
        out = {"seqs": chords, "log_probs": log_probs, "entropies": entropies, "from_vocab": from_vocab}
        if self.has_value_head:
            out["values"] = values
        return out

    def _compiled(self, key: tuple, fn: Any) -> Any:
        if key not in self._fns:
            self._fns[key] = tf.function(fn, jit_compile=self.jit_compile)
        return self._fns[key]

    def sample(
        self,
        n: int,
        rng: int | np.random.Generator | None,
        *,
        n_steps: int,
        temperature: float = 1.0,
    ) -> PolicySample:
        """Sample ``n`` episodes of ``n_steps`` chords.

        Parameters
        ----------
        n : int
            Batch size.
        rng : int, np.random.Generator or None
            Source of every random draw (uniforms of shape
            ``(n, n_steps, 2 + n_pitches)`` are drawn from it).
        n_steps : int
            Chords per episode.
        temperature : float
            Logits are divided by it (< 1: more conservative, > 1: more varied).

        Returns
        -------
        sample : PolicySample
        """
        n, n_steps = _positive_int(n, "n"), _positive_int(n_steps, "n_steps")
        temperature = _positive_float(temperature, "temperature")
        uniforms = as_rng(rng).random((n, n_steps, 2 + self.n_pitches), dtype=np.float32)
        fn = self._compiled(("sample",), self._sample_graph)
        out = fn(tf.constant(uniforms), tf.constant(temperature, tf.float32))
        return PolicySample(
            seqs=out["seqs"].numpy(),
            log_probs=out["log_probs"].numpy(),
            entropies=out["entropies"].numpy(),
            from_vocab=out["from_vocab"].numpy(),
            values=out["values"].numpy() if self.has_value_head else None,
        )

    # ---- teacher-forced evaluation --------------------------------------------------
    def _evaluate(self, seqs: np.ndarray, temperature: float, exact: bool = False) -> dict:
        seqs = check_seqs(seqs, n_pitches=self.n_pitches, name="seqs")
        temperature = _positive_float(temperature, "temperature")

        def forward(s, idx, tau):
            out = self._forward(s, tau, idx, exact=exact)
            keep = ("log_prob", "entropy", "pitch_logits", "token_logp", "exact_entropy", "value")
            return {k: out[k] for k in keep if k in out}

        fn = self._compiled(("forward", exact), forward)
        out = fn(tf.constant(seqs), tf.constant(self._lookup(seqs)), tf.constant(temperature, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    def log_prob(self, seqs: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
        """Teacher-forced log-probability (nats) of every step's chord.

        Parameters
        ----------
        seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        temperature : float

        Returns
        -------
        log_probs : np.ndarray, shape=(batch, n_steps), dtype=float32
            Exact ``log p(seqs[:, t] | seqs[:, :t])``; sums over steps give
            the log-probability of each seq.
        """
        return self._evaluate(seqs, temperature)["log_prob"]

    def entropy(self, seqs: np.ndarray, *, temperature: float = 1.0, exact: bool = False) -> np.ndarray:
        """Entropy (nats) of each step's distribution given the seq's earlier chords, (batch, n_steps).

        ``exact=False`` gives the quantity the training step uses (for the
        vocab head, the estimate of the module docs, which takes the
        within-block entropy in the block of the step's own chord); ``exact``
        the full entropy of (branch, chord), at the cost of a pass over the
        whole vocabulary.
        """
        out = self._evaluate(seqs, temperature, exact=exact)
        return out["exact_entropy"] if exact else out["entropy"]

    def value(self, seqs: np.ndarray) -> np.ndarray:
        """Value estimate of each step (batch, n_steps), from the chords before it."""
        if not self.has_value_head:
            raise MusicRLError("this policy has no value head (value_head=False)")
        return self._evaluate(seqs, 1.0)["value"]

    def step_probs(self, seqs: np.ndarray, *, temperature: float = 1.0) -> dict[str, np.ndarray]:
        """Parameters of each step's distribution given the seq's earlier chords.

        Returns
        -------
        probs : dict
            ``"pitch_probs"`` (batch, n_steps, n_pitches): the Bernoulli
            probabilities; for the vocab head also ``"token_probs"``
            (batch, n_steps, n_vocab + 1), the last column being ``<other>``.
        """
        out = self._evaluate(seqs, temperature, exact=True)
        probs = {"pitch_probs": 1.0 / (1.0 + np.exp(-out["pitch_logits"]))}
        if "token_logp" in out:
            probs["token_probs"] = np.exp(out["token_logp"])
        return probs

    def vocab_coverage(self, seqs: np.ndarray) -> float:
        """Share of the chords of ``seqs`` this policy draws as vocabulary chords (0 for 'bernoulli')."""
        if self.head != "vocab":
            check_seqs(seqs, n_pitches=self.n_pitches)
            return 0.0
        return vocab_coverage(self.vocab, seqs)


def _check_policy_settings(n_pitches: Any, head: Any, hidden_size: Any, embed_size: Any) -> None:
    for arg, value in (("n_pitches", n_pitches), ("hidden_size", hidden_size), ("embed_size", embed_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MusicRLError(f"{arg} must be a positive int, got {value!r}")
    if head not in POLICY_HEADS:
        raise MusicRLError(f"policy head must be one of {POLICY_HEADS}, got {head!r}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MusicRLError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _unit_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value <= 1:
        raise MusicRLError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        np.isfinite(value) and value > 0
    ):
        raise MusicRLError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def build_policy(cfg: Any, vocab: np.ndarray | None = None) -> ChordPolicy:
    """The policy a :class:`~musicrl.config.Config` describes.

    Parameters
    ----------
    cfg : Config
        Reads ``n_pitches``, ``policy_head``, ``policy_hidden``,
        ``policy_embed``, ``value_head`` and ``policy_jit_compile``.
    vocab : np.ndarray, optional
        Chord vocabulary (required for ``policy_head='vocab'``), e.g.
        ``build_chord_vocab(real_seqs, **vocab_kwargs(cfg))``, or the one
        saved with a run (``policy.vocab``).
    """
    return ChordPolicy(
        cfg.n_pitches,
        head=cfg.policy_head,
        vocab=vocab if cfg.policy_head == "vocab" else None,
        hidden_size=cfg.policy_hidden,
        embed_size=cfg.policy_embed,
        value_head=cfg.value_head,
        jit_compile=cfg.policy_jit_compile,
    )


def clone_policy(policy: ChordPolicy, *, trainable: bool = True) -> ChordPolicy:
    """A new policy with the same settings, vocabulary and weights.

    Use ``clone_policy(policy, trainable=False)`` for the frozen reference of
    the KL penalty; later updates of ``policy`` do not touch the clone.
    """
    if not isinstance(policy, ChordPolicy):
        raise MusicRLError(f"policy must be a ChordPolicy, got {type(policy).__name__}")
    twin = ChordPolicy.from_config(policy.get_config())
    twin.set_weights(policy.get_weights())
    twin.trainable = trainable
    return twin


# --------------------------------------------------------------------------------------
# losses and updates
# --------------------------------------------------------------------------------------


def _check_same_kind(policy: ChordPolicy, ref_policy: ChordPolicy) -> None:
    if not isinstance(ref_policy, ChordPolicy):
        raise MusicRLError(f"ref_policy must be a ChordPolicy, got {type(ref_policy).__name__}")
    if (ref_policy.head, ref_policy.n_pitches) != (policy.head, policy.n_pitches) or (
        policy.head == "vocab" and not np.array_equal(ref_policy.vocab, policy.vocab)
    ):
        raise MusicRLError(
            "ref_policy must have the same head, n_pitches and vocab as the policy (see clone_policy)"
        )


def policy_kl(
    policy: ChordPolicy, ref_policy: ChordPolicy, seqs: np.ndarray, *, exact: bool = False
) -> np.ndarray:
    """Per-step KL(policy || ref_policy) along given seqs (teacher forced).

    Parameters
    ----------
    policy, ref_policy : ChordPolicy
        Same head, pitches and vocabulary.
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        The prefixes at which the two step distributions are compared, and
        (for the vocab head's estimate) the chords whose blocks are used.
    exact : bool
        False: the KL that :func:`reinforce_step` penalizes (for the vocab
        head the estimate of the module docs); True: the full KL of the
        (branch, chord) distributions, at the cost of a pass over the whole
        vocabulary.

    Returns
    -------
    kl : np.ndarray, shape=(batch, n_steps), dtype=float32
        KL in nats; >= 0 (up to rounding), and 0 for identical policies.
    """
    _check_same_kind(policy, ref_policy)
    seqs = check_seqs(seqs, n_pitches=policy.n_pitches, name="seqs")

    def kl_fn(s, idx):
        one = tf.constant(1.0)
        out = policy._forward(s, one, idx, exact=exact)
        return step_kl(out, ref_policy._forward(s, one, idx, exact=exact), policy.head, exact)

    fn = policy._compiled(("kl", id(ref_policy), exact), kl_fn)
    return fn(tf.constant(seqs), tf.constant(policy._lookup(seqs))).numpy()


def _ensure_built(optimizer: keras.optimizers.Optimizer, policy: ChordPolicy) -> None:
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise MusicRLError(f"optimizer must be a keras optimizer, got {type(optimizer).__name__}")
    if not optimizer.built:
        optimizer.build(policy.trainable_variables)


def _clip(clip_norm: float | None) -> float | None:
    if clip_norm is None or clip_norm == 0:
        return None
    return _positive_float(clip_norm, "clip_norm")


def _apply(policy: ChordPolicy, optimizer: Any, tape: tf.GradientTape, loss: tf.Tensor, clip: Any) -> tf.Tensor:
    variables = policy.trainable_variables
    grads = tape.gradient(loss, variables)
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    grads = [g for g, _ in pairs]
    if clip is None:
        norm = tf.linalg.global_norm(grads)
    else:
        grads, norm = tf.clip_by_global_norm(grads, clip)
    optimizer.apply_gradients(zip(grads, [v for _, v in pairs]))
    return norm


def pretrain_step(
    policy: ChordPolicy,
    optimizer: keras.optimizers.Optimizer,
    real_seqs: np.ndarray,
    *,
    clip_norm: float | None = None,
    own_share: float = 0.0,
    dropout: float = 0.0,
    rng: int | np.random.Generator | None = None,
) -> float:
    """One maximum-likelihood (teacher-forced) update on a batch of real seqs.

    Parameters
    ----------
    policy : ChordPolicy
    optimizer : keras.optimizers.Optimizer
        Keeps its state across calls; use one optimizer per policy.
    real_seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    clip_norm : float or None
        Clip gradients to this global norm (None or 0: no clipping).
    own_share : float in [0, 1]
        Share of the chords fed to the policy that are its own: each real
        chord is replaced, with this probability, by one the policy draws at
        that step given the real chords before it, while the targets stay
        the real chords (parallel scheduled sampling). The policy then
        learns to go on from a prefix that holds its own slips, as it must
        when it writes a piece. 0: plain teacher forcing.
    dropout : float in [0, 1)
        Dropout rate on the GRU states the heads read (inverted dropout,
        not on the recurrence): a regulariser against learning the training
        windows by heart. Sampling and the policy-gradient step never drop.
    rng : int, np.random.Generator or None
        Source of the random draws (used only when ``own_share > 0`` or
        ``dropout > 0``): uniforms of shape ``(batch, n_steps, 3 + n_pitches)``
        for the own draws, then ``(batch, n_steps, hidden_size)`` for the dropout.

    Returns
    -------
    nll : float
        Mean negative log-likelihood in nats per chord step, before the update
        (of the real chords given the fed ones).
    """
    seqs = check_seqs(real_seqs, n_pitches=policy.n_pitches, name="real_seqs")
    clip = _clip(clip_norm)
    share = _unit_float(own_share, "own_share")
    rate = _unit_float(dropout, "dropout")
    if rate == 1:
        raise MusicRLError("dropout must be below 1 (a rate of 1 drops every unit), got 1")
    _ensure_built(optimizer, policy)

    def step(s, idx, clip_value, uniforms, share_value, drop_uniforms, rate_value):
        fed = None if uniforms is None else policy._own_inputs(s, uniforms, share_value)
        drop = None if drop_uniforms is None else (rate_value, drop_uniforms)
        with tf.GradientTape() as tape:
            out = policy._forward(s, tf.constant(1.0), idx, inputs=fed, dropout=drop)
            nll = -tf.reduce_mean(out["log_prob"])
        _apply(policy, optimizer, tape, nll, None if clip is None else clip_value)
        return nll

    own, drops = share > 0, rate > 0
    fn = policy._compiled(("pretrain", id(optimizer), clip is None, own, drops), step)
    idx = tf.constant(policy._lookup(seqs))
    uniforms = drop_uniforms = None
    if own or drops:
        rng = as_rng(rng)
    if own:
        uniforms = tf.constant(rng.random((*seqs.shape[:2], 3 + policy.n_pitches), dtype=np.float32))
    if drops:
        drop_uniforms = tf.constant(rng.random((*seqs.shape[:2], policy.hidden_size), dtype=np.float32))
    return float(fn(tf.constant(seqs), idx, tf.constant(clip or 0.0, tf.float32), uniforms,
                    tf.constant(share, tf.float32), drop_uniforms, tf.constant(rate, tf.float32)))


def reinforce_step(
    policy: ChordPolicy,
    optimizer: keras.optimizers.Optimizer,
    gen_seqs: np.ndarray,
    advantages: np.ndarray,
    *,
    entropy_coef: float = 0.0,
    kl_coef: float = 0.0,
    ref_policy: ChordPolicy | None = None,
    returns: np.ndarray | None = None,
    value_coef: float = 0.5,
    clip_norm: float | None = None,
    old_log_prob: np.ndarray | None = None,
    clip_ratio: float = 0.2,
) -> dict[str, float]:
    """One policy-gradient update: REINFORCE's, or one of PPO's clipped passes given ``old_log_prob``.

    Both add an entropy bonus and a KL penalty.

    The loss, averaged over batch and steps, is::

        -A_t log pi(c_t | c_<t) - entropy_coef * H_t + kl_coef * KL_t
        [+ value_coef * (V_t - G_t)**2]

    with ``H_t`` and ``KL_t`` (KL(pi || pi_ref)) the per-step entropy and KL
    of the (branch, chord) distributions at the episode's own prefixes: exact
    for the Bernoulli head, the block estimates of the module docs for the
    vocab head. Log-probs are exact, recomputed at temperature 1 under teacher
    forcing, so episodes must have been sampled at temperature 1 for the
    gradient to be on-policy.

    Given ``old_log_prob`` (the log-probs of the policy that sampled the
    episodes), the first term becomes PPO's clipped surrogate
    ``-min(r_t A_t, clip(r_t, 1 - clip_ratio, 1 + clip_ratio) A_t)`` with
    ``r_t = pi(c_t | c_<t) / pi_old(c_t | c_<t)``, so that several updates
    can reuse one batch without moving far from the policy that played it.
    At ``r_t = 1`` (the first update) its gradient is REINFORCE's.

    Parameters
    ----------
    policy : ChordPolicy
    optimizer : keras.optimizers.Optimizer
    gen_seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        The sampled episodes.
    advantages : np.ndarray, shape=(batch, n_steps) or (batch,)
        Advantage of each step (e.g. ``reward.advantages(returns, baseline)``);
        one value per episode is used for all its steps.
    entropy_coef : float
        Weight of the entropy bonus (>= 0).
    kl_coef : float
        Weight of the KL penalty (>= 0; > 0 needs ``ref_policy``).
    ref_policy : ChordPolicy, optional
        Frozen reference (e.g. ``clone_policy(pretrained, trainable=False)``).
        When given, the KL is reported even with ``kl_coef=0``.
    returns : np.ndarray, shape=(batch, n_steps), optional
        Targets of the value head (needs ``value_head=True``).
    value_coef : float
        Weight of the value loss.
    clip_norm : float or None
        Clip gradients to this global norm (None or 0: no clipping).
    old_log_prob : np.ndarray, shape=(batch, n_steps), optional
        Per-step log-probs (nats) of the chords under the policy that
        sampled them (e.g. ``policy.log_prob(gen_seqs)`` before the first
        update); turns on the clipped surrogate.
    clip_ratio : float
        PPO's clip range of the probability ratio, in (0, 1).

    Returns
    -------
    stats : dict of float
        ``loss``, ``pg_loss``, ``entropy`` (mean per step), ``kl`` (mean per
        step, 0 without a reference), ``grad_norm`` (before clipping),
        ``value_loss`` when ``returns`` is given, and ``clip_frac`` (share of
        steps whose ratio is outside the clip range) with ``old_log_prob``.
    """
    seqs = check_seqs(gen_seqs, n_pitches=policy.n_pitches, name="gen_seqs")
    shape = seqs.shape[:2]
    adv = _step_advantages(advantages, shape)
    entropy_coef = _non_negative(entropy_coef, "entropy_coef")
    kl_coef = _non_negative(kl_coef, "kl_coef")
    value_coef = _non_negative(value_coef, "value_coef")
    if kl_coef > 0 and ref_policy is None:
        raise MusicRLError("kl_coef > 0 needs a ref_policy (e.g. clone_policy(policy, trainable=False))")
    if ref_policy is not None:
        _check_same_kind(policy, ref_policy)
    use_value = returns is not None
    ret = _value_targets(policy, returns, shape) if use_value else np.zeros(shape, np.float32)
    use_ppo = old_log_prob is not None
    if use_ppo:
        old = _finite_per_step(old_log_prob, shape, "old_log_prob")
        clip_ratio = _positive_float(clip_ratio, "clip_ratio")
        if clip_ratio >= 1:
            raise MusicRLError(f"clip_ratio must be in (0, 1), got {clip_ratio}")
    else:
        old = np.zeros(shape, np.float32)
    clip = _clip(clip_norm)
    _ensure_built(optimizer, policy)

    def step(s, idx, a, g, old_lp, eps, ent_c, kl_c, val_c, clip_value):
        with tf.GradientTape() as tape:
            out = policy._forward(s, tf.constant(1.0), idx)
            if use_ppo:
                pg, clip_frac = ppo_clipped_loss(out["log_prob"], old_lp, a, eps)
            else:
                pg = reinforce_loss(out["log_prob"], a)
            loss, stats = _regularized_loss(policy, ref_policy, out, s, idx, pg, ent_c, kl_c)
            if use_ppo:
                stats["clip_frac"] = clip_frac
            if use_value:
                vloss = tf.reduce_mean(tf.square(out["value"] - g))
                loss = loss + val_c * vloss
                stats["value_loss"] = vloss
        stats["grad_norm"] = _apply(policy, optimizer, tape, loss, None if clip is None else clip_value)
        stats["loss"] = loss
        return stats

    key = ("reinforce", id(optimizer), id(ref_policy) if ref_policy is not None else None, use_value, clip is None,
           use_ppo)
    fn = policy._compiled(key, step)
    out = fn(
        tf.constant(seqs), tf.constant(policy._lookup(seqs)), tf.constant(adv), tf.constant(ret),
        tf.constant(old), tf.constant(clip_ratio, tf.float32), tf.constant(entropy_coef, tf.float32),
        tf.constant(kl_coef, tf.float32), tf.constant(value_coef, tf.float32), tf.constant(clip or 0.0, tf.float32),
    )
    return {k: float(v) for k, v in out.items()}


def reinforce_loss(log_prob: tf.Tensor, adv: tf.Tensor) -> tf.Tensor:
    """REINFORCE's surrogate ``-mean(A_t log pi(c_t | c_<t))``: its gradient is the policy gradient.

    Parameters
    ----------
    log_prob, adv : tf.Tensor, shape=(batch, n_steps), float32
        Log-probs (nats) of the played chords under the policy being updated, and their advantages.

    Returns
    -------
    loss : tf.Tensor, scalar
    """
    return -tf.reduce_mean(adv * log_prob)


def ppo_clipped_loss(
    log_prob: tf.Tensor, old_log_prob: tf.Tensor, adv: tf.Tensor, clip_ratio: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """PPO's clipped surrogate ``-mean(min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t))``.

    Parameters
    ----------
    log_prob, old_log_prob, adv : tf.Tensor, shape=(batch, n_steps), float32
        Log-probs (nats) of the played chords under the policy being updated
        and under the one that played them (``r_t`` is the ratio of their
        probabilities), and the advantages.
    clip_ratio : tf.Tensor, scalar
        ``eps``, in (0, 1).

    Returns
    -------
    loss : tf.Tensor, scalar
        Its gradient at ``r_t = 1`` is REINFORCE's.
    clip_frac : tf.Tensor, scalar
        Share of steps whose ratio is outside ``[1 - eps, 1 + eps]``.
    """
    ratio = tf.exp(log_prob - old_log_prob)
    clipped = tf.clip_by_value(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    loss = -tf.reduce_mean(tf.minimum(ratio * adv, clipped * adv))
    clip_frac = tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > clip_ratio, tf.float32))
    return loss, clip_frac


def _regularized_loss(
    policy: ChordPolicy, ref_policy: ChordPolicy | None, out: dict, seqs: tf.Tensor, idx: tf.Tensor,
    pg: tf.Tensor, entropy_coef: tf.Tensor, kl_coef: tf.Tensor,
) -> tuple[tf.Tensor, dict]:
    """``pg - entropy_coef * H + kl_coef * KL`` and its terms, for a teacher-forced pass ``out`` over ``seqs``."""
    ent = tf.reduce_mean(out["entropy"])
    loss = pg - entropy_coef * ent
    if ref_policy is not None:
        ref = ref_policy._forward(seqs, tf.constant(1.0), idx)
        ref = {k: tf.stop_gradient(v) for k, v in ref.items()}
        kl = tf.reduce_mean(step_kl(out, ref, policy.head))
        loss = loss + kl_coef * kl
    else:
        kl = tf.constant(0.0)
    return loss, {"pg_loss": pg, "entropy": ent, "kl": kl}


def _step_advantages(advantages: Any, shape: tuple[int, int]) -> np.ndarray:
    """Advantages as finite float32 (batch, n_steps); one per episode is repeated over its steps."""
    adv = np.asarray(advantages, dtype=np.float32)
    if adv.shape == shape[:1]:
        adv = np.repeat(adv[:, None], shape[1], axis=1)
    if adv.shape != shape:
        raise MusicRLError(
            f"advantages must have shape (batch, n_steps) = {shape} or (batch,), got {np.shape(advantages)}"
        )
    if not np.all(np.isfinite(adv)):
        raise MusicRLError("advantages contain NaN or inf")
    return adv


def _value_targets(policy: ChordPolicy, returns: Any, shape: tuple[int, int]) -> np.ndarray:
    if not policy.has_value_head:
        raise MusicRLError("returns were given but the policy has no value head (value_head=False)")
    return _finite_per_step(returns, shape, "returns")


def _finite_per_step(values: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise MusicRLError(f"{name} must be finite with shape {shape}, got shape {arr.shape}")
    return arr


KL_SCHEDULES = ("constant", "linear", "cosine")


def kl_weight(iteration: int, *, start: float, end: float, iterations: int, schedule: str = "constant") -> float:
    """The KL penalty's weight at an adversarial iteration, moving from ``start`` to ``end``.

    Parameters
    ----------
    iteration : int
        Adversarial iteration, counting from 1.
    start, end : float
        Weights at iteration 1 and from iteration ``iterations + 1`` on (>= 0).
    iterations : int
        Length of the move (>= 1).
    schedule : str
        'constant' (always ``start``), 'linear', or 'cosine' (half a cosine:
        slow at both ends).

    Returns
    -------
    weight : float
    """
    start = _non_negative(start, "start")
    end = _non_negative(end, "end")
    if schedule not in KL_SCHEDULES:
        raise MusicRLError(f"schedule must be one of {KL_SCHEDULES}, got {schedule!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise MusicRLError(f"iterations must be an int >= 1, got {iterations!r}")
    if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) or iteration < 1:
        raise MusicRLError(f"iteration must be an int >= 1, got {iteration!r}")
    if schedule == "constant":
        return start
    t = min(1.0, (iteration - 1) / iterations)
    if schedule == "cosine":
        t = 0.5 - 0.5 * np.cos(np.pi * t)
    return float(start + (end - start) * t)


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        np.isfinite(value) and value >= 0
    ):
        raise MusicRLError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
