"""Tests of musicrl.music.vectorize: MIDI <-> chord grid."""

import io

import mido
import numpy as np
import pretty_midi
import pytest

from musicrl.errors import MusicRLError
from musicrl.music.midi import midi_from_bytes
from musicrl.music.vectorize import check_seqs, midi_to_seq, seq_to_midi


def _rand_seq(rng, n_steps, n_pitches, density=0.15):
    seq = (rng.random((n_steps, n_pitches)) < density).astype(np.float32)
    # a MIDI file ends at its last note, so the last step must sound to round-trip
    seq[-1, rng.integers(n_pitches)] = 1.0
    return seq


def _midi_bytes(midi):
    buf = io.BytesIO()
    midi.write(buf)
    return buf.getvalue()


def _piece(notes, *, bpm=120.0, drum_notes=()):
    """notes: (pitch, start_beat, end_beat) on one instrument."""
    spb = 60.0 / bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=0)
    for p, s, e in notes:
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=p, start=s * spb, end=e * spb))
    midi.instruments.append(inst)
    if drum_notes:
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        for p, s, e in drum_notes:
            drums.notes.append(pretty_midi.Note(velocity=80, pitch=p, start=s * spb, end=e * spb))
        midi.instruments.append(drums)
    return midi


@pytest.mark.parametrize("hold", ["tie", "restrike"])
@pytest.mark.parametrize("step_beats", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("lowest_pitch,n_pitches", [(36, 48), (21, 24), (48, 60)])
def test_round_trip_seq_midi_seq_is_exact(rng, hold, step_beats, lowest_pitch, n_pitches):
    seq = _rand_seq(rng, 12, n_pitches)
    midi = seq_to_midi(seq, step_beats=step_beats, bpm=100.0, lowest_pitch=lowest_pitch, hold=hold)
    back = midi_to_seq(midi, step_beats=step_beats, lowest_pitch=lowest_pitch, n_pitches=n_pitches)
    np.testing.assert_array_equal(back, seq)
    assert back.dtype == np.float32


@pytest.mark.parametrize("hold", ["tie", "restrike"])
def test_round_trip_through_a_midi_file(rng, hold):
    seq = _rand_seq(rng, 16, 48)
    midi = seq_to_midi(seq, step_beats=1.0, bpm=97.0, lowest_pitch=36, hold=hold)
    back = midi_to_seq(midi_from_bytes(_midi_bytes(midi)), step_beats=1.0, lowest_pitch=36, n_pitches=48)
    np.testing.assert_array_equal(back, seq)


def test_tie_and_restrike_differ_in_notes_not_in_seq():
    seq = np.zeros((4, 12), np.float32)
    seq[:, 0] = 1
    tie = seq_to_midi(seq, lowest_pitch=60, hold="tie")
    restrike = seq_to_midi(seq, lowest_pitch=60, hold="restrike")
    assert len(tie.instruments[0].notes) == 1
    assert len(restrike.instruments[0].notes) == 4


def _tempo_change_file(tempos_bpm, chords, *, tpq=480):
    """One chord per beat; tempo ``tempos_bpm[i]`` from beat 4*i on."""
    mid = mido.MidiFile(ticks_per_beat=tpq)
    meta = mido.MidiTrack()
    mid.tracks.append(meta)
    last = 0
    for i, bpm in enumerate(tempos_bpm):
        tick = 4 * i * tpq
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=tick - last))
        last = tick
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = []
    for beat, chord in enumerate(chords):
        for p in chord:
            events.append((beat * tpq, 1, "note_on", p))
            events.append(((beat + 1) * tpq, 0, "note_off", p))
    events.sort()
    now = 0
    for tick, _, kind, p in events:
        track.append(mido.Message(kind, note=p, velocity=64 if kind == "note_on" else 0, time=tick - now))
        now = tick
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.mark.parametrize("tempos", [(120,), (60, 180), (90, 240, 45)])
def test_tempo_changes_quantize_to_the_same_grid(tempos):
    chords = [(60, 64, 67), (62, 65, 69), (64, 67, 71), (65, 69, 72)] * 3
    midi = midi_from_bytes(_tempo_change_file(tempos, chords))
    seq = midi_to_seq(midi, step_beats=1.0, lowest_pitch=36, n_pitches=48)
    expected = np.zeros((len(chords), 48), np.float32)
    for t, chord in enumerate(chords):
        expected[t, [p - 36 for p in chord]] = 1
    np.testing.assert_array_equal(seq, expected)


def test_instruments_are_merged_and_drums_dropped():
    midi = _piece([(60, 0, 2)], drum_notes=[(38, 0, 2), (42, 1, 2)])
    other = pretty_midi.Instrument(program=40)
    other.notes.append(pretty_midi.Note(velocity=80, pitch=43, start=0.0, end=0.5))  # one beat at 120 bpm
    midi.instruments.append(other)
    seq = midi_to_seq(midi, step_beats=1.0, lowest_pitch=36, n_pitches=48)
    assert seq.shape == (2, 48)
    assert set(np.nonzero(seq[0])[0]) == {60 - 36, 43 - 36}
    assert set(np.nonzero(seq[1])[0]) == {60 - 36}
    # drum pitches 38 and 42 would be columns 2 and 6
    assert seq[:, 2].sum() == 0 and seq[:, 6].sum() == 0


def test_drums_only_and_empty_pieces_raise():
    with pytest.raises(MusicRLError, match="no pitched notes"):
        midi_to_seq(_piece([], drum_notes=[(38, 0, 1)]), name="drums.mid")
    with pytest.raises(MusicRLError, match="no pitched notes"):
        midi_to_seq(pretty_midi.PrettyMIDI())


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (0.0, 0.5, [1, 0, 0]),  # exactly half a step counts
        (0.0, 0.25, [1, 0, 0]),  # shorter than half: still in its onset step
        (0.7, 1.2, [1, 0, 0]),  # 0.3 + 0.2 of two steps: onset step only
        (0.4, 1.6, [1, 1, 0]),  # 0.6 of step 0 and 0.6 of step 1
        (1.6, 2.4, [0, 1, 0]),  # 0.4 of step 1, 0.4 of step 2: onset step
    ],
)
def test_cover_rule_keeps_short_notes(start, end, expected):
    # a long anchor note on another pitch fixes the piece at 3 steps
    midi = _piece([(60, start, end), (40, 0.0, 3.0)])
    seq = midi_to_seq(midi, step_beats=1.0, lowest_pitch=36, n_pitches=48, quantize="cover")
    np.testing.assert_array_equal(seq[:, 60 - 36], expected)
    assert seq.shape == (3, 48)


def test_short_notes_of_one_pitch_add_up_within_a_step():
    # two quarter-step notes in step 1 (0.5 in all) fill it, without any onset in step 1 alone
    midi = _piece([(60, 0.8, 1.25), (60, 1.5, 1.75), (40, 0.0, 3.0)])
    seq = midi_to_seq(midi, step_beats=1.0, lowest_pitch=36, n_pitches=48, quantize="cover")
    np.testing.assert_array_equal(seq[:, 60 - 36], [1, 1, 0])


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (0.0, 1.0, [1, 0, 0]),  # a whole step
        (0.0, 0.5, [1, 0, 0]),  # the first eighth of a pair sounds at the sampling point
        (0.5, 1.0, [0, 0, 0]),  # the second eighth (a passing tone) sounds at none: dropped
        (0.1, 1.0, [1, 0, 0]),  # a slightly late onset still lands in its step
        (0.3, 2.0, [0, 1, 0]),  # starts after step 0's sampling point
        (0.0, 0.2, [0, 0, 0]),  # an ornament before the sampling point: dropped
        (0.9, 2.3, [0, 1, 1]),  # an anticipation held over the next steps
    ],
)
def test_sample_rule_keeps_what_sounds_on_the_beat(start, end, expected):
    midi = _piece([(60, start, end), (40, 0.0, 3.0)])
    seq = midi_to_seq(midi, step_beats=1.0, lowest_pitch=36, n_pitches=48)
    np.testing.assert_array_equal(seq[:, 60 - 36], expected)


def test_sample_rule_gives_four_voices_for_a_chorale_with_passing_tones():
    # soprano moves in eighths over a held three-voice chord: a step keeps four pitches
    notes = [(48, 0, 2), (55, 0, 2), (64, 0, 2), (72, 0, 0.5), (74, 0.5, 1), (76, 1, 1.5), (77, 1.5, 2)]
    seq = midi_to_seq(_piece(notes), step_beats=1.0, lowest_pitch=36, n_pitches=48)
    assert seq.sum(axis=1).tolist() == [4, 4]
    assert [36 + p for p in np.nonzero(seq[1])[0]] == [48, 55, 64, 76]
    cover = midi_to_seq(_piece(notes), step_beats=1.0, lowest_pitch=36, n_pitches=48, quantize="cover")
    assert cover.sum(axis=1).tolist() == [5, 5]


def test_sample_rule_raises_when_every_note_falls_between_beats():
    with pytest.raises(MusicRLError, match="no notes left after quantization"):
        midi_to_seq(_piece([(60, 0.5, 0.75), (62, 1.5, 1.6)]), name="ornaments.mid")


@pytest.mark.parametrize(
    "pitch,expected_pitch",
    [(35, 47), (24, 36), (84, 72), (100, 76), (36, 36), (83, 83)],
)
def test_out_of_range_pitches_fold_by_octaves(pitch, expected_pitch):
    seq = midi_to_seq(_piece([(pitch, 0, 1)]), step_beats=1.0, lowest_pitch=36, n_pitches=48)
    assert list(np.nonzero(seq[0])[0]) == [expected_pitch - 36]
    assert (expected_pitch - pitch) % 12 == 0


def test_out_of_range_drop_ignores_and_raises_when_nothing_left():
    seq = midi_to_seq(_piece([(20, 0, 1), (60, 0, 1)]), lowest_pitch=36, n_pitches=48, out_of_range="drop")
    assert list(np.nonzero(seq[0])[0]) == [24]
    with pytest.raises(MusicRLError, match="no notes within pitches"):
        midi_to_seq(_piece([(20, 0, 1)]), lowest_pitch=36, n_pitches=48, out_of_range="drop")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"step_beats": 0}, "step_beats"),
        ({"lowest_pitch": 100, "n_pitches": 48}, "within 0..127"),
        ({"out_of_range": "clip"}, "out_of_range"),
        ({"n_pitches": 8, "lowest_pitch": 60}, "at least 12"),
    ],
)
def test_midi_to_seq_bad_settings_raise(kwargs, match):
    with pytest.raises(MusicRLError, match=match):
        midi_to_seq(_piece([(60, 0, 1)]), **kwargs)


@pytest.mark.parametrize(
    "seq,match",
    [
        (np.zeros(48), "shape"),
        (np.zeros((2, 4, 48)), "single seq"),
        (np.zeros((2, 3, 4, 48)), "shape"),
        (np.full((4, 48), np.nan), "NaN"),
        (np.full((4, 48), 0.5), "multi-hot"),
        (np.zeros((0, 48)), "at least one step"),
        (np.array([["a"] * 48]), "numeric"),
    ],
)
def test_seq_to_midi_bad_seqs_raise(seq, match):
    with pytest.raises(MusicRLError, match=match):
        seq_to_midi(seq)


def test_seq_to_midi_bad_settings_raise():
    seq = np.ones((2, 48), np.float32)
    with pytest.raises(MusicRLError, match="hold"):
        seq_to_midi(seq, hold="legato")
    with pytest.raises(MusicRLError, match="lowest_pitch"):
        seq_to_midi(seq, lowest_pitch=90)
    with pytest.raises(MusicRLError, match="program"):
        seq_to_midi(seq, program=128)
    with pytest.raises(MusicRLError, match="bpm"):
        seq_to_midi(seq, bpm=0)


def test_check_seqs_batches_and_checks_pitches():
    out = check_seqs(np.ones((4, 12), dtype=bool))
    assert out.shape == (1, 4, 12) and out.dtype == np.float32
    assert check_seqs(np.zeros((3, 4, 12), np.int64)).shape == (3, 4, 12)
    with pytest.raises(MusicRLError, match="48 pitch columns"):
        check_seqs(np.zeros((3, 4, 12)), n_pitches=48, name="gen_seqs")
    with pytest.raises(MusicRLError, match="gen_seqs"):
        check_seqs(np.zeros(3), name="gen_seqs")


def test_seq_to_midi_writes_program_velocity_and_timing():
    seq = np.zeros((3, 48), np.float32)
    seq[1, 24] = 1
    midi = seq_to_midi(seq, step_beats=2.0, bpm=60.0, lowest_pitch=36, program=52, velocity=99)
    (inst,) = midi.instruments
    assert inst.program == 52
    (note,) = inst.notes
    assert (note.pitch, note.velocity) == (60, 99)
    assert note.start == pytest.approx(2.0) and note.end == pytest.approx(4.0)


# --- midis_to_seqs: a batch of pieces on one grid ---------------------------------


@pytest.mark.parametrize("n_steps", [4, 8, 12])
def test_midis_to_seqs_cuts_and_pads_to_n_steps(rng, n_steps):
    from musicrl.music.midi import rand_midis
    from musicrl.music.vectorize import midis_to_seqs

    rand_midis_ = rand_midis(3, rng, n_chords=8)
    rand_seqs = midis_to_seqs(rand_midis_, n_steps=n_steps, n_pitches=48)
    assert rand_seqs.shape == (3, n_steps, 48) and rand_seqs.dtype == np.float32
    for rand_midi, rand_seq in zip(rand_midis_, rand_seqs):
        whole = midi_to_seq(rand_midi, n_pitches=48)
        keep = min(n_steps, len(whole))
        np.testing.assert_array_equal(rand_seq[:keep], whole[:keep])
        assert not rand_seq[keep:].any()  # padded with rests


def test_midis_to_seqs_names_the_bad_piece(rng):
    from musicrl.music.midi import rand_progression
    from musicrl.music.vectorize import midis_to_seqs

    with pytest.raises(MusicRLError, match=r"midis\[1\]"):
        midis_to_seqs([rand_progression(rng), pretty_midi.PrettyMIDI()], n_steps=4)
    with pytest.raises(MusicRLError, match="at least one"):
        midis_to_seqs([], n_steps=4)
    with pytest.raises(MusicRLError, match="n_steps"):
        midis_to_seqs([rand_progression(rng)], n_steps=0)
