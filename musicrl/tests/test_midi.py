"""Tests of musicrl.music.midi: safe reading, atomic writing, random pieces."""

import io

import numpy as np
import pretty_midi
import pytest

from musicrl.errors import MusicRLError
from musicrl.music.midi import (
    CHORD_QUALITIES,
    load_midi,
    midi_from_bytes,
    rand_midis,
    rand_noise,
    rand_progression,
    save_midi,
)


def _notes(midi):
    return [(n.pitch, round(n.start, 6), round(n.end, 6), n.velocity) for i in midi.instruments for n in i.notes]


def _chords(midi):
    """Pitches grouped by onset time."""
    by_start = {}
    for inst in midi.instruments:
        for n in inst.notes:
            by_start.setdefault(round(n.start, 6), []).append(n.pitch)
    return [sorted(by_start[t]) for t in sorted(by_start)]


def test_save_and_load_round_trip(tmp_path, rng):
    midi = rand_progression(rng, n_chords=8)
    path = tmp_path / "piece.mid"
    save_midi(midi, path)
    assert [p.name for p in tmp_path.iterdir()] == ["piece.mid"]  # no temporary file left
    back = load_midi(path)
    assert [(p, v) for p, _, _, v in _notes(back)] == [(p, v) for p, _, _, v in _notes(midi)]
    np.testing.assert_allclose(
        [(s, e) for _, s, e, _ in _notes(back)], [(s, e) for _, s, e, _ in _notes(midi)], atol=1e-2
    )


def test_load_midi_does_not_modify_the_file(tmp_path, rng):
    path = tmp_path / "piece.mid"
    save_midi(rand_progression(rng), path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_midi(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_save_midi_to_missing_folder_raises(tmp_path, rng):
    with pytest.raises(MusicRLError, match="cannot write"):
        save_midi(rand_progression(rng), tmp_path / "missing" / "x.mid")


def _valid_bytes(rng):
    buf = io.BytesIO()
    rand_progression(rng, n_chords=16).write(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda data: b"", "empty"),
        (lambda data: data[: len(data) // 2], "could not be parsed"),
        (lambda data: data[:20], "could not be parsed"),
        (lambda data: b"RIFF" + data[4:], "not a MIDI file"),
        (lambda data: b"hello, this is text\n", "not a MIDI file"),
    ],
    ids=["empty", "truncated", "header-only", "wrong-magic", "text"],
)
def test_bad_files_raise(tmp_path, rng, make, match):
    path = tmp_path / "bad.mid"
    path.write_bytes(make(_valid_bytes(rng)))
    with pytest.raises(MusicRLError, match=match) as info:
        load_midi(path)
    assert "bad.mid" in str(info.value)


def test_missing_file_and_directory_raise(tmp_path):
    with pytest.raises(MusicRLError, match="cannot read"):
        load_midi(tmp_path / "nope.mid")
    (tmp_path / "x.mid").mkdir()
    with pytest.raises(MusicRLError, match="is a directory"):
        load_midi(tmp_path / "x.mid")


def test_midi_from_bytes_names_the_source(rng):
    with pytest.raises(MusicRLError, match="upload.mid"):
        midi_from_bytes(b"MThd\x00\x00", name="upload.mid")
    midi = midi_from_bytes(_valid_bytes(rng))
    assert len(midi.instruments[0].notes) > 0


@pytest.mark.parametrize("maker", [rand_progression, rand_noise])
def test_random_pieces_are_seeded(maker):
    a = _notes(maker(7))
    assert a == _notes(maker(7))
    assert a != _notes(maker(8))
    assert _notes(maker(np.random.default_rng(3))) == _notes(maker(np.random.default_rng(3)))


@pytest.mark.parametrize("n_chords,chord_beats,bpm", [(1, 1.0, 120.0), (8, 2.0, 90.0), (16, 0.5, 140.0)])
def test_rand_progression_shape(rng, n_chords, chord_beats, bpm):
    midi = rand_progression(rng, n_chords=n_chords, chord_beats=chord_beats, bpm=bpm, program=52, velocity=70)
    (inst,) = midi.instruments
    assert inst.program == 52 and not inst.is_drum
    chords = _chords(midi)
    assert len(chords) == n_chords
    dur = chord_beats * 60.0 / bpm
    for n in inst.notes:
        assert n.velocity == 70
        assert n.end - n.start == pytest.approx(dur)
    assert midi.get_end_time() == pytest.approx(n_chords * dur)


@pytest.mark.parametrize("pitch_range", [(48, 76), (36, 48), (60, 100)])
def test_rand_progression_chords_are_known_qualities_in_range(rng, pitch_range):
    lo, hi = pitch_range
    shapes = {tuple(sorted({i % 12 for i in q})) for q in CHORD_QUALITIES.values()}
    for chord in _chords(rand_progression(rng, n_chords=64, pitch_range=pitch_range)):
        assert lo <= min(chord) and max(chord) <= hi
        assert len(chord) in (3, 4) and len(set(chord)) == len(chord)
        assert max(chord) - min(chord) < 24
        # some rotation of the chord's pitch classes is a known quality
        pcs = {p % 12 for p in chord}
        assert any(tuple(sorted((p - r) % 12 for p in pcs)) in shapes for r in pcs)


@pytest.mark.parametrize("notes_per_chord", [(1, 1), (1, 6), (4, 4)])
def test_rand_noise_ranges(rng, notes_per_chord):
    kmin, kmax = notes_per_chord
    chords = _chords(rand_noise(rng, n_chords=40, pitch_range=(40, 60), notes_per_chord=notes_per_chord))
    assert len(chords) == 40
    for chord in chords:
        assert kmin <= len(chord) <= kmax and len(set(chord)) == len(chord)
        assert 40 <= min(chord) and max(chord) <= 60
    assert {len(c) for c in chords} == set(range(kmin, kmax + 1))


def test_rand_midis_kinds_and_distinct_pieces(rng):
    pieces = rand_midis(4, rng, kind="noise", n_chords=8)
    assert len(pieces) == 4 and all(isinstance(p, pretty_midi.PrettyMIDI) for p in pieces)
    assert len({tuple(_notes(p)) for p in pieces}) == 4
    assert _notes(rand_midis(2, 5)[1]) == _notes(rand_midis(2, 5)[1])
    with pytest.raises(MusicRLError, match="kind"):
        rand_midis(2, rng, kind="jazz")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_chords": 0}, "n_chords"),
        ({"chord_beats": 0}, "chord_beats"),
        ({"bpm": -1}, "bpm"),
        ({"program": 200}, "program"),
        ({"pitch_range": (80, 60)}, "pitch_range"),
        ({"pitch_range": (60, 65)}, "octave"),
    ],
)
def test_rand_progression_bad_settings_raise(kwargs, match):
    with pytest.raises(MusicRLError, match=match):
        rand_progression(0, **kwargs)


def test_rand_noise_bad_notes_per_chord_raises():
    with pytest.raises(MusicRLError, match="notes_per_chord"):
        rand_noise(0, pitch_range=(60, 62), notes_per_chord=(1, 5))
