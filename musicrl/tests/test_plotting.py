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
    rows[1]["mle_nll"] = 4.0  # logged on some iterations only
    ax = plotting.plot_curves(rows, ["reward_mean", "mle_nll"])
    np.testing.assert_array_equal(ax.get_lines()[1].get_xdata(), [2])
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [4.0])


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


# --- grids, players and tables for comparing sets ------------------------------------


def test_piano_rolls_grid_has_a_row_per_set(rng):
    real_seqs = (rng.random((4, 8, 24)) < 0.2).astype(np.float32)
    rand_seq = (rng.random((8, 24)) < 0.2).astype(np.float32)
    fig = plotting.plot_piano_rolls({"real": real_seqs, "rand": rand_seq}, lowest_pitch=48, n=3,
                                    preds={"real": [0.9, 0.8, 0.7, 0.6]})
    axes = np.array(fig.axes).reshape(2, 3)
    np.testing.assert_array_equal(np.asarray(axes[0, 2].get_images()[0].get_array()), real_seqs[2].T)
    assert axes[0, 1].get_title() == "real #1, D = 0.80"
    assert axes[1, 0].get_title() == "rand #0"
    assert not axes[1, 1].axison  # the one-piece set leaves the rest of its row empty
    with pytest.raises(MusicRLError, match="dimensions"):
        plotting.plot_piano_rolls({"bad": np.zeros(5)})


def test_players_label_every_clip(rng):
    html = plotting.players({"real": rng.uniform(-0.5, 0.5, (2, 800)), "one <clip>": np.zeros(400)},
                            sr=8000, preds={"real": [0.25, 0.75]}).data
    assert html.count("<audio") == 3
    assert "D = 0.25" in html and "D = 0.75" in html
    assert "one &lt;clip&gt;" in html  # names are escaped
    with pytest.raises(MusicRLError, match="NaN"):
        plotting.players({"x": np.array([0.0, np.nan])}, sr=8000)


def test_set_comparison_draws_one_chart_per_measure():
    table = {"real": {"a": 1.0, "b": 0.5}, "rand": {"a": 2.0, "b": 0.25}, "gen": {"a": 3.0}}
    fig = plotting.plot_set_comparison(table, ncols=2, reference=0.5)
    ax_a, ax_b = fig.axes[:2]
    assert [p.get_height() for p in ax_a.patches] == [1.0, 2.0, 3.0]
    heights = [p.get_height() for p in ax_b.patches]
    assert heights[:2] == [0.5, 0.25] and np.isnan(heights[2])  # a missing measure is a gap
    assert ax_a.get_title() == "a" and len(ax_a.get_lines()) == 1


def test_mgeval_bars_and_table():
    results = {
        "rand": {"pitch_range": {"oa_real_inter": 0.2}, "polyphony": {"oa_real_inter": 0.4}},
        "gen": {"pitch_range": {"oa_real_inter": 0.9}, "polyphony": {"oa_real_inter": 0.8}},
    }
    ax = plotting.plot_mgeval(results)
    assert [p.get_height() for p in ax.patches] == [0.2, 0.4, 0.9, 0.8]
    html = plotting.show_table({"rand": {"x": 0.12345, "y": "n/a"}, "gen": {"x": 1}}, fmt="{:.2f}").data
    assert "<td>0.12</td>" in html and "<td>1.00</td>" in html and "<td>n/a</td>" in html
