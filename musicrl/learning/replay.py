"""A replay buffer of older generated clips for D's batches, with an undo to a mark.

D trained only on the policy's latest clips forgets what earlier policies
wrote; :class:`ReplayBuffer` keeps a first-in-first-out store of them, and
:meth:`ReplayBuffer.mix` swaps a share of each generated batch for stored
clips. :meth:`ReplayBuffer.mark` / :meth:`ReplayBuffer.undo` return the store
to an earlier state (to redo an iteration), and :meth:`ReplayBuffer.get_state`
/ :meth:`ReplayBuffer.set_state` save it as arrays with a checkpoint.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import MusicRLError
from ..seeding import as_rng

__all__ = ["BatchDraws", "ReplayBuffer", "array_to_rng_state", "rng_state_to_array"]


def rng_state_to_array(rng: np.random.Generator) -> np.ndarray:
    """A generator's state as a 0-d string array, which ``np.savez`` stores; :func:`array_to_rng_state` inverts it."""
    return np.array(json.dumps(rng.bit_generator.state))


def array_to_rng_state(arr: Any) -> dict:
    """The ``bit_generator.state`` dict of :func:`rng_state_to_array` (also after an ``np.load``)."""
    return json.loads(str(np.asarray(arr)))


class ReplayBuffer:
    """A first-in-first-out store of older generated clips for D's batches.

    Parameters
    ----------
    capacity : int
        Most clips kept; the oldest is overwritten first.
    seed : int or np.random.Generator, optional
        Randomness of :meth:`sample` (its state is part of :meth:`get_state`).

    Notes
    -----
    Memory is ``capacity`` times one stored clip: 128 kB for a default
    16-step mel (501 x 64 float32), so 64 MB at capacity 512.
    """

    def __init__(self, capacity: int, *, seed: int | np.random.Generator | None = 0) -> None:
        if int(capacity) < 1:
            raise MusicRLError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.rng = as_rng(seed)
        self.items: np.ndarray | None = None
        self.size = 0
        self.pos = 0
        self.n_seen = 0
        self._undo: tuple | None = None  # what mark() saw, and the clips add() overwrote since

    def __len__(self) -> int:
        return self.size

    # ---- storing and drawing ----------------------------------------------------------
    def add(self, items: Any) -> None:
        """Store a batch ``(batch, ...)`` of clips, overwriting the oldest when full."""
        arr = np.asarray(items)
        if arr.ndim < 1 or arr.shape[0] == 0:
            return
        if self.items is None:
            self.items = np.zeros((self.capacity, *arr.shape[1:]), dtype=arr.dtype)
        if arr.shape[1:] != self.items.shape[1:]:
            raise MusicRLError(
                f"replay items must have shape (batch, {', '.join(map(str, self.items.shape[1:]))}), "
                f"got shape {arr.shape}"
            )
        arr = arr[-self.capacity :]
        idx = (self.pos + np.arange(len(arr))) % self.capacity
        self._keep_for_undo(idx)
        self.items[idx] = arr
        self.pos = int((self.pos + len(arr)) % self.capacity)
        self.size = min(self.capacity, self.size + len(arr))
        self.n_seen += int(np.asarray(items).shape[0])

    def sample(self, n: int) -> np.ndarray:
        """``n`` stored clips drawn uniformly without replacement (``n <= len(self)``)."""
        n = int(n)
        if not 0 <= n <= self.size:
            raise MusicRLError(f"cannot sample {n} clips from a replay buffer holding {self.size}")
        if n == 0:
            shape = () if self.items is None else self.items.shape[1:]
            dtype = np.float32 if self.items is None else self.items.dtype
            return np.zeros((0, *shape), dtype=dtype)
        return self.items[self.rng.choice(self.size, size=n, replace=False)].copy()

    def mix(self, gen_batch: Any, share: float) -> np.ndarray:
        """Replace a ``share`` of ``gen_batch`` by stored clips, then store ``gen_batch``.

        The first ``round(share * batch)`` clips (fewer while the buffer fills)
        are swapped for older ones; the batch keeps its size.
        """
        return self.mix_counted(gen_batch, share)[0]

    def mix_counted(self, gen_batch: Any, share: float) -> tuple[np.ndarray, int]:
        """:meth:`mix`, also returning how many leading clips were swapped."""
        if not 0 <= share < 1:
            raise MusicRLError(f"replay share must be in [0, 1), got {share!r}")
        arr = np.asarray(gen_batch)
        n_old = min(int(round(share * len(arr))), self.size)
        old = self.sample(n_old)
        out = np.concatenate([old.astype(arr.dtype, copy=False), arr[n_old:]]) if n_old else arr.copy()
        self.add(arr)
        return out, n_old

    # ---- undo -------------------------------------------------------------------------
    def mark(self) -> None:
        """Remember the buffer as it is now, so :meth:`undo` can return to it.

        Until the next mark, :meth:`add` keeps a copy of each stored clip it
        overwrites: the cost is the clips added since (at most the whole
        buffer), not a copy of the buffer at every mark.
        """
        self._undo = (self.size, self.pos, self.n_seen, self.rng.bit_generator.state, self.items is None, {})

    def _keep_for_undo(self, idx: np.ndarray) -> None:
        """Copy the clips at slots ``idx`` that held clips at the mark, before their first overwrite."""
        if self._undo is None:
            return
        marked_size, kept = self._undo[0], self._undo[-1]
        for i in idx[idx < marked_size]:
            kept.setdefault(int(i), self.items[i].copy())

    def undo(self) -> None:
        """Return to the last :meth:`mark`: its clips, counters and random state."""
        if self._undo is None:
            raise MusicRLError("replay buffer: nothing to undo (call mark() first)")
        size, pos, n_seen, rng_state, was_empty, kept = self._undo
        for i, clip in kept.items():
            self.items[i] = clip
        kept.clear()
        if was_empty:  # the clips' shape is set again by the next add
            self.items = None
        self.size, self.pos, self.n_seen = size, pos, n_seen
        self.rng.bit_generator.state = rng_state

    # ---- saving -----------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """The buffer as a dict of arrays (``np.savez(path, **state)`` stores it)."""
        items = np.zeros((0,), np.float32) if self.items is None else self.items[: self.size].copy()
        return {
            "items": items,
            "counters": np.array([self.capacity, self.size, self.pos, self.n_seen], dtype=np.int64),
            "rng_state": rng_state_to_array(self.rng),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (also after an ``np.load``)."""
        capacity, size, pos, n_seen = (int(v) for v in np.asarray(state["counters"]))
        if capacity != self.capacity:
            raise MusicRLError(f"replay state has capacity {capacity}, this buffer {self.capacity}")
        items = np.asarray(state["items"])
        if size:
            if items.shape[0] != size:
                raise MusicRLError(f"replay state holds {items.shape[0]} items, its counters say {size}")
            self.items = np.zeros((self.capacity, *items.shape[1:]), dtype=items.dtype)
            self.items[:size] = items
        else:
            self.items = None
        self.size, self.pos, self.n_seen = size, pos, n_seen
        self.rng.bit_generator.state = array_to_rng_state(state["rng_state"])
        self._undo = None


# keys of the replay buffer's arrays within a BatchDraws state
_REPLAY_PREFIX = "replay_"


class BatchDraws:
    """What D's training batches draw at random: replay's swaps and the WGAN-GP mixing weights.

    Parameters
    ----------
    replay_share : float in [0, 1)
        Share of each generated batch swapped for older clips (0: no buffer).
    replay_capacity : int
        Clips the buffer keeps.
    seed : int or np.random.Generator
        Source of the mixing weights and of the buffer's seed.

    Attributes
    ----------
    rng : np.random.Generator
    buffer : ReplayBuffer or None
        None when ``replay_share == 0``.
    """

    def __init__(self, *, replay_share: float, replay_capacity: int, seed: int | np.random.Generator) -> None:
        self.rng = as_rng(seed)
        self.replay_share = replay_share
        self._marked_rng_state: dict | None = None
        self.buffer = ReplayBuffer(replay_capacity, seed=self.rng.integers(2**63)) if replay_share > 0 else None

    def draw(self, real_x: np.ndarray, gen_x: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        """The generated batch after replay, how many leading clips replay swapped, and the mixing weights.

        Parameters
        ----------
        real_x, gen_x : np.ndarray, shape=(b_real, ...), (b_gen, ...)
            Checked D inputs; ``gen_x`` is stored in the buffer.

        Returns
        -------
        mixed_x : np.ndarray, shape=gen_x.shape
        n_swapped : int
        mix_eps : np.ndarray, shape=(max(b_real, b_gen),), dtype=float32
            Uniforms in [0, 1).
        """
        mixed_x, n_swapped = (gen_x, 0) if self.buffer is None else self.buffer.mix_counted(gen_x, self.replay_share)
        mix_eps = self.rng.uniform(size=max(len(real_x), len(mixed_x))).astype(np.float32)
        return mixed_x, n_swapped, mix_eps

    def get_state(self, rng_key: str) -> dict[str, np.ndarray]:
        """The random state (under ``rng_key``) and the buffer's arrays (under ``replay_...``)."""
        state = {rng_key: rng_state_to_array(self.rng)}
        if self.buffer is not None:
            state.update({f"{_REPLAY_PREFIX}{k}": v for k, v in self.buffer.get_state().items()})
        return state

    def set_state(self, state: dict[str, Any], rng_key: str) -> None:
        """Restore what :meth:`get_state` returned (and forget the last :meth:`mark`)."""
        self.rng.bit_generator.state = array_to_rng_state(state[rng_key])
        self._marked_rng_state = None
        if self.buffer is not None:
            n = len(_REPLAY_PREFIX)
            self.buffer.set_state({k[n:]: v for k, v in state.items() if k.startswith(_REPLAY_PREFIX)})

    def mark(self) -> None:
        """Remember the random state and the buffer, so :meth:`undo` can return to them."""
        self._marked_rng_state = self.rng.bit_generator.state
        if self.buffer is not None:
            self.buffer.mark()

    def undo(self, what: str) -> None:
        """Return the random state and the buffer to the last :meth:`mark`; ``what`` names the owner in the error."""
        if self._marked_rng_state is None:
            raise MusicRLError(f"{what}: nothing to undo (call mark() first)")
        if self.buffer is not None:
            self.buffer.undo()
        self.rng.bit_generator.state = self._marked_rng_state
