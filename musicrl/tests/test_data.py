"""Tests of musicrl.music.data: folders of MIDI files, the split, windows, the chorale set."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from musicrl.music import data
from musicrl.config import Config
from musicrl.music.data import (
    build_chorales,
    chorales_manifest,
    find_midi_files,
    heldout_fraction_of,
    load_default,
    load_folder,
    sample_real_seqs,
    seqs_to_windows,
    split_names,
)
from musicrl.errors import MusicRLError
from musicrl.music.midi import rand_progression, save_midi
from musicrl.music.vectorize import midi_to_seq


def _drums_only():
    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(velocity=90, pitch=38, start=0.5 * i, end=0.5 * i + 0.1) for i in range(32)]
    midi.instruments.append(drums)
    return midi


GOOD = ["a.mid", "B.MID", "sub/c.midi", "sub/deeper/d.Mid", "sub/deeper/e.mid"]


@pytest.fixture
def folder(tmp_path, rng):
    """Five good 24-chord pieces in nested folders, and one file of each bad kind."""
    root = tmp_path / "music"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in GOOD:
        save_midi(rand_progression(rng, n_chords=24), root / name)
    save_midi(rand_progression(rng, n_chords=4), root / "sub" / "short.mid")
    save_midi(_drums_only(), root / "drums.mid")
    good_bytes = (root / "a.mid").read_bytes()
    (root / "corrupt.mid").write_bytes(good_bytes[: len(good_bytes) // 2])
    (root / "empty.midi").write_bytes(b"")
    (root / "notes.txt").write_text("not music, ignored")
    (root / "x.mid").mkdir()
    return root


def _snapshot(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[p] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def test_find_midi_files_is_recursive_and_case_insensitive(folder):
    files, dirs = find_midi_files(folder)
    assert files == sorted(GOOD + ["sub/short.mid", "drums.mid", "corrupt.mid", "empty.midi"])
    assert dirs == ["x.mid"]


def test_find_midi_files_survives_a_symlink_loop(folder):
    os.symlink(folder, folder / "sub" / "loop")
    files, _ = find_midi_files(folder)
    assert len(files) == 9
    assert not any("loop" in f for f in files)


def test_load_folder_counts_and_skip_reasons(folder, cfg):
    real_data = load_folder(folder, cfg)
    assert real_data.n_pieces == 5
    assert sorted(real_data.names) == sorted(GOOD)
    reasons = {os.path.relpath(path, folder): reason for path, reason in real_data.skipped}
    assert set(reasons) == {"corrupt.mid", "empty.midi", "drums.mid", "x.mid", os.path.join("sub", "short.mid")}
    assert "could not be parsed" in reasons["corrupt.mid"]
    assert "empty" in reasons["empty.midi"]
    assert "no pitched notes" in reasons["drums.mid"]
    assert "is a directory" in reasons["x.mid"]
    assert "fewer than n_steps=8" in reasons[os.path.join("sub", "short.mid")]
    # every reason names its file
    for path, reason in real_data.skipped:
        assert os.path.basename(path) in reason
    for seq, name in zip(real_data.train_seqs + real_data.heldout_seqs, real_data.names):
        assert seq.dtype == np.float32 and seq.shape == (24, cfg.n_pitches)
        expected = midi_to_seq(pretty_midi.PrettyMIDI(str(folder / name)), **cfg.grid_kwargs(), n_pitches=cfg.n_pitches)
        np.testing.assert_array_equal(seq, expected)


def test_load_folder_never_modifies_or_adds_files(folder, cfg):
    before = _snapshot(folder)
    load_folder(folder, cfg)
    load_folder(folder, dataclasses.replace(cfg, step_beats=2.0, n_steps=4))
    assert _snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["a.mid", "B.MID", "sub", "drums.mid", "corrupt.mid", "empty.midi", "notes.txt", "x.mid"]
    )


def test_too_short_depends_on_n_steps(folder):
    real_data = load_folder(folder, Config(n_steps=4))
    assert real_data.n_pieces == 6
    assert "sub/short.mid" in real_data.names


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "no MIDI files"),
    ],
    ids=["missing", "empty"],
)
def test_load_folder_without_music_raises(tmp_path, cfg, make, match):
    (tmp_path / "readme.txt").write_text("no music here")
    with pytest.raises(MusicRLError, match=match):
        load_folder(make(tmp_path), cfg)


def test_load_folder_of_only_bad_files_lists_reasons(tmp_path, cfg):
    (tmp_path / "empty.mid").write_bytes(b"")
    save_midi(_drums_only(), tmp_path / "drums.mid")
    with pytest.raises(MusicRLError, match="no usable MIDI file.*2 skipped.*drums.mid.*no pitched notes"):
        load_folder(tmp_path, cfg)


def test_a_file_path_is_not_a_folder(folder, cfg):
    with pytest.raises(MusicRLError, match="not a folder"):
        load_folder(folder / "a.mid", cfg)


# --- the split --------------------------------------------------------------


def test_split_is_stable_and_depends_on_the_name_only():
    names = [f"piece{i:04d}.mid" for i in range(2000)]
    train, heldout = split_names(names, 0.1)
    assert sorted(train + heldout) == sorted(names)
    assert 0.07 < len(heldout) / len(names) < 0.13
    # the same names on another run and in any subset keep their side
    assert split_names(list(reversed(names)), 0.1)[1] == list(reversed(heldout))
    subset = names[::7]
    assert split_names(subset, 0.1)[1] == [n for n in subset if n in set(heldout)]
    # a higher fraction only adds held-out pieces
    assert set(heldout) <= set(split_names(names, 0.3)[1])
    assert split_names(names, 0.0) == (names, [])


def test_split_value_is_a_sha1_of_the_relative_name():
    import hashlib

    u = heldout_fraction_of("sub/a.mid")
    assert u == int(hashlib.sha1(b"sub/a.mid").hexdigest()[:16], 16) / 2**64
    assert 0 <= u < 1


def test_split_never_holds_out_everything():
    # a name hashed below the fraction on its own would leave nothing to train on
    name = next(f"p{i}.mid" for i in range(1000) if heldout_fraction_of(f"p{i}.mid") < 0.5)
    assert split_names([name], 0.5) == ([name], [])


def test_load_folder_split_follows_the_hash(folder):
    real_data = load_folder(folder, Config(n_steps=8, holdout_fraction=0.5))
    for name in real_data.heldout_names:
        assert heldout_fraction_of(name) < 0.5
    for name in real_data.train_names:
        assert heldout_fraction_of(name) >= 0.5 or not real_data.heldout_names
    again = load_folder(folder, Config(n_steps=8, holdout_fraction=0.5))
    assert (again.train_names, again.heldout_names) == (real_data.train_names, real_data.heldout_names)


# --- windows ------------------------------------------------------------------


@pytest.mark.parametrize("n_steps,hop", [(8, 4), (16, 1), (5, 3), (24, 4), (10, 100)])
def test_seqs_to_windows_shapes_and_content(rng, n_steps, hop):
    lengths = [24, 9, 30]
    seqs = [(rng.random((n, 12)) < 0.3).astype(np.float32) for n in lengths]
    for s in seqs:
        s[:, 0] = 1  # no silent windows
    windows = seqs_to_windows(seqs, n_steps=n_steps, hop=hop)
    counts = [1 + (n - n_steps) // hop if n >= n_steps else 0 for n in lengths]
    assert windows.shape == (sum(counts), n_steps, 12) and windows.dtype == np.float32
    k = 0
    for seq, count in zip(seqs, counts):
        for j in range(count):
            np.testing.assert_array_equal(windows[k], seq[j * hop : j * hop + n_steps])
            k += 1


def test_seqs_to_windows_drops_silent_windows():
    seq = np.zeros((12, 12), np.float32)
    seq[:4, 3] = 1
    assert len(seqs_to_windows([seq], n_steps=4, hop=4)) == 1
    assert len(seqs_to_windows([seq], n_steps=4, hop=4, drop_silent=False)) == 3


def test_seqs_to_windows_empty_and_bad_input():
    assert seqs_to_windows([], n_steps=4, hop=1, n_pitches=12).shape == (0, 4, 12)
    with pytest.raises(MusicRLError, match="n_pitches"):
        seqs_to_windows([], n_steps=4, hop=1)
    with pytest.raises(MusicRLError, match=r"seqs\[1\].*12 pitch columns"):
        seqs_to_windows([np.zeros((8, 12)), np.zeros((8, 13))], n_steps=4, hop=1)
    with pytest.raises(MusicRLError, match="multi-hot"):
        seqs_to_windows([np.full((8, 12), 0.5)], n_steps=4, hop=1)
    with pytest.raises(MusicRLError, match="shape"):
        seqs_to_windows([np.zeros((2, 8, 12))], n_steps=4, hop=1)
    with pytest.raises(MusicRLError, match="hop"):
        seqs_to_windows([np.zeros((8, 12))], n_steps=4, hop=0)


def test_real_data_windows(folder, cfg):
    real_data = load_folder(folder, dataclasses.replace(cfg, window_hop=4))
    per_piece = 1 + (24 - 8) // 4
    assert real_data.train_windows.shape == (per_piece * len(real_data.train_seqs), 8, cfg.n_pitches)
    assert real_data.heldout_windows.shape == (per_piece * len(real_data.heldout_seqs), 8, cfg.n_pitches)
    assert not real_data.train_windows.flags.writeable
    assert f"{real_data.n_pieces} pieces" in real_data.summary()


# --- sampling and transposition -------------------------------------------------


def _windows(rng, n=50, n_steps=8, n_pitches=24, lo=6, hi=18):
    w = np.zeros((n, n_steps, n_pitches), np.float32)
    w[:, :, lo:hi] = rng.random((n, n_steps, hi - lo)) < 0.3
    w[:, 0, lo] = 1
    w[:, 0, hi - 1] = 1
    return w


def test_sample_without_transposition_draws_windows(rng):
    windows = _windows(rng)
    real_seqs = sample_real_seqs(windows, 64, rng)
    assert real_seqs.shape == (64, 8, 24) and real_seqs.dtype == np.float32
    as_rows = {w.tobytes() for w in windows}
    assert all(s.tobytes() in as_rows for s in real_seqs)
    np.testing.assert_array_equal(sample_real_seqs(windows, 5, 3), sample_real_seqs(windows, 5, 3))


@pytest.mark.parametrize("k", [1, 3, 6, 12])
def test_transposition_shifts_whole_windows_within_range(rng, k):
    windows = _windows(rng)  # notes in columns 6..17 of 24: up to 6 down, 6 up
    before = windows.copy()
    real_seqs = sample_real_seqs(windows, 400, rng, transpose=k)
    np.testing.assert_array_equal(windows, before)
    allowed = range(-min(k, 6), min(k, 6) + 1)
    shifted = {np.roll(w, d, axis=1).tobytes(): d for d in allowed for w in windows}
    shifts = []
    for s in real_seqs:
        assert s.tobytes() in shifted, "a sample is not a shifted window"
        shifts.append(shifted[s.tobytes()])
    assert set(shifts) == set(range(-min(k, 6), min(k, 6) + 1))


def test_transposition_never_drops_notes(rng):
    # notes at the top column: no upward shift is possible
    windows = np.zeros((3, 4, 12), np.float32)
    windows[:, :, 11] = 1
    windows[:, 1, 9] = 1
    real_seqs = sample_real_seqs(windows, 100, rng, transpose=5)
    assert np.all(real_seqs.sum(axis=(1, 2)) == windows[0].sum())
    tops = {int(np.nonzero(s.any(axis=0))[0].max()) for s in real_seqs}
    assert tops == {6, 7, 8, 9, 10, 11}


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((np.zeros((0, 8, 12)), 4), {}, "empty"),
        ((np.zeros((8, 12)), 4), {}, "shape"),
        ((np.ones((2, 8, 12)), 0), {}, "positive int"),
        ((np.ones((2, 8, 12)), 2), {"transpose": -1}, "transpose"),
    ],
)
def test_sample_bad_input_raises(args, kwargs, match):
    with pytest.raises(MusicRLError, match=match):
        sample_real_seqs(*args, rng=0, **kwargs)


# --- cache ----------------------------------------------------------------------


def test_cache_is_reused_and_invalidated(folder, cfg, rng):
    first = load_folder(folder, cfg, cache=True)
    caches = list(folder.glob("seqs-*.npz"))
    assert len(caches) == 1
    again = load_folder(folder, cfg, cache=True)
    assert again.names == first.names and again.skipped == first.skipped
    for a, b in zip(again.train_seqs, first.train_seqs):
        np.testing.assert_array_equal(a, b)
    # a changed file gives a new key, and its new content is read
    save_midi(rand_progression(rng, n_chords=40), folder / "a.mid")
    changed = load_folder(folder, cfg, cache=True)
    assert len(list(folder.glob("seqs-*.npz"))) == 2
    lengths = dict(zip(changed.names, map(len, changed.train_seqs + changed.heldout_seqs)))
    assert lengths["a.mid"] == 40


# --- the chorale set ----------------------------------------------------------


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    out = tmp_path_factory.mktemp("chorales")
    manifest = build_chorales(out, cfg=Config(n_steps=8), limit=3, workers=1, progress=False)
    return out, manifest


def test_build_chorales_writes_midi_and_manifest(chorales):
    out, manifest = chorales
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["limit"] == 3 and manifest["pieces"] == 3
    assert "public domain" in manifest["licence"] and "music21" in manifest["licence"]
    assert manifest["source"]["music21_version"]
    assert sorted(p.name for p in out.glob("*.mid")) == sorted(f["file"] for f in manifest["files"])
    for entry in manifest["files"]:
        assert entry["source"].startswith("bach/bwv")
        midi = pretty_midi.PrettyMIDI(str(out / entry["file"]))
        assert len(midi.instruments) == 4  # soprano, alto, tenor, bass
    split = manifest["split"]
    assert split["train"] + split["heldout"] == 3
    assert split["heldout_files"] == [f["file"] for f in manifest["files"] if f["split"] == "heldout"]
    assert manifest["windows"]["n_steps"] == 8 and manifest["windows"]["train"] > 0


def test_chorales_load_as_four_part_harmony(chorales):
    out, manifest = chorales
    real_data = load_folder(out, Config(n_steps=8))
    assert real_data.n_pieces == 3 and real_data.skipped == []
    assert len(real_data.train_windows) == manifest["windows"]["train"]
    notes_per_step = np.concatenate(real_data.train_seqs + real_data.heldout_seqs).sum(axis=1)
    # four voices; passing notes add pitches, rests remove them
    assert 3.5 < np.median(notes_per_step) <= 6
    assert list(out.glob("seqs-*.npz")), "a built set keeps a cache of its seqs"


def test_build_chorales_reuses_a_complete_set(chorales):
    out, manifest = chorales
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mid")}
    assert build_chorales(out, limit=3, workers=1, progress=False) == manifest
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mid")} == mtimes
    assert chorales_manifest(out, limit=3) == manifest
    assert chorales_manifest(out) is None  # not the full set


def test_a_smaller_rebuild_removes_the_extra_pieces(tmp_path):
    build_chorales(tmp_path, limit=2, workers=1, progress=False)
    manifest = build_chorales(tmp_path, limit=1, workers=1, progress=False)
    assert [p.name for p in tmp_path.glob("*.mid")] == [manifest["files"][0]["file"]]
    assert load_folder(tmp_path, Config(n_steps=8)).n_pieces == 1


def test_incomplete_set_is_not_reused(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"generator": "musicrl.data.build_chorales", "format": 1, "complete": False, "limit": 1})
    )
    assert chorales_manifest(tmp_path, limit=1) is None


def test_load_default_loads_a_user_folder_without_building(folder, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("must not build into a user's folder")

    monkeypatch.setattr(data, "build_chorales", fail)
    before = _snapshot(folder)
    real_data = load_default(Config(n_steps=8, data_dir=str(folder)), progress=False)
    assert real_data.n_pieces == 5
    assert _snapshot(folder) == before


def test_build_chorales_refuses_a_folder_of_user_files(folder):
    before = _snapshot(folder)
    with pytest.raises(MusicRLError, match="did not write"):
        build_chorales(folder, limit=1, workers=1, progress=False, force=True)
    assert _snapshot(folder) == before


def test_load_default_builds_when_missing(tmp_path, monkeypatch):
    calls = []
    real_build = data.build_chorales

    def small_build(out_dir, **kwargs):
        calls.append(out_dir)
        return real_build(out_dir, **{**kwargs, "limit": 2, "workers": 1})

    monkeypatch.setattr(data, "build_chorales", small_build)
    cfg = Config(n_steps=8, data_dir=str(tmp_path / "new"))
    real_data = load_default(cfg, progress=False)
    assert calls == [tmp_path / "new"]
    assert real_data.n_pieces == 2


def test_a_relative_data_dir_is_taken_from_the_checkout_whatever_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkout = Path(data.__file__).resolve().parents[2]
    assert (checkout / "pyproject.toml").is_file()
    assert data.resolve_data_dir(Config(data_dir="data/chorales")) == checkout / "data" / "chorales"
    assert data.resolve_data_dir(Config(data_dir=str(tmp_path / "x"))) == tmp_path / "x"
