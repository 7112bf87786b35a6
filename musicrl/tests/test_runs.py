"""Run folders: reading back the samples a run wrote, and the order of its sample points."""

import numpy as np
import pytest

from musicrl.config import Config
from musicrl.errors import MusicRLError
from musicrl.store.runs import read_samples, run_paths, sample_points, write_samples


@pytest.mark.parametrize("n_steps,n_pitches,step_beats", [(4, 24, 1.0), (8, 48, 0.5)])
def test_read_samples_gives_back_the_written_seqs(tmp_path, rng, n_steps, n_pitches, step_beats):
    cfg = Config(n_steps=n_steps, n_pitches=n_pitches, step_beats=step_beats, sr=8000, fmax=4000)
    gen_seqs = (rng.random((3, n_steps, n_pitches)) < 0.15).astype(np.float32)
    gen_seqs[1, -2:] = 0.0  # ends in rests
    gen_seqs[2] = 0.0  # rests only
    write_samples(tmp_path, gen_seqs, cfg)
    seqs, wavs = read_samples(tmp_path, cfg)
    np.testing.assert_array_equal(seqs, gen_seqs)
    assert len(wavs) == 3 and all(w.ndim == 1 and w.dtype == np.float32 for w in wavs)
    assert not np.any(wavs[2])  # a piece of rests is silence


def test_read_samples_without_wavs_and_bad_folders(tmp_path, rng):
    cfg = Config(n_steps=4)
    real_seqs = (rng.random((2, 4, cfg.n_pitches)) < 0.2).astype(np.float32)
    write_samples(tmp_path, real_seqs, cfg, prefix="real", wav=False)
    seqs, wavs = read_samples(tmp_path, cfg, prefix="real")
    np.testing.assert_array_equal(seqs, real_seqs)
    assert wavs == []
    with pytest.raises(MusicRLError, match="no gen_"):
        read_samples(tmp_path, cfg)


def test_sample_points_are_in_training_order(tmp_path):
    assert sample_points(tmp_path) == []
    names = ["iter-0000500", "real", "iter-0000000-pretrained", "iter-0001000-end", "iter-0000000-start",
             "sampled-latest-seed0", "iter-0000100"]
    for name in names:
        (run_paths(tmp_path).samples / name).mkdir(parents=True)
    (run_paths(tmp_path).samples / "iter-0000200").write_text("")  # a file, not a sample folder
    got = [p.name for p in sample_points(tmp_path)]
    assert got == ["iter-0000000-start", "iter-0000000-pretrained", "iter-0000100", "iter-0000500",
                   "iter-0001000-end"]
