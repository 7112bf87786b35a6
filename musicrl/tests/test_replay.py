"""Tests of the replay buffer of older generated clips and of D's batch draws."""

import numpy as np
import pytest

from musicrl.errors import MusicRLError
from musicrl.learning.replay import BatchDraws, ReplayBuffer, array_to_rng_state, rng_state_to_array


def test_replay_buffer_is_fifo_and_samples_without_replacement():
    buf = ReplayBuffer(5, seed=0)
    buf.add(np.arange(3)[:, None] * np.ones((3, 2)))
    assert len(buf) == 3
    buf.add(np.arange(3, 8)[:, None] * np.ones((5, 2)))
    assert len(buf) == 5 and buf.n_seen == 8
    # 0, 1, 2 were overwritten first
    assert sorted(buf.sample(5)[:, 0].tolist()) == [3, 4, 5, 6, 7]
    assert len(set(buf.sample(4)[:, 0].tolist())) == 4
    with pytest.raises(MusicRLError, match="cannot sample 6"):
        buf.sample(6)
    with pytest.raises(MusicRLError, match="shape"):
        buf.add(np.zeros((1, 3)))


def test_replay_mix_swaps_a_share_for_older_clips():
    buf = ReplayBuffer(100, seed=0)
    first = np.zeros((8, 2), np.float32)
    # empty buffer: the batch comes back unchanged, and is stored
    np.testing.assert_array_equal(buf.mix(first, 0.25), first)
    second = np.ones((8, 2), np.float32)
    mixed = buf.mix(second, 0.25)
    assert mixed.shape == second.shape
    assert (mixed[:, 0] == 0).sum() == 2 and (mixed[:, 0] == 1).sum() == 6
    assert len(buf) == 16
    np.testing.assert_array_equal(buf.mix(second, 0.0), second)
    mixed, n_swapped = buf.mix_counted(second, 0.25)
    assert n_swapped == 2 and (mixed[:2, 0] == 0).sum() + (mixed[:2, 0] == 1).sum() == 2
    np.testing.assert_array_equal(mixed[2:], second[2:])


def test_replay_state_round_trip(tmp_path, rng):
    buf = ReplayBuffer(6, seed=3)
    for _ in range(3):
        buf.add(rng.normal(size=(4, 2, 3)).astype(np.float32))
    np.savez(tmp_path / "replay.npz", **buf.get_state())
    loaded = dict(np.load(tmp_path / "replay.npz"))
    other = ReplayBuffer(6, seed=99)
    other.set_state(loaded)
    assert len(other) == len(buf) and other.n_seen == buf.n_seen
    np.testing.assert_array_equal(other.sample(4), buf.sample(4))
    batch = rng.normal(size=(4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(other.mix(batch, 0.5), buf.mix(batch, 0.5))
    with pytest.raises(MusicRLError, match="capacity"):
        ReplayBuffer(7).set_state(buf.get_state())


@pytest.mark.parametrize("capacity,filled,adds", [
    (6, 0, [4]),          # empty at the mark
    (6, 3, [2]),          # not yet full: nothing stored is overwritten
    (6, 6, [4, 4]),       # full, wrapping round twice
    (5, 3, [2, 9]),       # a batch larger than the buffer
], ids=["empty", "filling", "wrapping", "oversized"])
def test_replay_undo_returns_to_the_mark(rng, capacity, filled, adds):
    buf = ReplayBuffer(capacity, seed=3)
    if filled:
        buf.add(rng.normal(size=(filled, 2)).astype(np.float32))
    before = buf.get_state()
    buf.mark()
    for n in adds:
        buf.mix(rng.normal(size=(n, 2)).astype(np.float32), 0.5)
    buf.undo()
    after = buf.get_state()
    np.testing.assert_array_equal(after["items"], before["items"])
    np.testing.assert_array_equal(after["counters"], before["counters"])
    assert after["rng_state"] == before["rng_state"]
    # a second undo returns to the same mark; the next batch sees what it would have seen
    fresh = ReplayBuffer(capacity, seed=99)
    fresh.set_state(before)
    batch = rng.normal(size=(3, 2)).astype(np.float32)
    buf.mix(batch, 0.5)
    buf.undo()
    np.testing.assert_array_equal(buf.mix(batch, 0.5), fresh.mix(batch, 0.5))
    np.testing.assert_array_equal(buf.get_state()["items"], fresh.get_state()["items"])


def test_replay_undo_needs_a_mark_and_forgets_it_on_a_loaded_state():
    buf = ReplayBuffer(4, seed=0)
    with pytest.raises(MusicRLError, match="nothing to undo"):
        buf.undo()
    buf.mark()
    buf.set_state(ReplayBuffer(4, seed=1).get_state())
    with pytest.raises(MusicRLError, match="nothing to undo"):
        buf.undo()


def test_rng_state_survives_an_npz_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    rng.random(3)
    np.savez(tmp_path / "rng.npz", state=rng_state_to_array(rng))
    other = np.random.default_rng(12)
    other.bit_generator.state = array_to_rng_state(np.load(tmp_path / "rng.npz")["state"])
    np.testing.assert_array_equal(other.random(5), rng.random(5))


def test_batch_draws_swap_the_share_and_draw_one_weight_per_clip():
    draws = BatchDraws(replay_share=0.5, replay_capacity=8, seed=0)
    real_x, old_x, new_x = np.zeros((6, 2)), np.ones((4, 2)), np.full((4, 2), 2.0)
    mixed_x, n_swapped, mix_eps = draws.draw(real_x, old_x)
    assert n_swapped == 0 and np.array_equal(mixed_x, old_x)
    assert mix_eps.shape == (6,) and mix_eps.dtype == np.float32 and np.all((0 <= mix_eps) & (mix_eps < 1))
    mixed_x, n_swapped, _ = draws.draw(real_x, new_x)
    assert n_swapped == 2
    np.testing.assert_array_equal(mixed_x[:2], old_x[:2])
    np.testing.assert_array_equal(mixed_x[2:], new_x[2:])
    off = BatchDraws(replay_share=0.0, replay_capacity=8, seed=0)
    assert off.buffer is None and off.draw(real_x, new_x)[1] == 0


def test_batch_draws_state_and_undo_reproduce_the_draws():
    draws = BatchDraws(replay_share=0.5, replay_capacity=8, seed=1)
    with pytest.raises(MusicRLError, match="the owner: nothing to undo"):
        draws.undo("the owner")
    batch = np.arange(8.0).reshape(4, 2)
    draws.draw(batch, batch)
    state = draws.get_state("rng")
    assert set(state) == {"rng", "replay_items", "replay_counters", "replay_rng_state"}
    draws.mark()
    first = draws.draw(batch, batch + 10)
    draws.undo("the owner")
    again = draws.draw(batch, batch + 10)
    other = BatchDraws(replay_share=0.5, replay_capacity=8, seed=2)
    other.set_state(state, "rng")
    loaded = other.draw(batch, batch + 10)
    for a, b, c in zip(first, again, loaded):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
