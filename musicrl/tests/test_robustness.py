"""Hostile input: corrupt and pathological MIDI files and folders, and bad settings.

Every failure must be a :class:`MusicRLError` naming the file (or config
field) and the reason; nothing else may escape, nothing may hang, and a
folder is never modified. The fuzz tests feed a few thousand mutated MIDI
files through ``load_midi`` and ``midi_to_seq``; ``benchmarks/fuzz_midi.py``
runs the same mutations for longer.

The mutation engine takes a ``draw(lo, hi) -> int`` function, so hypothesis
(in the tests) and a seeded NumPy generator (in the benchmark) drive the same
code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import pathlib
import re
import signal
import struct
import tempfile
import typing

import mido
import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicrl import cli

from musicrl.music import data
from musicrl.cli import main
from musicrl.config import Config, config_from_overrides, load_config
from musicrl.errors import MusicRLError
from musicrl.music.midi import MAX_MIDI_BYTES, MAX_MIDI_TRACKS, load_midi, midi_from_bytes, rand_progression, save_midi
from musicrl.music.vectorize import MAX_SEQ_STEPS, midi_to_seq, seq_to_midi

# --------------------------------------------------------------------------
# raw Standard MIDI File bytes
# --------------------------------------------------------------------------

END_OF_TRACK = b"\x00\xff\x2f\x00"
ONE_NOTE = b"\x00\x90\x3c\x50\x83\x60\x80\x3c\x00"  # middle C for one beat at 480 ticks per beat


def smf_header(*, fmt: int = 1, n_tracks: int = 1, division: int = 480, length: int = 6) -> bytes:
    """An ``MThd`` chunk."""
    return b"MThd" + struct.pack(">IHHH", length, fmt, n_tracks, division)


def smf_track(body: bytes, *, end: bool = True) -> bytes:
    """An ``MTrk`` chunk around ``body`` (delta-time/event pairs)."""
    body = body + (END_OF_TRACK if end else b"")
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(*bodies: bytes, fmt: int = 1, division: int = 480) -> bytes:
    """A whole file: one track per body."""
    return smf_header(fmt=fmt, n_tracks=len(bodies), division=division) + b"".join(smf_track(b) for b in bodies)


def tempo_event(us_per_beat: int) -> bytes:
    return b"\x00\xff\x51\x03" + us_per_beat.to_bytes(3, "big")


def varint(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    midi.write(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------
# the mutation engine (shared with benchmarks/fuzz_midi.py)
# --------------------------------------------------------------------------

Draw = typing.Callable[[int, int], int]
"""``draw(lo, hi)``: an int in ``lo..hi`` inclusive."""


@functools.lru_cache(maxsize=None)
def seed_midi_bytes() -> tuple[bytes, ...]:
    """Valid files to mutate: a progression, a many-event multi-track file, format 0, ties, drums."""
    rich = mido.MidiFile(type=1, ticks_per_beat=96)
    meta = mido.MidiTrack([
        mido.MetaMessage("track_name", name="conductor"),
        mido.MetaMessage("set_tempo", tempo=600000),
        mido.MetaMessage("time_signature", numerator=3, denominator=4),
        mido.MetaMessage("key_signature", key="Eb"),
        mido.MetaMessage("set_tempo", tempo=400000, time=192),
    ])
    keys = mido.MidiTrack([mido.Message("program_change", program=5), mido.Message("control_change", control=64, value=127)])
    for i, pitch in enumerate((48, 52, 55, 60, 64, 67, 72)):
        keys.append(mido.Message("note_on", note=pitch, velocity=70, time=0 if i % 3 else 24))
        keys.append(mido.Message("pitchwheel", pitch=200 * i, time=10))
        keys.append(mido.Message("note_off", note=pitch, velocity=0, time=86))
    keys.append(mido.Message("sysex", data=[0x7E, 0x7F, 0x09, 0x01]))
    drums = mido.MidiTrack()
    for i in range(8):
        drums.append(mido.Message("note_on", channel=9, note=36 + i % 3, velocity=100, time=48 if i else 0))
        drums.append(mido.Message("note_off", channel=9, note=36 + i % 3, time=24))
    rich.tracks += [meta, keys, drums]
    buf = io.BytesIO()
    rich.save(file=buf)

    # format 0 with running status on two channels
    body = tempo_event(500000) + b"\x00\x90\x30\x40\x00\x34\x40\x00\x91\x37\x40\x83\x60\x90\x30\x00\x00\x34\x00\x00\x81\x37\x00"
    fmt0 = smf(body, fmt=0, division=480)

    seq = np.zeros((12, 48), np.float32)
    seq[np.arange(12), (np.arange(12) * 5) % 48] = 1
    seq[:6, 12] = 1
    tied = _midi_bytes(seq_to_midi(seq, hold="tie"))

    drums_only = smf(b"\x00\x99\x24\x64\x83\x60\x89\x24\x00", fmt=0)
    return (_midi_bytes(rand_progression(7, n_chords=16)), buf.getvalue(), fmt0, tied, drums_only)


INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x99, 0xB0, 0xC0, 0xE0, 0xF0, 0xF7, 0xFF)

NASTY_EVENTS = (
    tempo_event(0),
    tempo_event(0xFFFFFF),
    tempo_event(1),
    b"\x8f\xff\xff\x7f\x90\x3c\x40",  # the largest delta time
    b"\x00\x90\x7f\x7f",
    b"\x00\x99\x24\x64",
    b"\x00\xf0\x8f\xff\xff\x7f",  # sysex claiming 256 MB
    b"\x00\xff\x01\x8f\xff\xff\x7f",  # text claiming 256 MB
    END_OF_TRACK,
    b"\x00\xff\x59\x02\x20\x05",  # key signature of 32 sharps
    b"\x00\xff\x58\x04\x00\x02\x18\x08",  # time signature 0/4
    b"\x00\xff\x58\x04\x04\xff\x18\x08",  # time signature 4/2**255
    b"\x00\xc0\x80",
    b"\x00\xb0\x40\x7f",
    b"\x00\xe0\x00\x40",
    b"\x00\x3c\x40",  # running status with no status yet
    b"\x00\xf7\x02\x01\x02",
    b"\x00\xff\x54\x05\x7f\x3b\x3b\x1f\x63",
    b"\x00\x80\x3c\x00",
    b"\x00\x90\x3c\x40\x00\x90\x3c\x40",
    b"\x00\xf4",
    b"\x00\xff\x51\x00",  # tempo with no data
)


def chunk_offsets(buf: bytes) -> list[int]:
    """Offsets of the chunk headers found by walking the chunk lengths from the start."""
    out, pos = [], 0
    while pos + 8 <= len(buf) and len(out) < 64:
        out.append(pos)
        pos += 8 + int.from_bytes(buf[pos + 4 : pos + 8], "big")
    return out


def _pick(draw: Draw, options: typing.Sequence):
    return options[draw(0, len(options) - 1)]


def _flip_bit(buf: bytearray, draw: Draw) -> bytearray:
    if buf:
        buf[draw(0, len(buf) - 1)] ^= 1 << draw(0, 7)
    return buf


def _set_byte(buf: bytearray, draw: Draw) -> bytearray:
    if buf:
        i = draw(0, len(buf) - 1)
        buf[i] = _pick(draw, INTERESTING_BYTES) if draw(0, 1) else draw(0, 255)
    return buf


def _set_data_byte(buf: bytearray, draw: Draw) -> bytearray:
    """Change a byte below 0x80 (a pitch, velocity, delta or length) to another: the file mostly still parses."""
    low = [i for i in range(14, len(buf)) if buf[i] < 0x80]
    if low:
        buf[_pick(draw, low)] = _pick(draw, (0, 1, 0x7F)) if draw(0, 3) == 0 else draw(0, 0x7F)
    return buf


def _truncate(buf: bytearray, draw: Draw) -> bytearray:
    return buf[: draw(0, len(buf))]


def _insert_bytes(buf: bytearray, draw: Draw) -> bytearray:
    i = draw(0, len(buf))
    return buf[:i] + bytes(draw(0, 255) for _ in range(draw(1, 16))) + buf[i:]


def _delete(buf: bytearray, draw: Draw) -> bytearray:
    i = draw(0, len(buf))
    return buf[:i] + buf[i + draw(1, 32) :]


def _duplicate(buf: bytearray, draw: Draw) -> bytearray:
    i = draw(0, len(buf))
    piece = buf[i : i + draw(1, 64)]
    j = draw(0, len(buf))
    return buf[:j] + piece + buf[j:]


def _set_chunk_length(buf: bytearray, draw: Draw) -> bytearray:
    offsets = chunk_offsets(buf)
    if offsets:
        pos = _pick(draw, offsets)
        length = int.from_bytes(buf[pos + 4 : pos + 8], "big")
        new = _pick(draw, (0, 1, 5, max(0, length - 1), (length + 1) % 2**32, 2**31 - 1, 2**32 - 1, draw(0, 2**32 - 1)))
        buf[pos + 4 : pos + 8] = new.to_bytes(4, "big")
    return buf


def _set_header_field(buf: bytearray, draw: Draw) -> bytearray:
    if len(buf) >= 14:
        pos = _pick(draw, (8, 10, 12))
        value = _pick(draw, (0, 1, 2, 3, 0x7FFF, 0x8000, 0xE728, 0xFFFF, draw(0, 0xFFFF)))
        buf[pos : pos + 2] = value.to_bytes(2, "big")
    return buf


def _insert_event(buf: bytearray, draw: Draw) -> bytearray:
    """A nasty event at the start of a track, with the track's length fixed to match."""
    tracks = [p for p in chunk_offsets(buf) if buf[p : p + 4] == b"MTrk"]
    event = _pick(draw, NASTY_EVENTS)
    if not tracks:
        return _insert_bytes(buf, draw)
    pos = _pick(draw, tracks)
    length = int.from_bytes(buf[pos + 4 : pos + 8], "big")
    buf[pos + 4 : pos + 8] = ((length + len(event)) % 2**32).to_bytes(4, "big")
    return buf[: pos + 8] + event + buf[pos + 8 :]


BYTE_MUTATIONS = (_flip_bit, _set_byte, _set_data_byte, _set_data_byte, _truncate, _insert_bytes, _delete,
                  _duplicate)
CHUNK_MUTATIONS = (_set_chunk_length, _set_header_field, _insert_event, _insert_event, _set_data_byte)


def mutate(data: bytes, draw: Draw, mutations: typing.Sequence = BYTE_MUTATIONS + CHUNK_MUTATIONS,
           max_ops: int = 4) -> bytes:
    """Apply 1..max_ops mutations, each chosen by ``draw``."""
    buf = bytearray(data)
    for _ in range(draw(1, max_ops)):
        buf = _pick(draw, mutations)(buf, draw)
    return bytes(buf)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

GRID = {"step_beats": 1.0, "lowest_pitch": 36, "n_pitches": 48}


class _Hang(BaseException):
    """Raised by the time box; a BaseException so no ``except Exception`` hides it."""


@contextlib.contextmanager
def time_box(seconds: float, what: str):
    """Turn a hang into a test failure instead of a stuck test run (main thread only)."""

    def _alarm(signum, frame):
        raise _Hang(f"{what} still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def load_and_quantize(path, **grid) -> np.ndarray | None:
    """``midi_to_seq(load_midi(path))``; None when refused, after checking the error names the file."""
    try:
        midi = load_midi(path)
        seq = midi_to_seq(midi, **{**GRID, **grid}, name=f"MIDI file {str(path)!r}")
    except MusicRLError as e:
        assert str(path) in str(e), f"error does not name the file: {e}"
        return None
    assert seq.ndim == 2 and seq.shape[1] == grid.get("n_pitches", GRID["n_pitches"])
    assert 1 <= seq.shape[0] <= MAX_SEQ_STEPS
    assert seq.dtype == np.float32 and np.all((seq == 0) | (seq == 1))
    return seq


def snapshot(root) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file under ``root`` (symlinks not followed)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                out[p] = (pathlib.Path(p).read_bytes(), os.stat(p).st_mtime_ns)
    return out


# --------------------------------------------------------------------------
# hostile files, one by one
# --------------------------------------------------------------------------

HOSTILE_FILES = {
    "random-bytes": (lambda: np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes(), "not a MIDI file"),
    "text": (lambda: b"MThd is how a MIDI file starts, but this is text\n" * 4, "header chunk of|format|could not"),
    "zero-length": (lambda: b"", "empty"),
    "header-only": (lambda: smf_header(), "truncated"),
    "short-header": (lambda: b"MThd\x00\x00\x00\x06\x00\x01", "truncated"),
    "header-length-2": (lambda: smf_header(length=2) + smf_track(ONE_NOTE), "could not be parsed: a header chunk of 2 bytes"),
    "format-7": (lambda: smf_header(fmt=7) + smf_track(ONE_NOTE), "format 7"),
    "no-tracks": (lambda: smf_header(n_tracks=0), "declares no tracks"),
    "too-many-tracks": (lambda: smf_header(n_tracks=5000) + smf_track(ONE_NOTE) * 5000, "5000 tracks, more than the 1024"),
    "65535-tracks": (lambda: smf_header(n_tracks=0xFFFF), "65535 tracks"),
    "smpte-division": (lambda: smf(ONE_NOTE, division=0xE728), "SMPTE"),
    "zero-division": (lambda: smf(ONE_NOTE, division=0), "time division of 0"),
    "tempo-0": (lambda: smf(tempo_event(0) + ONE_NOTE), "tempo of 0"),
    "garbage-track": (lambda: smf_header() + b"MTrk\x00\x00\x00\x40" + bytes(range(0x40, 0x80)), "could not be parsed"),
    "track-length-4GB": (lambda: smf_header() + b"MTrk\xff\xff\xff\xff" + ONE_NOTE, "truncated"),
    "truncated-track": (lambda: smf(ONE_NOTE * 20)[:-17], "truncated"),
    "not-a-track-chunk": (lambda: smf_header() + b"XFIH\x00\x00\x00\x04abcd", "MTrk"),
    "pitch-200": (lambda: smf(b"\x00\x90\xc8\x50\x83\x60\x80\xc8\x00"), "data byte"),
    "velocity-200": (lambda: smf(b"\x00\x90\x3c\xc8\x83\x60\x80\x3c\x00"), "data byte"),
    "largest-delta": (lambda: smf(b"\x00\x90\x3c\x50\x8f\xff\xff\x7f\x80\x3c\x00"), "largest tick"),
    "sysex-256MB": (lambda: smf(b"\x00\xf0\x8f\xff\xff\x7f\xf7"), "could not be parsed"),
    "bad-key-signature": (lambda: smf(b"\x00\xff\x59\x02\x20\x05" + ONE_NOTE), "could not be parsed"),
    "time-signature-0": (lambda: smf(b"\x00\xff\x58\x04\x00\x02\x18\x08" + ONE_NOTE), "could not be parsed"),
    "too-large": (lambda: smf_header() + bytes(MAX_MIDI_BYTES), "larger than"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_hostile_file_is_refused_with_its_name_and_reason(tmp_path, kind):
    make, reason = HOSTILE_FILES[kind]
    path = tmp_path / f"{kind}.mid"
    path.write_bytes(make())
    with time_box(20, kind), pytest.raises(MusicRLError, match=reason) as info:
        load_midi(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("us_per_beat", [1, 250_000, 0xFFFFFF])
def test_extreme_tempos_keep_the_grid(tmp_path, us_per_beat):
    # steps are counted in beats, so 1 us or 16.7 s per beat gives the same chords
    body = tempo_event(us_per_beat) + b"\x00\x90\x3c\x50\x00\x40\x50\x87\x40\x3c\x00\x00\x40\x00\x00\x43\x50\x83\x60\x43\x00"
    path = tmp_path / "tempo.mid"
    path.write_bytes(smf(body))
    seq = load_and_quantize(path)
    expected = np.zeros((3, 48), np.float32)
    expected[:2, [60 - 36, 64 - 36]] = 1
    expected[2, 67 - 36] = 1
    np.testing.assert_array_equal(seq, expected)


def test_drums_only_loads_but_has_no_chords(tmp_path):
    path = tmp_path / "drums.mid"
    path.write_bytes(smf(b"\x00\x99\x24\x64\x83\x60\x89\x24\x00", fmt=0))
    assert load_midi(path).instruments[0].is_drum
    with pytest.raises(MusicRLError, match="drums.mid.*no pitched notes"):
        midi_to_seq(load_midi(path), **GRID, name=str(path))


def test_the_most_tracks_allowed_load_and_merge(tmp_path):
    # each track holds one note a beat later than the last
    tracks = [b"\x00\xff\x03\x01t" + varint(480 * (i % 64)) + b"\x90" + bytes([36 + i % 48]) + b"\x50\x83\x60\x80"
              + bytes([36 + i % 48]) + b"\x00" for i in range(MAX_MIDI_TRACKS)]
    path = tmp_path / "tracks.mid"
    path.write_bytes(smf(*tracks))
    with time_box(30, "1024 tracks"):
        seq = load_and_quantize(path)
    assert seq.shape == (64, 48)
    assert seq.sum() == len({(i % 64, i % 48) for i in range(MAX_MIDI_TRACKS)})
    path.write_bytes(smf(*tracks, ONE_NOTE))
    with pytest.raises(MusicRLError, match=f"{MAX_MIDI_TRACKS + 1} tracks"):
        load_midi(path)


def test_a_piece_longer_than_max_steps_is_refused(tmp_path):
    # one tick per beat: a note at tick 10**6 is 10**6 beats in, within pretty_midi's tick limit
    path = tmp_path / "long.mid"
    path.write_bytes(smf(b"\x00\x90\x3c\x50" + varint(10**6) + b"\x80\x3c\x00", division=1))
    midi = load_midi(path)
    with time_box(20, "long piece"), pytest.raises(MusicRLError, match=f"long.mid.*more than max_steps={MAX_SEQ_STEPS}"):
        midi_to_seq(midi, **GRID, name=str(path))
    assert midi_to_seq(midi, **{**GRID, "step_beats": 16.0}, name=str(path)).shape[0] == 10**6 // 16


# --------------------------------------------------------------------------
# what is not a readable file
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: os.symlink("/dev/zero", p), "not a regular file"),
        (lambda p: os.symlink(p.name, p), "cannot read MIDI file.*symbolic links"),
        (lambda p: os.symlink("missing.mid", p), "cannot read MIDI file.*No such file"),
    ],
    ids=["directory", "fifo", "device", "symlink-to-itself", "dangling-symlink"],
)
def test_what_is_not_a_file_is_refused_without_blocking(tmp_path, make, reason):
    path = tmp_path / "x.mid"
    make(path)
    with time_box(10, "opening a non-file"), pytest.raises(MusicRLError, match=reason) as info:
        load_midi(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "error,reason", [(PermissionError(13, "Permission denied"), "Permission denied"),
                     (OSError(5, "Input/output error"), "Input/output error")]
)
def test_unreadable_file_names_the_os_reason(tmp_path, monkeypatch, error, reason):
    # tests run as root, which reads through chmod 000: the OS error is simulated at open
    path = tmp_path / "locked.mid"
    save_midi(rand_progression(0), path)
    real_open = pathlib.Path.open

    def fake_open(self, *args, **kwargs):
        if self.name == "locked.mid":
            raise error
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", fake_open)
    with pytest.raises(MusicRLError, match=f"cannot read MIDI file .*locked.mid.*{reason}"):
        load_midi(path)


# --------------------------------------------------------------------------
# midi_to_seq on pathological pieces built in code
# --------------------------------------------------------------------------


def _note(pitch, start, end) -> pretty_midi.Note:
    note = pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=1.0)
    # set afterwards: the constructor refuses an end before the start, code that edits notes does not
    note.pitch, note.start, note.end = pitch, start, end
    return note


def _piece(notes, *, drum=False):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)  # one beat = 0.5 s
    inst = pretty_midi.Instrument(program=0, is_drum=drum)
    inst.notes = [_note(*n) for n in notes]
    midi.instruments.append(inst)
    return midi


def test_notes_ending_before_they_start_are_ignored():
    seq = midi_to_seq(_piece([(60, 0.0, 1.0), (64, 1.0, 0.2), (67, 0.5, 0.5)]), **GRID)
    assert seq.shape == (2, 48)
    assert np.flatnonzero(seq.any(axis=0)).tolist() == [60 - 36]
    with pytest.raises(MusicRLError, match="no pitched notes"):
        midi_to_seq(_piece([(64, 1.0, 0.2)]), **GRID)


@pytest.mark.parametrize(
    "note,reason",
    [
        ((60, float("nan"), 1.0), "NaN or infinite"),
        ((60, 0.0, float("nan")), "NaN or infinite"),
        ((60, 0.0, float("inf")), "NaN or infinite"),
        ((float("nan"), 0.0, 1.0), "NaN or infinite"),
        ((128, 0.0, 1.0), "pitches outside MIDI 0..127"),
        ((-1, 0.0, 1.0), "pitches outside MIDI 0..127"),
        ((60, -1.0, 1.0), "negative times"),
        ((60, 5e5, 5e5 + 1), "max_steps"),
        ((60, 1e300, 1e301), "max_steps|too large"),
        ((60, 0.0, 1.7e308), "max_steps|too large"),
    ],
    ids=["nan-start", "nan-end", "inf-end", "nan-pitch", "pitch-128", "pitch--1", "negative-start", "1e6-beats", "1e300-s", "max-float"],
)
def test_impossible_note_times_raise(note, reason):
    piece = _piece([(60, 0.0, 1.0), note])
    with time_box(20, "quantizing"), pytest.raises(MusicRLError, match=rf"piece\.mid .*({reason})"):
        midi_to_seq(piece, **GRID, name="piece.mid")


@pytest.mark.parametrize("max_steps", [0, -1, True, 2.5])
def test_bad_max_steps_raises(max_steps):
    with pytest.raises(MusicRLError, match="max_steps"):
        midi_to_seq(_piece([(60, 0.0, 1.0)]), **GRID, max_steps=max_steps)


@pytest.mark.parametrize("quantize", ["sample", "cover"])
def test_max_steps_is_inclusive(quantize):
    piece = _piece([(60, 0.5 * t, 0.5 * t + 0.5) for t in range(20)])  # 20 one-beat notes
    assert midi_to_seq(piece, **GRID, quantize=quantize, max_steps=20).shape == (20, 48)
    with pytest.raises(MusicRLError, match="more than max_steps=19"):
        midi_to_seq(piece, **GRID, quantize=quantize, max_steps=19)


ODD_FLOATS = (float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 5e-324, 1.7e308)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    notes=st.lists(
        st.tuples(
            st.one_of(st.integers(-300, 300), st.floats(-300, 300), st.sampled_from(ODD_FLOATS)),
            st.one_of(st.floats(-1, 100), st.floats(0, 1e12), st.floats(), st.sampled_from(ODD_FLOATS)),
            st.one_of(st.floats(-1, 100), st.floats(0, 1e12), st.floats(), st.sampled_from(ODD_FLOATS)),
        ),
        min_size=1,
        max_size=8,
    ),
    quantize=st.sampled_from(["sample", "cover"]),
    step_beats=st.sampled_from([0.25, 1.0, 3.0]),
)
def test_midi_to_seq_never_crashes_on_odd_notes(notes, quantize, step_beats):
    with time_box(20, "quantizing"):
        try:
            seq = midi_to_seq(_piece(notes), **{**GRID, "step_beats": step_beats}, quantize=quantize)
        except MusicRLError:
            return
    assert seq.shape[1] == 48 and 1 <= seq.shape[0] <= MAX_SEQ_STEPS
    assert np.all((seq == 0) | (seq == 1)) and seq.any()


# --------------------------------------------------------------------------
# fuzz: mutated files through load_midi then midi_to_seq
# --------------------------------------------------------------------------


@st.composite
def mutated_midi(draw, mutations):
    draw_int = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
    seeds = seed_midi_bytes()
    return mutate(seeds[draw_int(0, len(seeds) - 1)], draw_int, mutations)


def test_seed_files_are_valid():
    kinds = []
    for i, seed in enumerate(seed_midi_bytes()):
        midi = midi_from_bytes(seed, name=f"seed {i}")
        kinds.append(all(inst.is_drum for inst in midi.instruments))
    assert kinds == [False, False, False, False, True]


_FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz_dir():
    with tempfile.TemporaryDirectory(prefix="fuzz-midi-") as d:
        yield pathlib.Path(d)


@_FUZZ
@given(blob=mutated_midi(BYTE_MUTATIONS), quantize=st.sampled_from(["sample", "cover"]))
def test_fuzz_byte_mutations(fuzz_dir, blob, quantize):
    path = fuzz_dir / "fuzz.mid"
    path.write_bytes(blob)
    with time_box(20, f"a mutated file of {len(blob)} bytes"):
        load_and_quantize(path, quantize=quantize)


@_FUZZ
@given(blob=mutated_midi(CHUNK_MUTATIONS), quantize=st.sampled_from(["sample", "cover"]))
def test_fuzz_chunk_and_event_mutations(fuzz_dir, blob, quantize):
    path = fuzz_dir / "fuzz.mid"
    path.write_bytes(blob)
    with time_box(20, f"a mutated file of {len(blob)} bytes"):
        load_and_quantize(path, quantize=quantize)


# --------------------------------------------------------------------------
# a hostile folder
# --------------------------------------------------------------------------


@pytest.fixture
def hostile_folder(tmp_path, rng):
    """Three good pieces and one of each hostile kind, with symlink loops; returns (root, bad names)."""
    root = tmp_path / "music"
    (root / "a" / "b").mkdir(parents=True)
    for name in ("good1.mid", "a/good2.MID", "a/b/good3.midi"):
        save_midi(rand_progression(rng, n_chords=20), root / name)
    bad = {}
    for kind in ("random-bytes", "zero-length", "tempo-0", "garbage-track", "too-many-tracks", "smpte-division",
                 "pitch-200", "truncated-track"):
        (root / f"{kind}.mid").write_bytes(HOSTILE_FILES[kind][0]())
        bad[f"{kind}.mid"] = HOSTILE_FILES[kind][1]
    (root / "drums.mid").write_bytes(seed_midi_bytes()[-1])
    bad["drums.mid"] = "no pitched notes"
    (root / "long.mid").write_bytes(smf(b"\x00\x90\x3c\x50" + varint(10**6) + b"\x80\x3c\x00", division=1))
    bad["long.mid"] = "max_steps"
    (root / "a" / "dir.mid").mkdir()
    bad["a/dir.mid"] = "is a directory"
    os.mkfifo(root / "fifo.mid")
    bad["fifo.mid"] = "not a regular file"
    os.symlink("self.mid", root / "self.mid")
    bad["self.mid"] = "symbolic links"
    os.symlink(root, root / "a" / "b" / "loop")  # a folder loop
    os.symlink(root / "a", root / "a" / "b" / "up")  # and one through a subfolder
    # a name that is not UTF-8 loads like any other
    save_midi(rand_progression(rng, n_chords=20), os.fsdecode(bytes(root / "caf") + b"\xe9.mid"))
    rng_bytes = np.random.default_rng(5)
    seeds = seed_midi_bytes()
    for i in range(12):
        draw = lambda lo, hi: int(rng_bytes.integers(lo, hi + 1))  # noqa: E731
        (root / f"mutant{i:02d}.mid").write_bytes(mutate(seeds[i % len(seeds)], draw))
    return root, bad


def test_folder_load_reports_every_bad_file_and_changes_nothing(hostile_folder, cfg):
    root, bad = hostile_folder
    before = snapshot(root)
    listing = sorted(os.listdir(root))
    with time_box(60, "loading a hostile folder"):
        real_data = data.load_folder(root, cfg)
    assert snapshot(root) == before and sorted(os.listdir(root)) == listing
    skipped = {os.path.relpath(p, root): reason for p, reason in real_data.skipped}
    for name, reason in bad.items():
        assert name in skipped, f"{name} not reported"
        assert str(root / name) in skipped[name] and re.search(reason, skipped[name]), skipped[name]
    loaded = set(real_data.names)
    assert {"good1.mid", "a/good2.MID", "a/b/good3.midi", os.fsdecode(b"caf\xe9.mid")} <= loaded
    # every file is either loaded or reported, once; nothing was found through the loops
    mutants = {f"mutant{i:02d}.mid" for i in range(12)}
    assert loaded | set(skipped) == set(bad) | mutants | {"good1.mid", "a/good2.MID", "a/b/good3.midi",
                                                          os.fsdecode(b"caf\xe9.mid")}
    assert not loaded & set(skipped)


def test_folder_load_skips_an_unreadable_file(tmp_path, cfg, monkeypatch, rng):
    for name in ("ok.mid", "locked.mid"):
        save_midi(rand_progression(rng, n_chords=20), tmp_path / name)
    real_open = pathlib.Path.open

    def fake_open(self, *args, **kwargs):
        if self.name == "locked.mid":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", fake_open)
    real_data = data.load_folder(tmp_path, cfg)
    assert real_data.names == ["ok.mid"]
    assert [(os.path.basename(p), "Permission denied" in r) for p, r in real_data.skipped] == [("locked.mid", True)]


@pytest.mark.parametrize(
    "damage",
    [lambda b: b"PK\x03\x04 not a zip", lambda b: b"", lambda b: b[: len(b) // 2], lambda b: b"\x93NUMPY"],
    ids=["not-a-zip", "empty", "truncated", "not-an-npz"],
)
def test_a_damaged_cache_is_rebuilt(tmp_path, cfg, rng, damage):
    for name in ("a.mid", "b.mid", "c.mid"):
        save_midi(rand_progression(rng, n_chords=20), tmp_path / name)
    first = data.load_folder(tmp_path, cfg, cache=True)
    (cache,) = tmp_path.glob("seqs-*.npz")
    good = cache.read_bytes()
    cache.write_bytes(damage(good))
    again = data.load_folder(tmp_path, cfg, cache=True)
    assert again.names == first.names
    for a, b in zip(again.train_seqs + again.heldout_seqs, first.train_seqs + first.heldout_seqs):
        np.testing.assert_array_equal(a, b)
    with np.load(cache) as z:  # written again, whole
        assert sorted(z["names"].tolist()) == sorted(first.names)


def test_cli_data_lists_every_skipped_file(hostile_folder, capsys):
    root, bad = hostile_folder
    before = snapshot(root)
    assert main(["data", "--from", str(root), "--set", "n_steps=8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in bad:
        assert str(root / name) in out
    assert snapshot(root) == before


# --------------------------------------------------------------------------
# bad settings
# --------------------------------------------------------------------------

BAD_SETS = [
    ("n_stepz=8", "unknown config field 'n_stepz'.*did you mean n_steps"),
    ("seed=abc", "'seed' must be of type int, got 'abc'"),
    ("seed=-1", "'seed' must be >= 0"),
    ("seed=4294967296", "'seed' must be in 0..4294967295"),
    ("n_mels=0", "'n_mels' must be > 0"),
    ("n_mels=600", "'n_mels' must be at most n_fft // 2 \\+ 1 = 513"),
    ("step_beats=0", "'step_beats' must be > 0"),
    ("bpm=nan", "'bpm' must be a finite number"),
    ("bpm=inf", "'bpm' must be a finite number"),
    ("d_learning_rate=-0.001", "'d_learning_rate' must be > 0"),
    ("d_learning_rate=0", "'d_learning_rate' must be > 0"),
    ("top_db=0", "'top_db' must be > 0"),
    ("d_head_units=-8", "'d_head_units' must be >= 0"),
    ("n_pitches=6", "'n_pitches' must be at least 12"),
    ("lowest_pitch=100", "'lowest_pitch' and 'n_pitches' must keep pitches within MIDI 0..127"),
    ("holdout_fraction=1", "'holdout_fraction' must be in \\[0, 1\\)"),
    ("reward_gamma=1.5", "'reward_gamma' must be in \\[0, 1\\]"),
    ("mle_own_share=-0.5", "'mle_own_share' must be in \\[0, 1\\]"),
    ("policy_dropout=1", "'policy_dropout' must be in \\[0, 1\\)"),
    ("d_arch=transformer", "'d_arch' must be one of \\('cnn', 'lstm', 'seq'\\)"),
    ("reward_dense=maybe", "'reward_dense' must be of type bool"),
    ("n_steps=1e3", "'n_steps' must be of type int"),
    ("data_dir=", "'data_dir' must name a folder"),
    ("n_steps", "--set expects key=value"),
]


@pytest.mark.parametrize("item,message", BAD_SETS, ids=[s for s, _ in BAD_SETS])
@pytest.mark.parametrize("command", ["data", "train"])
def test_bad_set_stops_before_any_work(tmp_path, capsys, monkeypatch, command, item, message):
    calls = []
    monkeypatch.setattr(data, "load_folder", lambda *a, **k: calls.append("load_folder"))
    monkeypatch.setattr(data, "build_chorales", lambda *a, **k: calls.append("build_chorales"))
    monkeypatch.setattr(cli, "_run_train", lambda *a, **k: calls.append("train"))
    argv = [command, "--set", item] + (["--from", str(tmp_path)] if command == "data" else ["--data", str(tmp_path)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert calls == []


def test_train_with_an_empty_data_folder_stops_with_the_folder_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["train", "--data", str(empty), "--out", str(tmp_path / "runs"), "--no-progress",
            "--set", "n_steps=4", "--set", "pretrain_steps=0", "--iterations", "1"]
    with time_box(120, "train on an empty folder"):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no MIDI files") and str(empty) in err


BAD_CONFIG_FILES = [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
    (b"[1, 2]", "must hold a JSON object"),
    (b"null", "must hold a JSON object"),
    (b'{"n_steps": "8"}', "'n_steps' must be of type int, got '8'"),
    (b'{"n_steps": 8.5}', "'n_steps' must be of type int, got 8.5"),
    (b'{"n_steps": true}', "'n_steps' must be of type int, got True"),
    (b'{"reward_dense": 1}', "'reward_dense' must be of type bool, got 1"),
    (b'{"bpm": NaN}', "'bpm' must be a finite number"),
    (b'{"bpm": 1e999}', "'bpm' must be a finite number"),
    (b'{"bpm": 1' + b"0" * 400 + b"}", "'bpm' must be a finite number"),
    (b'{"data_dir": ["a"]}', "'data_dir' must be of type str"),
    (b'{"n_mels": 0}', "'n_mels' must be > 0"),
    (b'{"learning_rate": 0.1}', "unknown config field 'learning_rate'"),
]


@pytest.mark.parametrize("content,message", BAD_CONFIG_FILES, ids=range(len(BAD_CONFIG_FILES)))
def test_bad_config_file(tmp_path, capsys, monkeypatch, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(MusicRLError) as info:
        load_config(path)
    assert re.search(message, str(info.value))
    if "JSON" in message:
        assert str(path) in str(info.value)
    calls = []
    monkeypatch.setattr(data, "load_folder", lambda *a, **k: calls.append("load_folder"))
    assert main(["data", "--from", str(tmp_path), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err) and calls == []


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "directory"])
def test_unreadable_config_file(tmp_path, capsys, make):
    path = tmp_path / "config.json"
    make(path)
    with pytest.raises(MusicRLError, match="cannot read config file"):
        load_config(path)
    assert main(["data", "--from", str(tmp_path), "--config", str(path)]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_config_from_overrides_refuses_what_is_not_a_dict():
    with pytest.raises(MusicRLError, match="must be a dict"):
        config_from_overrides([("n_steps", 8)])


def test_numpy_scalars_count_as_their_value():
    cfg = Config(n_steps=np.int64(8), bpm=np.float32(90.0), seed=np.uint32(3))
    assert (cfg.n_steps, cfg.bpm, cfg.seed) == (8, 90.0, 3)
    assert type(cfg.n_steps) is int and type(cfg.bpm) is float
    with pytest.raises(MusicRLError, match="'n_steps' must be of type int"):
        Config(n_steps=np.float64(8.0))


def _numeric_fields() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if hints[f.name] in (int, float)}


# Fields for which a negative value is meaningful (none so far): a new field
# that may be negative is listed here on purpose, not by accident.
MAY_BE_NEGATIVE: set[str] = set()


def test_every_numeric_field_refuses_negative_values():
    fields = _numeric_fields()
    assert len(fields) > 30
    unchecked = []
    for name, typ in fields.items():
        if name in MAY_BE_NEGATIVE:
            continue
        for value in (typ(-1), typ(-10**6)):
            try:
                Config(**{name: value})
            except MusicRLError as e:
                assert name in str(e), f"the error for {name}={value} does not name it: {e}"
            else:
                unchecked.append(f"{name}={value}")
    assert unchecked == []


def test_every_float_field_refuses_nan_and_inf():
    for name, typ in _numeric_fields().items():
        if typ is float:
            for value in (float("nan"), float("inf"), -float("inf")):
                with pytest.raises(MusicRLError, match=f"'{name}' must be a finite number"):
                    Config(**{name: value})


def test_learning_rates_refuse_zero():
    rates = [name for name in _numeric_fields() if "learning_rate" in name]
    assert "d_learning_rate" in rates
    for name in rates:
        with pytest.raises(MusicRLError, match=f"'{name}' must be > 0"):
            Config(**{name: 0.0})


BAD_VALUES = [
    ("velocity", 128), ("velocity", 0), ("program", 128), ("n_fft", 0), ("hop_length", 2048), ("sr", 0),
    ("n_steps", 0), ("n_harmonics", 0), ("d_channels", 0), ("d_lstm_units", 0), ("d_replay_capacity", 0),
    ("n_saved_samples", 0), ("collapse_every", 0), ("fmax", 0.0),
    ("fmax", 9000.0), ("fmin", 8000.0), ("holdout_fraction", 1.0), ("d_beta_1", 1.0),
    ("d_label_smoothing", 0.5), ("d_replay_share", 1.0), ("reward_gamma", 1.01), ("reward_baseline_decay", 1.0),
    ("batch_size", 0), ("d_steps", 0), ("window_hop", 0), ("checkpoint_every", 0), ("keep_checkpoints", 0),
    ("quantize", "nearest"), ("hold", "legato"), ("on_nonfinite", "ignore"), ("d_gp_kind", "l2"),
    ("n_fft", 1023), ("policy_head", "softmax"), ("policy_hidden", 0), ("policy_embed", 0),
    ("sample_temperature", 0.0), ("ppo_epochs", 0), ("ppo_clip", 0.0), ("ppo_clip", 1.0),
]


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_impossible_values_name_the_field(name, value):
    with pytest.raises(MusicRLError, match=f"'{name}'"):
        Config(**{name: value})
    with pytest.raises(MusicRLError, match=f"'{name}'"):
        config_from_overrides(sets=[f"{name}={value}"])
