"""A Gymnasium environment that writes one chord per step, rewarded by D, and the batched path.

:class:`MusicEnv` is for stepping by hand (a researcher playing the chords of
a real piece and watching D's judgement over time) and for RL libraries;
:func:`rollout_rewards` is the batched path a trainer calls. Both give the
same rewards for the same chords.

Incremental audio
-----------------
The additive synthesizer (``synth.seq_to_wav``) plays every note of step
``t`` within step ``t``'s own samples ``[t * step_samples, (t + 1) * step_samples)``,
so a step's audio depends on its chord alone, and the mel frames are
computed from their own window of samples with a fixed dB reference. A step
therefore synthesizes only its chord (``seq_to_wav`` of a one-step seq) and
computes only the mel frames that become final (``mel.wav_to_mel`` on a
fixed-length slice of the audio with ``ceil(n_fft / 2 / hop)`` frames of
context); nothing is recomputed. After step ``t`` the final frames are those
whose window ends by the end of step ``t`` (up to D's read frame
``discriminator.step_frame_indices()[t]``), and after the last step every
frame of the clip. D then reads the mel so far with the later frames at the
floor ``-top_db`` (or the seq so far with silent later steps); D is causal,
so its logit for step ``t`` is the one it gives the finished piece.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from .discriminator import d_input_kind, d_inputs, predict_step_logits, step_frame_indices, step_logits_fn
from ..config import Config
from ..errors import MusicRLError
from .reward import logits_to_potentials, logits_to_rewards, reward_kwargs

__all__ = ["MusicEnv", "rollout_rewards", "rollout_step_logits"]


def rollout_step_logits(seqs: Any, discriminator: Any, cfg, *, mels: Any = None) -> np.ndarray:
    """D's per-step logits for a batch of finished pieces.

    Parameters
    ----------
    seqs : array-like, shape=(batch, n_steps, n_pitches)
        Multi-hot chords.
    discriminator : DiscriminatorTrainer, keras.Model or callable
        See ``discriminator.predict_step_logits``.
    cfg : Config
    mels : array-like, shape=(batch, n_frames, n_mels), optional
        The mels of ``seqs`` when already computed (``mel.seq_to_mel``).

    Returns
    -------
    step_logits : np.ndarray, shape=(batch, n_steps), dtype=float32
    """
    return predict_step_logits(discriminator, d_inputs(seqs, cfg, mels=mels), cfg)


def rollout_rewards(seqs: Any, discriminator: Any, cfg, *, mels: Any = None) -> np.ndarray:
    """Rewards of every step for a batch of finished pieces (the trainer's path).

    ``seqs -> seq_to_mel -> D -> logits_to_rewards(**reward_kwargs(cfg))``.

    Parameters
    ----------
    seqs, discriminator, cfg, mels
        As in :func:`rollout_step_logits`.

    Returns
    -------
    rewards : np.ndarray, shape=(batch, n_steps), dtype=float32
    """
    logits = rollout_step_logits(seqs, discriminator, cfg, mels=mels)
    return logits_to_rewards(logits, **reward_kwargs(cfg))


class MusicEnv(gym.Env):
    """Write a piece one chord per step; D's judgement is the reward.

    Registered with Gymnasium as ``musicrl.ENV_ID`` (``"musicrl/Chords-v0"``)
    when ``musicrl`` is imported; ``gymnasium.make(ENV_ID, cfg=cfg,
    discriminator=d, obs_frames=...)`` passes its keywords here, and
    ``gymnasium.make_vec`` or ``gymnasium.vector.SyncVectorEnv`` run several.

    Parameters
    ----------
    cfg : Config, optional
        Grid, synthesis, mel and reward settings (``reward_kind``,
        ``reward_dense``, ``reward_prefixes``, ``reward_clip``); an episode
        has ``cfg.n_steps`` steps. Default: ``Config()``.
    discriminator : DiscriminatorTrainer, keras.Model, callable or None
        Anything ``discriminator.predict_step_logits`` accepts: a callable maps
        a float32 batch of D inputs (``d_inputs``) to ``(batch, n_steps)``
        logits. With None every reward is 0 and ``info`` carries no logits.
    obs_frames : int
        Mel frames in the observation window (the latest ones).

    Spaces
    ------
    action : MultiBinary(n_pitches)
        The chord of this step (column ``p`` is MIDI pitch ``lowest_pitch + p``).
    observation : Dict
        ``'mel'``: Box ``(obs_frames, n_mels)`` float32, the last final mel
        frames, the floor ``-top_db`` before the piece starts; ``'seq'``:
        MultiBinary ``(n_steps, n_pitches)``, the chords so far (later steps
        0); ``'step'``: Discrete ``n_steps + 1``, chords written so far.

    Rewards are those of ``reward.logits_to_rewards`` for D's per-step logits:
    at the end only (zeros before), dense, or for every prefix. ``info``
    holds ``'step'`` and, with a discriminator, ``'step_logit'``,
    ``'prob_real'`` (sigmoid of the logit) and ``'potential'`` of this step,
    and at the end ``'step_logits'`` of the whole episode.

    An episode always ends, ``terminated``, after ``cfg.n_steps`` chords, and
    ``spec.max_episode_steps`` (set by ``gymnasium.make``) is that length.
    The spec keeps D by reference: environments remade from it, or from a
    copy of it, share the one D instead of copying its weights.
    """

    metadata = {"render_modes": []}

    def __init__(self, cfg: Config | None = None, discriminator: Any = None, *, obs_frames: int = 64) -> None:
        super().__init__()
        if cfg is None:
            cfg = Config()
        if not isinstance(cfg, Config):
            raise MusicRLError(f"cfg must be a musicrl Config, got {type(cfg).__name__}")
        if isinstance(discriminator, _SharedReference):
            discriminator = discriminator.value
        if isinstance(obs_frames, bool) or not isinstance(obs_frames, (int, np.integer)) or obs_frames < 1:
            raise MusicRLError(f"obs_frames must be an int >= 1, got {obs_frames!r}")
        self._spec: EnvSpec | None = None
        self.cfg = cfg
        self.discriminator = discriminator
        self._predict = None if discriminator is None else step_logits_fn(discriminator)
        self.obs_frames = int(obs_frames)
        self._reward_kwargs = reward_kwargs(cfg)
        n_steps, n_pitches = cfg.n_steps, cfg.n_pitches
        self.floor = -float(cfg.top_db)
        self.action_space = spaces.MultiBinary(n_pitches)
        self.observation_space = spaces.Dict(
            {
                # the mel stays at or below about 0 dB; the upper bound is generous
                "mel": spaces.Box(self.floor, float(cfg.top_db), (self.obs_frames, cfg.n_mels), np.float32),
                "seq": spaces.MultiBinary((n_steps, n_pitches)),
                "step": spaces.Discrete(n_steps + 1),
            }
        )
        self._plan_mel_slices()
        self._t = 0
        self._reset_buffers()

    # incremental mel ---------------------------------------------------------
    def _plan_mel_slices(self) -> None:
        cfg = self.cfg
        hop, half = cfg.hop_length, cfg.n_fft // 2
        read = step_frame_indices(
            n_steps=cfg.n_steps, step_samples=cfg.step_samples, hop_length=hop, n_fft=cfg.n_fft
        )
        # frames final after step t: up to the step's read frame; after the last step, all
        self._final = read.copy()
        self._final[-1] = cfg.n_frames - 1
        first = np.concatenate([[0], self._final[:-1] + 1])
        context = -(-half // hop)
        self._slice_start = np.maximum(0, first - context)
        self._first = first
        span = int((self._final - self._slice_start).max())
        # every slice has the same length, so the mel is compiled once
        self._slice_len = span * hop + half
        self._wav = np.zeros(cfg.n_samples + self._slice_len + hop, dtype=np.float32)

    def _reset_buffers(self) -> None:
        cfg = self.cfg
        self._wav[:] = 0.0
        self._mel = np.full((cfg.n_frames, cfg.n_mels), self.floor, dtype=np.float32)
        self._seq = np.zeros((cfg.n_steps, cfg.n_pitches), dtype=np.float32)
        self._n_final = 0
        self._logits: list[float] = []

    def _add_chord(self, t: int, chord: np.ndarray) -> None:
        from ..audio.mel import wav_to_mel
        from ..audio.synth import seq_to_wav

        cfg = self.cfg
        S, hop = cfg.step_samples, cfg.hop_length
        self._seq[t] = chord
        self._wav[t * S : (t + 1) * S] = seq_to_wav(chord[None, None], **cfg.synth_kwargs())[0]
        s = int(self._slice_start[t])
        seg = self._wav[s * hop : s * hop + self._slice_len]
        mel = wav_to_mel(seg, **cfg.mel_kwargs())[0]
        lo, hi = int(self._first[t]), int(self._final[t])
        self._mel[lo : hi + 1] = mel[lo - s : hi - s + 1]
        self._n_final = hi + 1

    def _obs(self) -> dict[str, Any]:
        n = self._n_final
        window = np.full((self.obs_frames, self.cfg.n_mels), self.floor, dtype=np.float32)
        take = min(n, self.obs_frames)
        if take:
            window[-take:] = self._mel[n - take : n]
        return {"mel": window, "seq": self._seq.astype(np.int8), "step": int(self._t)}

    # gymnasium API ---------------------------------------------------------------
    @property
    def spec(self) -> EnvSpec | None:
        """How ``gymnasium.make`` made this environment; None when built directly."""
        return self._spec

    @spec.setter
    def spec(self, spec: EnvSpec | None) -> None:
        if spec is not None:
            # the registered id cannot know the length, which is a setting
            kwargs = dict(spec.kwargs)
            if kwargs.get("discriminator") is not None and not isinstance(kwargs["discriminator"], _SharedReference):
                kwargs["discriminator"] = _SharedReference(kwargs["discriminator"])
            spec = dataclasses.replace(spec, max_episode_steps=self.cfg.n_steps, kwargs=kwargs)
        self._spec = spec

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an empty piece. Nothing in the environment is random; ``seed`` seeds ``np_random``."""
        super().reset(seed=seed)
        self._t = 0
        self._reset_buffers()
        return self._obs(), {"step": 0}

    def step(self, action):
        """Play one chord; see the class docs for the reward and ``info``."""
        if self._t >= self.cfg.n_steps:
            raise MusicRLError("the piece is finished: call reset() before stepping again")
        chord = np.asarray(action)
        if chord.shape != (self.cfg.n_pitches,):
            raise MusicRLError(f"action must be a chord of shape ({self.cfg.n_pitches},), got shape {chord.shape}")
        if not (np.issubdtype(chord.dtype, np.number) or chord.dtype == bool) or not np.all(
            (chord == 0) | (chord == 1)
        ):
            raise MusicRLError("action must be multi-hot (only 0 and 1)")
        t = self._t
        self._add_chord(t, chord.astype(np.float32))
        self._t += 1
        terminated = self._t == self.cfg.n_steps
        info: dict[str, Any] = {"step": t}
        reward = 0.0
        if self._predict is not None:
            x = self._seq if d_input_kind(self.cfg) == "seq" else self._mel
            logits = predict_step_logits(self._predict, x[None].copy())
            self._logits.append(float(logits[0, t]))
            so_far = np.asarray([self._logits], dtype=np.float32)
            kw = self._reward_kwargs
            if kw["dense"] or kw["prefixes"] or terminated:
                reward = float(logits_to_rewards(so_far, **kw, episode_steps=self.cfg.n_steps)[0, -1])
            info["step_logit"] = self._logits[-1]
            info["prob_real"] = float(0.5 * (1.0 + np.tanh(0.5 * self._logits[-1])))
            info["potential"] = float(logits_to_potentials(so_far[:, -1:], kind=kw["kind"], clip=kw["clip"])[0, 0])
            if terminated:
                info["step_logits"] = so_far[0].copy()
        return self._obs(), reward, terminated, False, info

    # for researchers ---------------------------------------------------------------
    def play(self, seq: Any) -> dict[str, np.ndarray]:
        """Reset, play every chord of ``seq`` and collect what D said at each step.

        Parameters
        ----------
        seq : array-like, shape=(n_steps, n_pitches)
            A whole piece (e.g. ``vectorize.midi_to_seq`` of a real piece, cut to ``n_steps``).

        Returns
        -------
        out : dict of np.ndarray, shape=(n_steps,)
            ``'rewards'`` and, with a discriminator, ``'step_logits'`` and ``'prob_real'``.
        """
        arr = np.asarray(seq)
        want = (self.cfg.n_steps, self.cfg.n_pitches)
        if arr.shape != want:
            raise MusicRLError(f"seq must have shape {want}, got shape {arr.shape}")
        self.reset()
        rewards, logits, probs = [], [], []
        for chord in arr:
            _, r, _, _, info = self.step(chord)
            rewards.append(r)
            if "step_logit" in info:
                logits.append(info["step_logit"])
                probs.append(info["prob_real"])
        out = {"rewards": np.asarray(rewards, dtype=np.float32)}
        if logits:
            out["step_logits"] = np.asarray(logits, dtype=np.float32)
            out["prob_real"] = np.asarray(probs, dtype=np.float32)
        return out

    @property
    def mel(self) -> np.ndarray:
        """The mel of the piece so far, ``(n_frames, n_mels)``; frames not yet final at the floor."""
        return self._mel.copy()


class _SharedReference:
    """Holds an object that deep copies keep instead of copying (D in an env's spec).

    Gymnasium deep-copies a spec's keywords whenever a wrapper reports the spec
    or an environment is remade from it; a copy of D would be a second set of
    weights that training never updates.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict) -> "_SharedReference":
        return self

    def __repr__(self) -> str:
        return f"shared({type(self.value).__name__})"
