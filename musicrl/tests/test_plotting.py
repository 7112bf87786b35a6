"""Plots draw what they are given, and reject what they cannot draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from musicrl import plotting
from musicrl.errors import MusicRLError


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("n_steps,n_pitches,lowest_pitch", [(4, 12, 48), (16, 48, 36)])
def test_piano_roll_shows_the_seq(rng, n_steps, n_pitches, lowest_pitch):
    rand_seq = (rng.random((n_steps, n_pitches)) < 0.2).astype(np.float32)
    ax = plotting.plot_piano_roll(rand_seq, lowest_pitch=lowest_pitch)
    image = ax.get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), rand_seq.T)
    assert all(t % 12 == 0 for t in ax.get_yticks())


def test_mel_axis_is_in_seconds(rng):
    rand_mel = rng.normal(-40, 10, size=(63, 16)).astype(np.float32)
    ax = plotting.plot_mel(rand_mel, sr=16000, hop_length=256)
    x0, x1, _, _ = ax.get_images()[0].get_extent()
    assert x1 - x0 == pytest.approx(63 * 256 / 16000)


def test_pred_plots_and_curves(rng):
    pred_real, pred_rand = rng.random(20), rng.random(20)
    ax = plotting.plot_pred_hist({"pred_real": pred_real, "pred_rand": pred_rand})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pred_real", "pred_rand"]
    ax = plotting.plot_pred_over_time({"real": rng.random((5, 8)), "one": rng.random(8)})
    assert len(ax.get_lines()) == 2
    rows = [{"iteration": i + 1, "reward_mean": -i} for i in range(3)]
    ax = plotting.plot_curves(rows, ["reward_mean"])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [0, -1, -2])


def test_play_gives_an_audio_player(rng):
    import io
    import wave

    audio = plotting.play(rng.uniform(-0.5, 0.5, 1600), sr=16000)
    with wave.open(io.BytesIO(audio.data)) as w:
        assert (w.getframerate(), w.getnframes()) == (16000, 1600)


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 4)), np.zeros(5)])
def test_bad_shapes_raise(bad):
    with pytest.raises(MusicRLError, match="one seq"):
        plotting.plot_piano_roll(bad)


def test_play_rejects_nan():
    with pytest.raises(MusicRLError, match="NaN"):
        plotting.play(np.array([0.0, np.nan]), sr=8000)
