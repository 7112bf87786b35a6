"""Blind listening tests of a run's music: sessions, answers and their tallies.

A listening test puts two sets of seqs of the same length side by side
(:class:`Study`). In the ``'identify'`` mode one set is real held-out music
and the listener is asked which of two clips is the real chorale (the "is it
Bach?" test of BachBot and DeepBach): 0.5 correct means the sets cannot be
told apart by ear. In the ``'prefer'`` mode two generated sets (the agent and
its pretrained-only policy, or the agents of two runs) are compared by
preference.

A session (:class:`ListeningSession`) is a fixed sequence of trials drawn
from its seed, each a pair of clips, one of each set, in random order, no clip
twice. It lives in ``<run>/listening/<session>.jsonl``: a header line (mode,
sets, their digest, seed, listener), then one line per answer, appended and
synced the moment it is given, so that a session is rebuilt from its file
after a reload or a restart. :func:`tally` and :func:`results_markdown`
summarise the answers per listener and pooled, with 95% Wilson intervals.

Everything here is pure or works on files; nothing imports TensorFlow. The
web server that plays the clips is :mod:`musicrl.evaluation.listen_server`;
:func:`listening_sets` is the one place that loads a run's sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MusicRLError
from ..music.vectorize import check_seqs
from ..seeding import as_rng
from ..store.runs import read_jsonl
from .intervals import wilson_interval

__all__ = [
    "LISTENING_DIR",
    "MAX_BODY_BYTES",
    "MODES",
    "QUESTIONS",
    "ListeningSession",
    "Study",
    "clip_id",
    "draw_trials",
    "is_session_id",
    "listening_sets",
    "listening_summary",
    "new_session_id",
    "parse_answer",
    "parse_listener",
    "read_sessions",
    "render_clip",
    "results_markdown",
    "sets_digest",
    "study_of_run",
    "tally",
]

#: Folder of a run that holds one ``<session>.jsonl`` per listening session.
LISTENING_DIR = "listening"
#: The two kinds of test: which clip is real, and which clip is preferred.
MODES = ("identify", "prefer")
#: The question the page asks in each mode.
QUESTIONS = {"identify": "Which one is the real chorale?", "prefer": "Which one do you prefer?"}
#: Largest request body accepted (an answer or a new session's listener name is a few dozen bytes).
MAX_BODY_BYTES = 512
MAX_LISTENER_CHARS = 40

_SESSION_ID_RE = re.compile(r"^[0-9a-f]{16}$")


# --------------------------------------------------------------------------
# what is compared


@dataclass(frozen=True, eq=False)
class Study:
    """Two sets of seqs a listening test compares.

    Parameters
    ----------
    mode : {'identify', 'prefer'}
        ``'identify'``: ``names[0]`` is the real set and the listener looks
        for its clip; ``'prefer'``: the listener picks the clip they prefer.
    names : tuple of str
        Labels of the two sets, e.g. ``('real', 'agent')`` or
        ``('pretrained', 'agent')``.
    sets : tuple of np.ndarray
        Each of shape ``(n_i, n_steps, n_pitches)``, multi-hot; both sets
        have the same ``n_steps`` and ``n_pitches``, so clips last as long.
    cfg : Config
        Tempo, grid, instrument and sample rate the clips are rendered with.
    """

    mode: str
    names: tuple[str, str]
    sets: tuple[np.ndarray, np.ndarray]
    cfg: Any

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise MusicRLError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if len(self.names) != 2 or len(self.sets) != 2:
            raise MusicRLError(f"a study compares two sets, got names {self.names!r} and {len(self.sets)} sets")
        if not all(isinstance(n, str) and n for n in self.names) or self.names[0] == self.names[1]:
            raise MusicRLError(f"names must be two different non-empty strings, got {self.names!r}")
        sets = tuple(check_seqs(s, name=f"set {n!r}", n_pitches=self.cfg.n_pitches)
                     for n, s in zip(self.names, self.sets))
        steps = [s.shape[1] for s in sets]
        if steps[0] != steps[1]:
            raise MusicRLError(f"both sets need clips of the same length, got {steps[0]} and {steps[1]} steps")
        if min(len(s) for s in sets) < 1:
            raise MusicRLError(f"each set needs at least one seq, got sizes {[len(s) for s in sets]}")
        object.__setattr__(self, "sets", sets)

    @property
    def digest(self) -> str:
        """:func:`sets_digest` of the study: a session only continues on the sets it was drawn from."""
        return sets_digest(self.mode, self.names, self.sets)


def sets_digest(mode: str, names: Sequence[str], sets: Sequence[np.ndarray]) -> str:
    """A 16-hex-digit fingerprint of a study's mode, set names and seqs."""
    h = hashlib.sha256(json.dumps([mode, list(names)]).encode())
    for seqs in sets:
        arr = np.ascontiguousarray(np.asarray(seqs) > 0, dtype=np.uint8)
        h.update(repr(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def draw_trials(n_a: int, n_b: int, *, n_trials: int, seed: int | np.random.Generator) -> np.ndarray:
    """The trials of a session: which clip of each set, and which one plays first.

    Parameters
    ----------
    n_a, n_b : int
        Sizes of the two sets.
    n_trials : int
        Trials, at most ``min(n_a, n_b)``: no clip is played twice.
    seed : int or np.random.Generator
        Randomness of the draw.

    Returns
    -------
    trials : np.ndarray, shape=(n_trials, 3), dtype=int64
        Per trial: the index into set a, the index into set b, and 1 when
        set a's clip is on the left (shown as A), else 0.
    """
    for name, value, low in (("n_a", n_a, 1), ("n_b", n_b, 1), ("n_trials", n_trials, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise MusicRLError(f"{name} must be an int >= {low}, got {value!r}")
    if n_trials > min(n_a, n_b):
        raise MusicRLError(f"n_trials must be at most the smaller set's size {min(n_a, n_b)} "
                           f"(no clip twice), got {n_trials}")
    rng = as_rng(seed)
    index_a = rng.permutation(n_a)[:n_trials]
    index_b = rng.permutation(n_b)[:n_trials]
    a_left = rng.integers(0, 2, size=n_trials)
    return np.stack([index_a, index_b, a_left], axis=1).astype(np.int64)


def clip_id(session: str, seed: int, trial: int, side: int) -> str:
    """The opaque name under which a session serves one clip: it says nothing of its set or index."""
    return hashlib.sha256(f"clip/{session}/{seed}/{trial}/{side}".encode()).hexdigest()[:20]


def new_session_id(rng: np.random.Generator) -> str:
    """A fresh 16-hex-digit session id."""
    return rng.bytes(8).hex()


def is_session_id(text: str) -> bool:
    """Whether ``text`` has the form of a session id (so it can name a file safely)."""
    return bool(_SESSION_ID_RE.match(text))


# --------------------------------------------------------------------------
# sessions


def _now() -> float:
    return round(time.time(), 3)


class ListeningSession:
    """One listener's sequence of trials, and the answers given so far.

    Build one with :meth:`create` (a new session) or :meth:`from_records`
    (the lines of its file); :meth:`answer` turns a valid answer into the
    line to append, and :meth:`apply` records a line. Not thread-safe: the
    server holds a lock per session.

    Attributes
    ----------
    header : dict
        The first line of the session's file.
    trials : np.ndarray, shape=(n_trials, 3)
        :func:`draw_trials` of the header's seed.
    answers : list of dict
        The answer lines, in trial order.
    """

    def __init__(self, header: dict[str, Any], study: Study) -> None:
        if header.get("digest") != study.digest:
            raise MusicRLError(
                f"session {header.get('session')!r} was drawn from other sets (digest {header.get('digest')!r}) "
                f"than these ({study.digest!r}): start the server with the settings it was made with"
            )
        self.header = header
        self.study = study
        self.trials = draw_trials(len(study.sets[0]), len(study.sets[1]), n_trials=int(header["n_trials"]),
                                  seed=int(header["seed"]))
        self.answers: list[dict[str, Any]] = []
        self.clips = {clip_id(header["session"], int(header["seed"]), t, side): (t, side)
                      for t in range(len(self.trials)) for side in (0, 1)}

    @classmethod
    def create(cls, study: Study, *, session: str, seed: int, n_trials: int, listener: str) -> "ListeningSession":
        """A new session of ``min(n_trials, smaller set)`` trials; its header is ``self.header``."""
        n_trials = min(int(n_trials), *(len(s) for s in study.sets))
        header = {
            "kind": "session", "session": session, "mode": study.mode, "sets": list(study.names),
            "digest": study.digest, "seed": int(seed), "n_trials": n_trials, "listener": listener,
            "created": _now(),
        }
        return cls(header, study)

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]], study: Study) -> "ListeningSession":
        """The session of a file's lines (header first), answers replayed."""
        if not records or records[0].get("kind") != "session":
            raise MusicRLError("a session file must start with its header line")
        session = cls(records[0], study)
        for record in records[1:]:
            if record.get("kind") == "answer" and record.get("trial") == session.current:
                session.apply(record)
        return session

    @property
    def id(self) -> str:
        return self.header["session"]

    @property
    def current(self) -> int | None:
        """Index of the trial awaiting an answer; None when the session is complete."""
        return len(self.answers) if len(self.answers) < len(self.trials) else None

    def sets_of(self, trial: int) -> tuple[tuple[str, int], tuple[str, int]]:
        """(set name, index) of the left and right clip of a trial."""
        index_a, index_b, a_left = (int(v) for v in self.trials[trial])
        a, b = (self.study.names[0], index_a), (self.study.names[1], index_b)
        return (a, b) if a_left else (b, a)

    def seq_of(self, trial: int, side: int) -> np.ndarray:
        """The seq of one clip: shape ``(n_steps, n_pitches)``."""
        name, index = self.sets_of(trial)[side]
        return self.study.sets[self.study.names.index(name)][index]

    def answer(self, trial: int, choice: int, rating: int | None) -> dict[str, Any]:
        """The line recording an answer to the current trial (not yet applied).

        Raises
        ------
        MusicRLError
            When ``trial`` is not the current trial (answered already, or
            the session is complete).
        """
        if trial != self.current:
            expected = "none (the session is complete)" if self.current is None else str(self.current)
            raise MusicRLError(f"trial {trial} cannot be answered now: the current trial is {expected}")
        (left, left_index), (right, right_index) = self.sets_of(trial)
        chosen = (left, right)[choice]
        return {
            "kind": "answer", "session": self.id, "trial": trial, "left": left, "left_index": left_index,
            "right": right, "right_index": right_index, "choice": choice, "chosen": chosen,
            "correct": (chosen == self.study.names[0]) if self.study.mode == "identify" else None,
            "rating": rating, "time": _now(),
        }

    def apply(self, record: dict[str, Any]) -> None:
        """Record an answer line made by :meth:`answer`."""
        self.answers.append(record)

    def state(self) -> dict[str, Any]:
        """What the page needs to show the session (nothing that tells the sets apart)."""
        t = self.current
        clips = [clip_id(self.id, int(self.header["seed"]), t, s) for s in (0, 1)] if t is not None else None
        trial = None if t is None else {"index": t, "clips": clips}
        return {
            "session": self.id, "mode": self.study.mode, "question": QUESTIONS[self.study.mode],
            "listener": self.header["listener"], "n_trials": len(self.trials), "answered": len(self.answers),
            "trial": trial,
        }

    def reveal(self, record: dict[str, Any]) -> dict[str, Any]:
        """What the page shows after an answer: the sets of both clips and their piano rolls."""
        t = record["trial"]
        return {
            "trial": t, "correct": record["correct"], "sets": [record["left"], record["right"]],
            "rolls": [np.asarray(self.seq_of(t, s) > 0, dtype=int).tolist() for s in (0, 1)],
            "lowest_pitch": int(self.study.cfg.lowest_pitch), "done": self.current is None,
        }


# --------------------------------------------------------------------------
# request bodies


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise MusicRLError(f"{what} must be at most {MAX_BODY_BYTES} bytes, got {len(body)}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MusicRLError(f"{what} must be a JSON object") from None
    if not isinstance(data, dict):
        raise MusicRLError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _small_int(data: dict[str, Any], key: str, low: int, high: int, *, optional: bool = False) -> int | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MusicRLError(f"answer field {key!r} must be an int from {low} to {high}, got {value!r}")
    return value


def parse_answer(body: bytes) -> tuple[int, int, int | None]:
    """The trial, choice and rating of an answer's request body.

    Parameters
    ----------
    body : bytes
        JSON ``{"trial": int, "choice": 0 | 1, "rating": 1-5 or null}``
        (``rating`` may be left out); at most :data:`MAX_BODY_BYTES`.

    Returns
    -------
    trial, choice, rating : int, int, int or None
        ``choice`` 0 is the left clip (A), 1 the right one (B).

    Raises
    ------
    MusicRLError
        For an oversized body, a body that is not a JSON object, unknown
        fields, or a value of the wrong type or range.
    """
    data = _json_object(body, "an answer")
    unknown = sorted(set(data) - {"trial", "choice", "rating"})
    if unknown:
        raise MusicRLError(f"an answer has the fields trial, choice and rating; unknown: {', '.join(unknown)}")
    trial = _small_int(data, "trial", 0, 1_000_000)
    choice = _small_int(data, "choice", 0, 1)
    rating = _small_int(data, "rating", 1, 5, optional=True)
    return trial, choice, rating


def parse_listener(body: bytes) -> str:
    """The listener name of a new session's request body ``{"listener": str}`` ('anonymous' when empty).

    Raises
    ------
    MusicRLError
        For an oversized or malformed body, or a name that is not a string
        of at most 40 printable characters.
    """
    data = _json_object(body, "a new session")
    unknown = sorted(set(data) - {"listener"})
    if unknown:
        raise MusicRLError(f"a new session has the one field listener; unknown: {', '.join(unknown)}")
    name = data.get("listener") or ""
    if not isinstance(name, str) or len(name) > MAX_LISTENER_CHARS or not name.isprintable():
        raise MusicRLError(f"listener must be a name of at most {MAX_LISTENER_CHARS} printable characters, "
                           f"got {name!r}")
    return name.strip() or "anonymous"


# --------------------------------------------------------------------------
# files and tallies


def read_session_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of a session file, skipping a torn or unreadable line (a write cut short)."""
    return [record for record in read_jsonl(path, what="listening session") if isinstance(record, dict)]


def read_sessions(run_dir: str | os.PathLike) -> list[list[dict[str, Any]]]:
    """The records of every session of a run (``<run>/listening/*.jsonl``), header first, sorted by file."""
    folder = Path(run_dir) / LISTENING_DIR
    if not folder.is_dir():
        return []
    sessions = []
    for path in sorted(folder.glob("*.jsonl")):
        records = read_session_file(path)
        if records and records[0].get("kind") == "session":
            sessions.append(records)
    return sessions


def _answers(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer lines of a session, the first per trial (a line written twice counts once)."""
    seen, answers = set(), []
    for record in records[1:]:
        if record.get("kind") == "answer" and record.get("trial") not in seen:
            seen.add(record.get("trial"))
            answers.append(record)
    return answers


def _count(answers: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    ratings = [a["rating"] for a in answers if isinstance(a.get("rating"), int)]
    return {
        "trials": len(answers),
        "correct": sum(1 for a in answers if a.get("correct") is True),
        "chosen": {name: sum(1 for a in answers if a.get("chosen") == name) for name in names},
        "mean_rating": float(np.mean(ratings)) if ratings else None,
        "n_ratings": len(ratings),
    }


def tally(sessions: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Counts of answers per comparison, per listener and pooled.

    Parameters
    ----------
    sessions : sequence of sequences of dict
        The records of each session (:func:`read_sessions`).

    Returns
    -------
    comparisons : list of dict
        One per (mode, set names), in order of first appearance:
        ``{"mode", "sets", "listeners": {name: counts}, "pooled": counts}``,
        where counts are ``{"trials", "correct", "chosen": {set: n},
        "mean_rating", "n_ratings"}`` (``correct`` counts identifications of
        the real clip; 0 in the 'prefer' mode).
    """
    groups: dict[tuple, dict[str, list]] = {}
    for records in sessions:
        header = records[0]
        key = (header["mode"], tuple(header["sets"]))
        groups.setdefault(key, {}).setdefault(header.get("listener", "anonymous"), []).extend(_answers(records))
    out = []
    for (mode, names), by_listener in groups.items():
        pooled = [a for answers in by_listener.values() for a in answers]
        out.append({
            "mode": mode, "sets": list(names),
            "listeners": {who: _count(answers, names) for who, answers in sorted(by_listener.items())},
            "pooled": _count(pooled, names),
        })
    return out


def _share(k: int, n: int) -> str:
    if n == 0:
        return "-"
    low, high = wilson_interval(k, n)
    return f"{k / n:.2f} [{low:.2f}, {high:.2f}]"


def _rating(counts: dict[str, Any]) -> str:
    return "-" if counts["mean_rating"] is None else f"{counts['mean_rating']:.2f} (n={counts['n_ratings']})"


def results_markdown(comparisons: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of :func:`tally`: a section per comparison, a row per listener and one pooled.

    In the 'identify' mode the share is that of correct identifications of
    the real clip (0.5: the sets cannot be told apart by ear); in the
    'prefer' mode the share each set was preferred. Shares carry 95% Wilson
    intervals; the rating is the listener's 1-5 certainty of the answer.
    """
    parts = []
    for comparison in comparisons:
        first, second = comparison["sets"]
        rows = [*comparison["listeners"].items(), ("all listeners", comparison["pooled"])]
        if comparison["mode"] == "identify":
            parts.append(f"### {first} vs {second}: which one is the real chorale?\n")
            parts.append(f"| listener | trials | {first} identified (95% CI) | mean rating |")
            parts.append("|---|---|---|---|")
            for who, c in rows:
                parts.append(f"| {who} | {c['trials']} | {_share(c['correct'], c['trials'])} | {_rating(c)} |")
        else:
            parts.append(f"### {first} vs {second}: which one do you prefer?\n")
            parts.append(f"| listener | trials | {first} preferred (95% CI) | {second} preferred (95% CI) "
                         "| mean rating |")
            parts.append("|---|---|---|---|---|")
            for who, c in rows:
                shares = " | ".join(_share(c["chosen"][name], c["trials"]) for name in (first, second))
                parts.append(f"| {who} | {c['trials']} | {shares} | {_rating(c)} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def listening_summary(run_dir: str | os.PathLike) -> str | None:
    """The listening tests of a run as a markdown section, or None when it has none.

    Parameters
    ----------
    run_dir : str or path-like
        A run folder; its ``listening/*.jsonl`` sessions are read.

    Returns
    -------
    summary : str or None
        A ``## Listening tests`` section with :func:`results_markdown`'s
        tables; None when no session has an answer.
    """
    sessions = read_sessions(run_dir)
    comparisons = [c for c in tally(sessions) if c["pooled"]["trials"]]
    if not comparisons:
        return None
    n_sessions = sum(1 for records in sessions if _answers(records))
    return (
        "## Listening tests\n\n"
        f"Blind tests in the browser ({n_sessions} sessions; `python -m musicrl listen`). Shares with 95% Wilson "
        "intervals; a real clip identified 0.5 of the time means the sets cannot be told apart by ear. "
        "The rating is the listener's certainty, 1 (a guess) to 5 (sure).\n\n"
        + results_markdown(comparisons)
    )


# --------------------------------------------------------------------------
# audio and the run's sets


def render_clip(seq: np.ndarray, cfg: Any, *, tail: float = 1.0) -> bytes:
    """A seq as a WAV file (16-bit PCM, mono) rendered with the General MIDI soundfont.

    Every clip of ``n_steps`` steps lasts exactly ``n_steps * step_seconds +
    tail`` seconds, whatever its last note, so the length of a clip tells
    nothing about where it came from.

    Parameters
    ----------
    seq : np.ndarray, shape=(n_steps, n_pitches)
        Multi-hot chords.
    cfg : Config
        Grid, tempo, instrument, velocity and sample rate (``cfg.sr``, Hz).
    tail : float
        Seconds after the last step, so the last chord rings out.

    Returns
    -------
    wav : bytes
        The contents of a ``.wav`` file.
    """
    import io

    import soundfile

    from ..audio.synth import midi_to_wav_soundfont
    from ..music.vectorize import seq_to_midi

    seq = check_seqs(seq, name="seq", n_pitches=cfg.n_pitches)[0]
    n_samples = int(round((seq.shape[0] * cfg.step_seconds + tail) * cfg.sr))
    audio = np.zeros(n_samples, np.float32)
    midi = seq_to_midi(seq, step_beats=cfg.step_beats, bpm=cfg.bpm, lowest_pitch=cfg.lowest_pitch,
                       hold=cfg.hold, program=cfg.program, velocity=cfg.velocity)
    if any(inst.notes for inst in midi.instruments):
        rendered = midi_to_wav_soundfont(midi, sr=cfg.sr, tail=tail)[:n_samples]
        audio[: len(rendered)] = rendered
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak > 1.0:  # soundfont voices can sum above full scale
        audio /= peak
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, cfg.sr, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def listening_sets(run_dir: str | os.PathLike, *, n: int, seed: int) -> tuple[Any, dict[str, np.ndarray]]:
    """A run's settings and its sets to listen to: 'real', 'pretrained' (when it has one) and 'agent'.

    'real' are windows of held-out pieces; the two policies sample ``n``
    pieces from the same random numbers at the run's ``sample_temperature``.

    Parameters
    ----------
    run_dir : str or path-like
        A run folder with a checkpoint.
    n : int
        Pieces per generated set, and real windows at most.
    seed : int
        Seed of the draws.

    Returns
    -------
    cfg, sets : Config, dict of str to np.ndarray
        Each set of shape ``(n_i, n_steps, n_pitches)``.
    """
    from .sets import load_eval_sets

    eval_sets = load_eval_sets(run_dir, n=n, seed=seed, n_d_train=0)
    return eval_sets.cfg, {k: v for k, v in eval_sets.sets.items() if k in ("real", "pretrained", "agent")}


def study_of_run(
    run_dir: str | os.PathLike, *, mode: str = "identify", against: str = "pretrained", n: int = 64, seed: int = 0
) -> Study:
    """The :class:`Study` of a run: real vs agent ('identify'), or the agent vs ``against`` ('prefer').

    Parameters
    ----------
    run_dir : str or path-like
        A run folder with a checkpoint.
    mode : {'identify', 'prefer'}
    against : str
        In the 'prefer' mode: ``'pretrained'`` (the run's pretrained-only
        policy) or another run folder, whose agent is compared.
    n : int
        Pieces per set.
    seed : int
        Seed of the sets' draws (a session continues only on the same sets).

    Raises
    ------
    MusicRLError
        For an unknown mode, a run without a pretrained checkpoint, or an
        other run whose clips differ in length, pitch range or tempo.
    """
    if mode not in MODES:
        raise MusicRLError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    cfg, sets = listening_sets(run_dir, n=n, seed=seed)
    if mode == "identify":
        return Study("identify", ("real", "agent"), (sets["real"], sets["agent"]), cfg)
    if against == "pretrained":
        if "pretrained" not in sets:
            raise MusicRLError(f"run {str(run_dir)!r} has no 'pretrained' checkpoint to compare with")
        return Study("prefer", ("pretrained", "agent"), (sets["pretrained"], sets["agent"]), cfg)
    other_cfg, other_sets = listening_sets(against, n=n, seed=seed)
    for field in ("n_steps", "n_pitches", "lowest_pitch", "step_seconds"):
        if getattr(other_cfg, field) != getattr(cfg, field):
            raise MusicRLError(f"run {str(against)!r} has {field}={getattr(other_cfg, field)!r}, run "
                               f"{str(run_dir)!r} {getattr(cfg, field)!r}: their clips cannot be compared")
    this, other = Path(run_dir).resolve().name, Path(against).resolve().name
    if this == other:
        this, other = str(Path(run_dir).resolve()), str(Path(against).resolve())
    return Study("prefer", (f"agent of {other}", f"agent of {this}"), (other_sets["agent"], sets["agent"]), cfg)
