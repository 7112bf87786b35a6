"""Tests of musicrl.audio.mel: librosa reference, batched TensorFlow path, fast seq path."""

import logging

import librosa
import numpy as np
import pytest

from musicrl.audio import mel, synth

from musicrl.music import midi, vectorize
from musicrl.config import Config
from musicrl.errors import MusicRLError

SYNTH = dict(sr=16000, step_seconds=0.5, lowest_pitch=36, n_harmonics=6, attack=0.02, release=0.05)
MEL = dict(sr=16000, n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=8000.0, top_db=80.0)

# (synth settings, mel settings): default; other rates, FFT sizes and hops; and
# step lengths whose frame offsets repeat every 4 steps (0.5 s), every 16
# (0.3 s at 22.05 kHz) or not within the clip (3899 samples)
SETTINGS = [
    pytest.param(SYNTH, MEL, id="default"),
    pytest.param({**SYNTH, "sr": 8000, "step_seconds": 0.25}, dict(MEL, sr=8000, n_fft=512, hop_length=128,
                 n_mels=40, fmin=0.0, fmax=4000.0), id="8k-512-128"),
    pytest.param({**SYNTH, "sr": 22050, "step_seconds": 0.3}, dict(MEL, sr=22050, n_fft=2048, hop_length=300,
                 n_mels=96, fmax=11025.0), id="22k-2048-300"),
    pytest.param({**SYNTH, "step_seconds": 3899 / 16000}, dict(MEL, n_mels=128, hop_length=160), id="odd-step"),
]

# librosa (float64) vs TensorFlow (float32) and the fast path vs the audio path,
# in dB, over the bins within 80 dB of each clip's peak
TOL_DB = 1e-3


def rand_seqs(rng, n, n_steps=4):
    """Seq 0 silent, seq 1 a chord progression, the rest random chords of 1 to 4 pitches.

    At most 4 notes per step (always 4 somewhere), so the tests share compiled shapes.
    """
    seqs = np.zeros((n, n_steps, 48), dtype=np.float32)
    prog = vectorize.midi_to_seq(midi.rand_progression(rng, n_chords=n_steps), step_beats=1.0,
                                 lowest_pitch=36, n_pitches=48)
    seqs[1] = prog[:n_steps]
    for seq in seqs[2:]:
        for step in seq:
            step[rng.choice(48, size=rng.integers(1, 5), replace=False)] = 1
    seqs[-1, 0, :4] = 1
    return seqs


def near_peak(ref):
    return ref >= ref.max() - 80.0


def test_n_frames_matches_config():
    cfg = Config(n_steps=4)
    assert mel.n_mel_frames(cfg.n_samples, hop_length=cfg.hop_length) == cfg.n_frames
    seq = np.zeros((cfg.n_steps, cfg.n_pitches))
    out = mel.seq_to_mel(seq, **cfg.seq_mel_kwargs())
    assert out.shape == (1, cfg.n_frames, cfg.n_mels)
    wav = synth.seq_to_wav(seq, **cfg.synth_kwargs())
    assert mel.wav_to_mel(wav, **cfg.mel_kwargs()).shape == (1, cfg.n_frames, cfg.n_mels)


@pytest.mark.parametrize("synth_kw, mel_kw", SETTINGS)
def test_librosa_tf_and_fast_paths_agree(rng, synth_kw, mel_kw):
    n_steps = 4
    seqs = rand_seqs(rng, 4, n_steps)
    wavs = synth.seq_to_wav(seqs, **synth_kw)
    n_frames = 1 + wavs.shape[1] // mel_kw["hop_length"]

    tf_mels = mel.wav_to_mel(wavs, **mel_kw)
    fast_mels = mel.seq_to_mel(seqs, **synth_kw, **{k: v for k, v in mel_kw.items() if k != "sr"})
    assert tf_mels.shape == fast_mels.shape == (4, n_frames, mel_kw["n_mels"])
    assert tf_mels.dtype == fast_mels.dtype == np.float32
    for wav, tf_mel, fast_mel in zip(wavs, tf_mels, fast_mels):
        ref = mel.wav_to_mel_librosa(wav, **mel_kw)
        assert ref.shape == (n_frames, mel_kw["n_mels"])
        near = near_peak(ref)
        np.testing.assert_allclose(tf_mel[near], ref[near], atol=TOL_DB, rtol=0)
        np.testing.assert_allclose(fast_mel[near], ref[near], atol=TOL_DB, rtol=0)
        np.testing.assert_allclose(fast_mel, tf_mel, atol=TOL_DB, rtol=0)
    # the empty seq is silence: the floor everywhere
    assert np.all(fast_mels[0] == -mel_kw["top_db"]) and np.all(tf_mels[0] == -mel_kw["top_db"])


def test_fast_path_fallback_without_table(rng, monkeypatch):
    """Settings whose note-spectra table would be too large synthesize the audio instead."""
    seqs = rand_seqs(rng, 4)
    kw = {**SYNTH, **MEL}
    fast = mel.seq_to_mel(seqs, **kw)
    monkeypatch.setattr(mel, "_MAX_TABLE_BYTES", 0)
    mel._seq_plan.cache_clear()
    try:
        slow = mel.seq_to_mel(seqs, **kw)
    finally:
        mel._seq_plan.cache_clear()
    np.testing.assert_allclose(slow, fast, atol=TOL_DB, rtol=0)


@pytest.mark.parametrize("note_slots", [0, 6, 8])
def test_note_slots_do_not_change_mels(rng, note_slots):
    seqs = rand_seqs(rng, 4)
    kw = {**SYNTH, **MEL}
    np.testing.assert_allclose(mel.seq_to_mel(seqs, note_slots=note_slots, **kw), mel.seq_to_mel(seqs, **kw),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("widths, batch_multiple", [((4, 8), 16), ((2, 4), 4), ((1,), 1)])
def test_grouping_by_chord_width_does_not_change_mels(rng, widths, batch_multiple):
    # chords of 0 to 4 notes and one clip with a chord of 6 or more, the groups interleaved in the batch
    seqs = rand_seqs(rng, 6)
    seqs[2, 3, 10:16] = 1
    kw = {**SYNTH, **MEL}
    got = mel.seq_to_mel_by_width(seqs, widths=widths, batch_multiple=batch_multiple, **kw)
    assert got.shape == (6, mel.n_mel_frames(4 * 8000, hop_length=256), 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, mel.seq_to_mel(seqs, **kw), atol=1e-4, rtol=0)
    assert mel.seq_to_mel_by_width(seqs[:0], widths=widths, batch_multiple=batch_multiple, **kw).shape == (
        0, *got.shape[1:])


@pytest.mark.parametrize("seqs, override, match", [
    (np.zeros((2, 4, 48)), {"widths": (4, 4)}, "widths"),
    (np.zeros((2, 4, 48)), {"widths": (0, 4)}, "widths"),
    (np.zeros((2, 4, 48)), {"widths": [4, 8]}, "widths"),
    (np.zeros((2, 4, 48)), {"widths": ()}, "widths"),
    (np.zeros((2, 4, 48)), {"batch_multiple": 0}, "batch_multiple"),
    (np.zeros(48), {}, "shape"),
    (np.full((2, 4, 48), np.nan), {}, "NaN"),
])
def test_seq_to_mel_by_width_bad_input_raises(seqs, override, match):
    with pytest.raises(MusicRLError, match=match):
        mel.seq_to_mel_by_width(seqs, **{**SYNTH, **MEL, **override})


def test_a4_peak_band():
    a4 = np.eye(48, dtype=np.float32)[[33] * 4]
    wav = synth.seq_to_wav(a4, **{**SYNTH, "n_harmonics": 1})
    out = mel.wav_to_mel(wav, **MEL)[0]
    # band centres: the inner edges of librosa's mel frequencies
    centres = librosa.mel_frequencies(n_mels=MEL["n_mels"] + 2, fmin=MEL["fmin"], fmax=MEL["fmax"])[1:-1]
    loudest = out.mean(axis=0).argmax()
    assert abs(centres[loudest] - 440.0) <= max(np.diff(centres)[loudest - 1 : loudest + 1])
    fast = mel.seq_to_mel(a4, **{**SYNTH, **MEL, "n_harmonics": 1})
    assert fast[0].mean(axis=0).argmax() == loudest


def test_zero_db_is_a_full_scale_sine():
    sr = MEL["sr"]
    t = np.arange(32000) / sr
    loudest = -np.inf
    for hz in (50.0, 110.0, 440.0, 2000.0):
        out = mel.wav_to_mel(np.sin(2 * np.pi * hz * t), **MEL)
        assert out.max() <= 0.05  # image and window edges aside, never above the reference
        loudest = max(loudest, out.max())
    assert loudest > -3.0
    ref = mel.full_scale_mel_power(**{k: MEL[k] for k in ("sr", "n_fft", "n_mels", "fmin", "fmax")})
    assert ref > 0


def test_fixed_reference_not_per_clip(rng):
    seqs = rand_seqs(rng, 2)[1:]
    wav = synth.seq_to_wav(seqs, **SYNTH)
    loud = mel.wav_to_mel(wav, **MEL)
    quiet = mel.wav_to_mel(0.5 * wav, **MEL)
    above = quiet > -MEL["top_db"] + 1
    assert above.mean() > 0.2
    # half the amplitude is 6.02 dB lower everywhere above the floor
    np.testing.assert_allclose(loud[above] - quiet[above], 20 * np.log10(2), atol=1e-3)


def test_silence_gives_the_floor():
    kw = {**MEL, "top_db": 60.0}
    assert np.all(mel.wav_to_mel(np.zeros((2, 5000), np.float32), **kw) == -60.0)
    assert np.all(mel.wav_to_mel_librosa(np.zeros(5000), **kw) == -60.0)
    fast = mel.seq_to_mel(np.zeros((4, 48)), **SYNTH, **{k: v for k, v in kw.items() if k != "sr"})
    assert fast.shape == (1, 1 + 4 * 8000 // 256, 64) and np.all(fast == -60.0)


def test_chunking_gives_identical_results(rng):
    seqs = rand_seqs(rng, 4)
    kw = {**SYNTH, **MEL}
    whole = mel.seq_to_mel(seqs, **kw, chunk_size=64)
    np.testing.assert_array_equal(mel.seq_to_mel(seqs, **kw, chunk_size=2), whole)
    np.testing.assert_array_equal(mel.seq_to_mel(seqs[3], **kw), whole[3:4])
    wavs = synth.seq_to_wav(seqs, **SYNTH)
    whole = mel.wav_to_mel(wavs, **MEL, chunk_size=64)
    np.testing.assert_array_equal(mel.wav_to_mel(wavs, **MEL, chunk_size=2), whole)
    np.testing.assert_array_equal(mel.wav_to_mel(wavs[3], **MEL), whole[3:4])


def test_many_chunk_shapes_do_not_warn_of_retracing(rng, caplog):
    """Each chunk shape compiles once, and TensorFlow must not take the shapes for retracing."""
    seqs = rand_seqs(rng, 4, n_steps=3)  # a clip length no other test compiles
    kw = {**SYNTH, **MEL}
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        # batch buckets 1, 2, 4 times note slots 5, 6: six shapes, more than TensorFlow's threshold of five
        for n in (1, 2, 4):
            for note_slots in (5, 6):
                mel.seq_to_mel(seqs[:n], note_slots=note_slots, **kw)
    assert [r.getMessage() for r in caplog.records if "retracing" in r.getMessage()] == []


def test_deterministic(rng):
    seqs = rand_seqs(rng, 4)
    kw = {**SYNTH, **MEL}
    np.testing.assert_array_equal(mel.seq_to_mel(seqs, **kw), mel.seq_to_mel(seqs, **kw))


def test_dense_seqs(rng):
    """Many notes per step (an untrained agent) take the same path, just wider."""
    seqs = (rng.random((2, 4, 48)) < 0.5).astype(np.float32)
    seqs[0, 1] = 1  # every pitch
    kw = {**SYNTH, **MEL}
    np.testing.assert_allclose(mel.seq_to_mel(seqs, **kw), mel.wav_to_mel(synth.seq_to_wav(seqs, **SYNTH), **MEL),
                               atol=TOL_DB, rtol=0)


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "wavs, match",
    [
        (np.zeros((2, 3, 100)), "shape"),
        (np.array([[0.0, np.nan, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf]]), "NaN or inf"),
        (np.zeros((2, 0)), "at least one sample"),
        (np.array([["a", "b"]]), "floating-point"),
        (np.zeros((1, 100), dtype=np.int16), "floating-point"),
    ],
)
def test_wav_to_mel_bad_input_raises(wavs, match):
    with pytest.raises(MusicRLError, match=match):
        mel.wav_to_mel(wavs, **MEL)


def test_wav_to_mel_librosa_bad_input_raises():
    with pytest.raises(MusicRLError, match=r"shape \(n_samples,\)"):
        mel.wav_to_mel_librosa(np.zeros((2, 100)), **MEL)
    with pytest.raises(MusicRLError, match="NaN"):
        mel.wav_to_mel_librosa(np.array([0.0, np.nan]), **MEL)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"n_fft": 1023}, "even"),
        ({"hop_length": 2048}, "hop_length"),
        ({"fmax": 9000.0}, "fmax"),
        ({"fmin": -1.0}, "fmin"),
        ({"n_mels": 0}, "n_mels"),
        ({"n_mels": 600}, "n_mels"),
        ({"top_db": 0.0}, "top_db"),
        ({"sr": 16000.5}, "sr"),
    ],
)
def test_bad_mel_settings_raise(override, match):
    with pytest.raises(MusicRLError, match=match):
        mel.wav_to_mel(np.zeros((1, 1000), np.float32), **{**MEL, **override})
    with pytest.raises(MusicRLError, match=match):
        mel.wav_to_mel_librosa(np.zeros(1000), **{**MEL, **override})


@pytest.mark.parametrize(
    "seqs, override, match",
    [
        (np.zeros((4, 48)), {"lowest_pitch": 100}, "MIDI 0..127"),
        (np.zeros(48), {}, "shape"),
        (np.full((2, 48), np.nan), {}, "NaN"),
        (np.zeros((2, 48)), {"chunk_size": 0}, "chunk_size"),
        (np.zeros((2, 48)), {"step_seconds": -1.0}, "step_seconds"),
        (np.zeros((2, 48)), {"n_fft": 1000, "hop_length": 2000}, "hop_length"),
        (np.zeros((2, 48)), {"note_slots": -1}, "note_slots"),
        (np.zeros((2, 48)), {"note_slots": 2.5}, "note_slots"),
    ],
)
def test_seq_to_mel_bad_input_raises(seqs, override, match):
    with pytest.raises(MusicRLError, match=match):
        mel.seq_to_mel(seqs, **{**SYNTH, **MEL, **override})


def test_dense_chords_agree_with_the_audio_path(rng):
    """Chords wider than the unrolled sum take the gather-then-sum branch in smaller chunks."""
    seqs = (rng.random((5, 4, 48)) < 0.6).astype(np.float32)  # ~29 notes per step
    seqs[0, 1] = 1  # all 48 pitches at once
    kw = {**SYNTH, **MEL}
    fast = mel.seq_to_mel(seqs, chunk_size=4, **kw)
    ref = mel.wav_to_mel(synth.seq_to_wav(seqs, **SYNTH), **MEL)
    np.testing.assert_allclose(fast, ref, atol=TOL_DB, rtol=0)
