"""Tests of the command line, run in-process through ``main([...])``."""

import json
import re
import subprocess
import sys

import pytest

from musicrl import cli
from musicrl.cli import build_parser, main
from musicrl.music.midi import rand_progression, save_midi


@pytest.fixture
def midi_folder(tmp_path, rng):
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    for name in ("a.mid", "sub/b.midi", "sub/c.MID"):
        save_midi(rand_progression(rng, n_chords=20), root / name)
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return root


def test_data_from_a_good_folder(midi_folder, capsys):
    assert main(["data", "--from", str(midi_folder), "--set", "n_steps=8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 pieces" in out
    # 20 chords, windows of 8 every 4 steps: 4 per piece
    n_train, n_heldout = map(int, re.search(r"(\d+) training windows, (\d+) held-out windows", out).groups())
    assert n_train + n_heldout == 3 * 4
    assert "broken.mid" in out and "could not be parsed" in out


def test_data_from_a_folder_with_only_bad_files(tmp_path, capsys):
    (tmp_path / "empty.mid").write_bytes(b"")
    assert main(["data", "--from", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: no usable MIDI file") and "empty.mid" in err[0]


@pytest.mark.parametrize(
    "make,match",
    [(lambda tmp: tmp / "missing", "does not exist"), (lambda tmp: tmp, "no MIDI files")],
    ids=["missing", "empty"],
)
def test_data_from_no_music_fails_cleanly(tmp_path, capsys, make, match):
    assert main(["data", "--from", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err


@pytest.mark.parametrize(
    "sets,match",
    [
        (["n_stepz=8"], "unknown config field 'n_stepz'"),
        (["n_steps=eight"], "'n_steps' must be of type int"),
        (["n_steps"], "key=value"),
        (["holdout_fraction=1.5"], "holdout_fraction"),
    ],
)
def test_bad_set_is_one_clean_line(midi_folder, capsys, sets, match):
    argv = ["data", "--from", str(midi_folder)]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err
    assert len(err.splitlines()) == 1


def test_config_file_then_set(midi_folder, tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"n_steps": 4, "window_hop": 8}))
    assert main(["data", "--from", str(midi_folder), "--config", str(config), "--no-progress"]) == 0
    assert "(n_steps=4, hop=8)" in capsys.readouterr().out
    argv = ["data", "--from", str(midi_folder), "--config", str(config), "--set", "n_steps=6", "--no-progress"]
    assert main(argv) == 0
    assert "(n_steps=6, hop=8)" in capsys.readouterr().out


def test_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["data", "--from", str(tmp_path), "--config", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["data", "--config", str(tmp_path / "none.json")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_data_builds_default_set_into_data_dir(tmp_path, capsys, monkeypatch):
    from musicrl.music import data

    real_build = data.build_chorales
    monkeypatch.setattr(data, "build_chorales", lambda out, **kw: real_build(out, **{**kw, "limit": 2, "workers": 1}))
    out_dir = tmp_path / "chorales"
    assert main(["data", "--set", f"data_dir={out_dir}", "--set", "n_steps=8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 chorales" in out and "2 pieces" in out
    assert len(list(out_dir.glob("*.mid"))) == 2


def test_data_never_builds_into_a_user_folder(midi_folder, capsys):
    assert main(["data", "--set", f"data_dir={midi_folder}", "--no-progress"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert not (midi_folder / "manifest.json").exists()


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "data" in out
    for name in ("data",):
        assert name in build_parser()._subparsers._group_actions[0].choices
    assert main([]) == 2  # a command is required
    assert main(["nonsense"]) == 2


def test_every_command_has_a_handler_and_data_takes_settings():
    choices = build_parser()._subparsers._group_actions[0].choices
    for name, sub in choices.items():
        assert callable(sub._defaults.get("handler")), name
    assert {"sets", "config"} <= {a.dest for a in choices["data"]._actions}


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "musicrl", "data", "--from", "/nonexistent/folder"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: MIDI folder '/nonexistent/folder' does not exist"
    assert cli.main is main
