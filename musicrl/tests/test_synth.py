"""Tests of musicrl.audio.synth: the additive synthesizer, the soundfont renderer, WAV writing."""

import numpy as np
import pretty_midi
import pytest
import soundfile

from musicrl.music import midi, vectorize

from musicrl.audio import synth
from musicrl.errors import MusicRLError

SYNTH = dict(sr=16000, step_seconds=0.5, lowest_pitch=36, n_harmonics=6, attack=0.02, release=0.05)


def one_note_seq(pitch, *, n_steps=1, lowest_pitch=36, n_pitches=48):
    seq = np.zeros((n_steps, n_pitches), dtype=np.float32)
    seq[:, pitch - lowest_pitch] = 1
    return seq


def peak_hz(wav, sr):
    """Frequency of the strongest FFT bin of a Hann-windowed clip, and the bin width."""
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.fft.rfftfreq(len(wav), 1 / sr)[spec.argmax()], sr / len(wav)


@pytest.mark.parametrize("sr", [8000, 16000, 22050])
@pytest.mark.parametrize("step_seconds", [0.25, 0.5, 0.3])
def test_shapes_and_dtype(rng, sr, step_seconds):
    seqs = (rng.random((3, 5, 48)) < 0.1).astype(np.float32)
    wavs = synth.seq_to_wav(seqs, **{**SYNTH, "sr": sr, "step_seconds": step_seconds})
    n = synth.step_samples(step_seconds, sr)
    assert wavs.shape == (3, 5 * n)
    assert wavs.dtype == np.float32
    assert np.all(np.isfinite(wavs))


def test_matches_config_lengths(cfg):
    seq = np.zeros((cfg.n_steps, cfg.n_pitches), dtype=np.float32)
    wav = synth.seq_to_wav(seq, **cfg.synth_kwargs())
    assert wav.shape == (1, cfg.n_samples)


def test_single_seq_gives_batch_of_one(rng):
    seq = (rng.random((4, 48)) < 0.1).astype(np.float32)
    one = synth.seq_to_wav(seq, **SYNTH)
    assert one.shape == (1, 4 * 8000)
    np.testing.assert_array_equal(one, synth.seq_to_wav(seq[None], **SYNTH))


@pytest.mark.parametrize("sr", [16000, 22050])
def test_a4_peak_at_440_hz(sr):
    wav = synth.seq_to_wav(one_note_seq(69, n_steps=2), **{**SYNTH, "sr": sr})[0]
    hz, bin_hz = peak_hz(wav, sr)
    assert abs(hz - 440.0) <= bin_hz


def test_partials_are_harmonics_with_falling_amplitude():
    wav = synth.seq_to_wav(one_note_seq(57, n_steps=2), **SYNTH)[0]  # A3, 220 Hz
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    freqs = np.fft.rfftfreq(len(wav), 1 / SYNTH["sr"])
    amps = [spec[np.argmin(np.abs(freqs - 220.0 * k))] for k in range(1, 7)]
    assert all(a > b for a, b in zip(amps, amps[1:]))
    # amplitudes ~ 1/k: the 2nd partial is half the first (to a few percent)
    assert amps[1] / amps[0] == pytest.approx(0.5, rel=0.05)
    # nothing between the partials: 330 Hz is far below them
    assert spec[np.argmin(np.abs(freqs - 330.0))] < 1e-3 * amps[0]


def test_partials_at_or_above_nyquist_are_left_out():
    sr = 8000
    # C7 = 2093 Hz: only the fundamental is below 4 kHz, the 2nd partial would alias to 3814 Hz
    seq = one_note_seq(96, n_steps=2, lowest_pitch=60)
    wav = synth.seq_to_wav(seq, **{**SYNTH, "sr": sr, "lowest_pitch": 60})[0]
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    freqs = np.fft.rfftfreq(len(wav), 1 / sr)
    assert spec[np.argmin(np.abs(freqs - (sr - 2 * 2093.0)))] < 1e-4 * spec.max()
    # a note whose fundamental is above Nyquist is silent
    silent = synth.seq_to_wav(one_note_seq(127, lowest_pitch=80), **{**SYNTH, "sr": sr, "lowest_pitch": 80})
    assert np.all(silent == 0)


def test_note_matches_float64_formula():
    sr, n = 16000, 8000
    wave = synth.note_waves(sr=sr, step_seconds=0.5, lowest_pitch=69, n_pitches=1, n_harmonics=3,
                            attack=0.0, release=0.0)[0]
    t = np.arange(n) / sr
    k = np.arange(1, 4)
    amps = (1 / k) / np.sum(1 / k) / synth.MAX_VOICES
    expected = sum(a * np.sin(2 * np.pi * kk * 440.0 * t) for a, kk in zip(amps, k))
    # float32 rounding only: the phase is computed in float64
    np.testing.assert_allclose(wave, expected, atol=1e-8)


def test_deterministic_and_independent_of_batch(rng):
    seqs = (rng.random((6, 4, 48)) < 0.15).astype(np.float32)
    a = synth.seq_to_wav(seqs, **SYNTH)
    b = synth.seq_to_wav(seqs, **SYNTH)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[2:3], synth.seq_to_wav(seqs[2], **SYNTH))


def test_silence_is_zero():
    wav = synth.seq_to_wav(np.zeros((3, 48)), **SYNTH)
    assert np.all(wav == 0)


def test_fixed_amplitude_dense_chords_never_clip():
    # every pitch at once: the loudest possible seq
    wav = synth.seq_to_wav(np.ones((2, 48)), **SYNTH)
    assert np.abs(wav).max() <= 1.0
    # no per-clip normalization: a note is as loud alone as inside a chord
    single = synth.seq_to_wav(one_note_seq(60), **SYNTH)
    assert np.abs(single).max() <= 1.0 / synth.MAX_VOICES
    chord = one_note_seq(60) + one_note_seq(64) + one_note_seq(67)
    parts = sum(synth.seq_to_wav(one_note_seq(p), **SYNTH) for p in (60, 64, 67))
    np.testing.assert_allclose(synth.seq_to_wav(chord, **SYNTH), parts, atol=1e-7)


def test_envelope_and_restrike_rule():
    sr, n = SYNTH["sr"], 8000
    wav = synth.seq_to_wav(one_note_seq(69, n_steps=2), **SYNTH)[0]
    attack_n, release_n = int(0.02 * sr), int(0.05 * sr)
    # a held pitch is struck again: silent at each step start, fading at each step end
    assert wav[0] == 0 and wav[n] == 0
    assert np.abs(wav[n - 20 : n]).max() < 0.05 * np.abs(wav).max()
    # the two steps are the same note
    np.testing.assert_array_equal(wav[:n], wav[n:])
    # full level between the ramps, rising through the attack
    body = np.abs(wav[attack_n : n - release_n]).max()
    assert np.abs(wav[: attack_n // 4]).max() < 0.5 * body
    assert body == pytest.approx(np.abs(wav).max())


def test_ramps_longer_than_a_step_are_shortened():
    wav = synth.seq_to_wav(one_note_seq(69), **{**SYNTH, "attack": 0.4, "release": 0.4})[0]
    assert wav[0] == 0 and np.abs(wav[-5:]).max() < 0.01 * np.abs(wav).max()
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() > 0


@pytest.mark.parametrize("pitches", [[69], [60, 64, 67]])
def test_same_pitch_content_as_pretty_midi_synthesize(pitches):
    """pretty_midi's sine synthesizer is the reference: same strongest frequencies."""
    sr = 16000
    seq = sum(one_note_seq(p, n_steps=2) for p in pitches)
    rand_midi = vectorize.seq_to_midi(seq, step_beats=1.0, bpm=120.0, lowest_pitch=36, hold="tie")
    ref = rand_midi.synthesize(fs=sr, wave=np.sin)  # pretty_midi 0.2.11: int fade-out length
    ours = synth.seq_to_wav(seq, **{**SYNTH, "sr": sr, "n_harmonics": 1})[0]
    n = len(ours)
    assert len(ref) >= n and np.all(np.isfinite(ref))

    def top_peaks(wav, k):
        spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
        freqs = np.fft.rfftfreq(len(wav), 1 / sr)
        peaks = [i for i in range(1, len(spec) - 1) if spec[i] >= spec[i - 1] and spec[i] > spec[i + 1]]
        return np.sort(freqs[sorted(peaks, key=lambda i: -spec[i])[:k]])

    expected = np.sort([440.0 * 2 ** ((p - 69) / 12) for p in pitches])
    bin_hz = sr / n
    np.testing.assert_allclose(top_peaks(ref[:n], len(pitches)), expected, atol=bin_hz)
    np.testing.assert_allclose(top_peaks(ours, len(pitches)), expected, atol=bin_hz)


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "seqs, match",
    [
        (np.zeros(48), "shape"),
        (np.zeros((1, 2, 3, 48)), "shape"),
        (np.full((2, 48), np.nan), "NaN"),
        (np.full((2, 48), 0.5), "multi-hot"),
        (np.zeros((0, 48)), "at least one step"),
    ],
)
def test_bad_seqs_raise(seqs, match):
    with pytest.raises(MusicRLError, match=match):
        synth.seq_to_wav(seqs, **SYNTH)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"sr": 0}, "sr"),
        ({"sr": 16000.0}, "sr"),
        ({"step_seconds": 0.0}, "step_seconds"),
        ({"step_seconds": float("nan")}, "step_seconds"),
        ({"attack": -0.1}, "attack"),
        ({"n_harmonics": 0}, "n_harmonics"),
        ({"lowest_pitch": 100}, "MIDI 0..127"),
    ],
)
def test_bad_settings_raise(override, match):
    with pytest.raises(MusicRLError, match=match):
        synth.seq_to_wav(np.zeros((2, 48)), **{**SYNTH, **override})


# --- soundfont --------------------------------------------------------------------


def test_default_soundfont_ships_with_pretty_midi():
    path = synth.default_sf2_path()
    assert path.is_file() and path.name == "TimGM6mb.sf2"


@pytest.mark.parametrize("sr", [16000, 22050])
def test_soundfont_render_is_finite_nonsilent_and_sized(rng, sr):
    rand_midi = midi.rand_progression(rng, n_chords=4)
    wav = synth.midi_to_wav_soundfont(rand_midi, sr=sr)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert len(wav) == round((rand_midi.get_end_time() + 1.0) * sr)
    assert np.all(np.isfinite(wav))
    assert np.sqrt(np.mean(wav**2)) > 1e-3


def test_soundfont_render_pitch():
    sr = 16000
    piano = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes.append(pretty_midi.Note(velocity=100, pitch=69, start=0.1, end=1.1))
    piano.instruments.append(inst)
    wav = synth.midi_to_wav_soundfont(piano, sr=sr, tail=0.0)
    assert len(wav) == round(1.1 * sr)
    assert np.abs(wav[: int(0.09 * sr)]).max() == 0  # nothing before the note
    hz, bin_hz = peak_hz(wav[int(0.1 * sr) :], sr)
    assert abs(hz - 440.0) <= bin_hz


def test_soundfont_bad_input_raises(tmp_path):
    rand_midi = midi.rand_progression(0, n_chords=2)
    with pytest.raises(MusicRLError, match="does not exist"):
        synth.midi_to_wav_soundfont(rand_midi, sr=16000, sf2_path=tmp_path / "missing.sf2")
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    with pytest.raises(MusicRLError, match="cannot load soundfont"):
        synth.midi_to_wav_soundfont(rand_midi, sr=16000, sf2_path=broken)
    with pytest.raises(MusicRLError, match="PrettyMIDI"):
        synth.midi_to_wav_soundfont(np.zeros((2, 48)), sr=16000)


# --- WAV files ---------------------------------------------------------------------


def test_write_wav_round_trip(tmp_path):
    wav = synth.seq_to_wav(one_note_seq(69, n_steps=2), **SYNTH)[0] * 20
    path = tmp_path / "a4.wav"
    synth.write_wav(path, wav, sr=16000)
    back, sr = soundfile.read(path, dtype="float32")
    assert sr == 16000
    np.testing.assert_allclose(back, wav, atol=1 / 2**15)
    synth.write_wav(path, wav, sr=16000, subtype="FLOAT")  # overwrites in place
    back, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_array_equal(back, wav)
    assert [p.name for p in tmp_path.iterdir()] == ["a4.wav"]  # no temporary file left


@pytest.mark.parametrize(
    "wav, match",
    [(np.zeros((2, 10)), "shape"), (np.array([0.0, np.nan]), "NaN"), (np.arange(4), "floating")],
)
def test_write_wav_bad_input_raises(tmp_path, wav, match):
    with pytest.raises(MusicRLError, match=match):
        synth.write_wav(tmp_path / "x.wav", wav, sr=16000)
    assert not list(tmp_path.iterdir())


def test_write_wav_to_missing_folder_raises(tmp_path):
    with pytest.raises(MusicRLError, match="cannot write WAV"):
        synth.write_wav(tmp_path / "nope" / "x.wav", np.zeros(10, dtype=np.float32), sr=16000)
