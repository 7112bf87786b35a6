"""Tests of the blind listening test: sessions, answers, tallies, the web server, the page and the command.

Most tests build a study from a few in-memory seqs at 8 kHz, so they need no
TensorFlow; the servers listen on 127.0.0.1 at a free port, in a thread. One
tiny trained run (module-scoped) checks the loading of a run's sets, and the
command's clean stop on Ctrl-C in a subprocess. The browser test drives the
page in Debian's headless Chromium.
"""

import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from musicrl.cli import main
from musicrl.config import Config
from musicrl.errors import MusicRLError
from musicrl.evaluation import listen
from musicrl.evaluation.intervals import wilson_interval
from musicrl.evaluation.listen_server import ListeningServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def small_cfg(**fields):
    return Config(**{"n_steps": 4, "sr": 8000, "fmax": 4000, "n_fft": 400, "hop_length": 200, "n_mels": 16,
                     **fields})


def chord_seqs(n, cfg, seed):
    """``n`` seqs of random triads, one per step: shape (n, n_steps, n_pitches)."""
    rng = np.random.default_rng(seed)
    seqs = np.zeros((n, cfg.n_steps, cfg.n_pitches), np.float32)
    for i in range(n):
        for t in range(cfg.n_steps):
            root = rng.integers(12, cfg.n_pitches - 8)
            seqs[i, t, [root, root + 4, root + 7]] = 1
    return seqs


def make_study(mode="identify", n=(6, 5), **fields):
    cfg = small_cfg(**fields)
    names = ("real", "agent") if mode == "identify" else ("pretrained", "agent")
    return listen.Study(mode, names, (chord_seqs(n[0], cfg, 1), chord_seqs(n[1], cfg, 2)), cfg)


# --------------------------------------------------------------------------
# studies, trials, sessions


@pytest.mark.parametrize("n_a,n_b,n_trials", [(5, 5, 5), (9, 4, 3), (3, 8, 1)])
def test_draw_trials_repeats_no_clip_and_follows_its_seed(n_a, n_b, n_trials):
    trials = listen.draw_trials(n_a, n_b, n_trials=n_trials, seed=3)
    assert trials.shape == (n_trials, 3)
    assert len(set(trials[:, 0])) == n_trials and len(set(trials[:, 1])) == n_trials
    assert trials[:, 0].max() < n_a and trials[:, 1].max() < n_b
    assert set(trials[:, 2]) <= {0, 1}
    np.testing.assert_array_equal(trials, listen.draw_trials(n_a, n_b, n_trials=n_trials, seed=3))


def test_draw_trials_puts_either_set_first():
    trials = listen.draw_trials(200, 200, n_trials=200, seed=0)
    assert 70 < trials[:, 2].sum() < 130
    with pytest.raises(MusicRLError, match="no clip twice"):
        listen.draw_trials(3, 5, n_trials=4, seed=0)


def test_study_refuses_sets_it_cannot_compare():
    cfg = small_cfg()
    a = chord_seqs(3, cfg, 0)
    with pytest.raises(MusicRLError, match="same length"):
        listen.Study("identify", ("real", "agent"), (a, chord_seqs(3, small_cfg(n_steps=6), 0)), cfg)
    with pytest.raises(MusicRLError, match="different"):
        listen.Study("identify", ("agent", "agent"), (a, a), cfg)
    with pytest.raises(MusicRLError, match="mode"):
        listen.Study("rank", ("real", "agent"), (a, a), cfg)
    with pytest.raises(MusicRLError, match="multi-hot"):
        listen.Study("identify", ("real", "agent"), (a, a * 2), cfg)


def _session(study, n_trials=4, seed=11, listener="ann"):
    return listen.ListeningSession.create(study, session="0123456789abcdef", seed=seed, n_trials=n_trials,
                                          listener=listener)


def test_identify_answers_are_correct_when_they_pick_the_real_clip():
    study = make_study()
    session = _session(study)
    for t in range(4):
        (left, _), (right, _) = session.sets_of(t)
        assert {left, right} == {"real", "agent"}
        choice = t % 2
        record = session.answer(t, choice, None)
        assert record["correct"] == ((left, right)[choice] == "real")
        chosen_set = study.sets[study.names.index(record["chosen"])]
        chosen_index = record[("left_index", "right_index")[choice]]
        np.testing.assert_array_equal(session.seq_of(t, choice), chosen_set[chosen_index])
        session.apply(record)
    assert session.current is None and session.state()["trial"] is None
    with pytest.raises(MusicRLError, match="complete"):
        session.answer(4, 0, None)


def test_prefer_answers_have_no_correctness_and_the_state_hides_the_sets():
    session = _session(make_study("prefer"))
    state = session.state()
    text = json.dumps(state)
    assert "agent" not in text and "pretrained" not in text and "left_index" not in text
    assert state["question"] == listen.QUESTIONS["prefer"]
    record = session.answer(0, 1, 5)
    assert record["correct"] is None and record["chosen"] == session.sets_of(0)[1][0] and record["rating"] == 5


def test_a_session_is_rebuilt_from_its_lines():
    study = make_study()
    session = _session(study, n_trials=5)
    records = [session.header]
    for t, choice in enumerate([0, 1, 1]):
        record = session.answer(t, choice, 3)
        session.apply(record)
        records.append(record)
    # a line written twice (a retried request) counts once
    rebuilt = listen.ListeningSession.from_records(records + [records[-1]], study)
    assert rebuilt.current == 3 and rebuilt.state() == session.state()
    assert rebuilt.clips == session.clips
    with pytest.raises(MusicRLError, match="other sets"):
        listen.ListeningSession.from_records(records, make_study(n=(6, 6)))


def test_clip_ids_are_opaque_and_differ_between_sessions():
    study = make_study()
    a, b = _session(study, seed=1), _session(study, seed=2)
    assert not set(a.clips) & set(b.clips)
    for clip in a.clips:
        assert len(clip) == 20 and all(c in "0123456789abcdef" for c in clip)


@pytest.mark.parametrize("body,match", [
    (b"", "JSON object"),
    (b"[0, 1]", "JSON object"),
    (b"{\"trial\": 0}", "choice"),
    (b"{\"trial\": 0, \"choice\": 2}", "choice"),
    (b"{\"trial\": 0, \"choice\": true}", "choice"),
    (b"{\"trial\": -1, \"choice\": 0}", "trial"),
    (b"{\"trial\": \"0\", \"choice\": 0}", "trial"),
    (b"{\"trial\": 0, \"choice\": 0, \"rating\": 6}", "rating"),
    (b"{\"trial\": 0, \"choice\": 0, \"rating\": 2.5}", "rating"),
    (b"{\"trial\": 0, \"choice\": 0, \"note\": \"x\"}", "unknown"),
    (b"\xff\xfe", "JSON object"),
    (b"{\"trial\": 0, \"choice\": 0, \"rating\": null, \"x\": \"" + b"a" * 600 + b"\"}", "at most"),
])
def test_parse_answer_refuses_malformed_bodies(body, match):
    with pytest.raises(MusicRLError, match=match):
        listen.parse_answer(body)


def test_parse_answer_and_listener_accept_well_formed_bodies():
    assert listen.parse_answer(b'{"trial": 3, "choice": 1, "rating": 5}') == (3, 1, 5)
    assert listen.parse_answer(b'{"choice": 0, "trial": 0, "rating": null}') == (0, 0, None)
    assert listen.parse_answer(b'{"trial": 2, "choice": 0}') == (2, 0, None)
    assert listen.parse_listener(b'{"listener": "  Ann  "}') == "Ann"
    assert listen.parse_listener(b'{}') == "anonymous"
    for bad in (b'{"listener": 3}', b'{"listener": "' + b"x" * 41 + b'"}', b'{"listener": "a\\nb"}', b'{"who": "a"}'):
        with pytest.raises(MusicRLError, match="listener|one field"):
            listen.parse_listener(bad)


# --------------------------------------------------------------------------
# tallies


def _answers_file(folder, session_id, mode, sets, listener, chosen, ratings=None):
    """A session file with one answer per item of ``chosen`` (the chosen set's name)."""
    header = {"kind": "session", "session": session_id, "mode": mode, "sets": list(sets), "digest": "x",
              "seed": 0, "n_trials": len(chosen), "listener": listener, "created": 0}
    lines = [header]
    for t, name in enumerate(chosen):
        lines.append({"kind": "answer", "trial": t, "chosen": name, "rating": (ratings or [None] * len(chosen))[t],
                      "correct": (name == sets[0]) if mode == "identify" else None})
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / f"{session_id}.jsonl").write_text(text + '{"kind": "answer", "tri')  # a torn last line


def test_tally_counts_per_listener_and_pooled(tmp_path):
    folder = tmp_path / listen.LISTENING_DIR
    _answers_file(folder, "a" * 16, "identify", ("real", "agent"), "ann", ["real", "real", "agent"], [5, 3, None])
    _answers_file(folder, "b" * 16, "identify", ("real", "agent"), "bob", ["agent", "real"])
    _answers_file(folder, "c" * 16, "identify", ("real", "agent"), "ann", ["real"], [2])
    _answers_file(folder, "d" * 16, "prefer", ("pretrained", "agent"), "bob", ["agent", "agent", "pretrained"])
    identify, prefer = listen.tally(listen.read_sessions(tmp_path))
    assert identify["sets"] == ["real", "agent"] and prefer["sets"] == ["pretrained", "agent"]
    assert identify["listeners"]["ann"]["trials"] == 4 and identify["listeners"]["ann"]["correct"] == 3
    assert identify["listeners"]["ann"]["mean_rating"] == pytest.approx(10 / 3)
    assert identify["listeners"]["bob"]["correct"] == 1 and identify["listeners"]["bob"]["mean_rating"] is None
    assert identify["pooled"]["trials"] == 6 and identify["pooled"]["correct"] == 4
    assert prefer["pooled"]["chosen"] == {"pretrained": 1, "agent": 2} and prefer["pooled"]["correct"] == 0

    text = listen.results_markdown([identify, prefer])
    low, high = wilson_interval(4, 6)
    assert f"| all listeners | 6 | {4 / 6:.2f} [{low:.2f}, {high:.2f}] | 3.33 (n=3) |" in text
    low, high = wilson_interval(2, 3)
    assert f"{2 / 3:.2f} [{low:.2f}, {high:.2f}] | -" in text
    assert "which one do you prefer?" in text and "which one is the real chorale?" in text


def test_listening_summary_is_none_without_answers(tmp_path):
    assert listen.listening_summary(tmp_path) is None
    _answers_file(tmp_path / listen.LISTENING_DIR, "a" * 16, "identify", ("real", "agent"), "ann", [])
    assert listen.listening_summary(tmp_path) is None
    _answers_file(tmp_path / listen.LISTENING_DIR, "b" * 16, "identify", ("real", "agent"), "ann", ["agent"])
    summary = listen.listening_summary(tmp_path)
    assert summary.startswith("## Listening tests") and "| ann | 1 | 0.00 [" in summary


def test_results_command_prints_the_tallies(tmp_path, capsys):
    code = main(["listen", "--run", str(tmp_path), "--results"])
    assert code == 0 and "no listening answers" in capsys.readouterr().out
    _answers_file(tmp_path / listen.LISTENING_DIR, "a" * 16, "identify", ("real", "agent"), "ann", ["real", "agent"])
    code = main(["listen", "--run", str(tmp_path), "--results"])
    out = capsys.readouterr().out
    assert code == 0 and out == listen.results_markdown(listen.tally(listen.read_sessions(tmp_path)))
    assert "| ann | 2 | 0.50 [" in out


@pytest.mark.parametrize("argv,match", [
    (["--run", "{missing}"], "does not exist"),
    (["--run", "{run}", "--results", "--against", "runs/other"], "--against is for --mode prefer"),
    (["--run", "{run}", "--trials", "0"], "--trials must be at least 1"),
])
def test_listen_command_refuses_bad_options_before_loading_anything(tmp_path, capsys, argv, match):
    argv = [a.format(missing=tmp_path / "missing", run=tmp_path) for a in argv]
    assert main(["listen", *argv]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / listen.LISTENING_DIR).exists()


# --------------------------------------------------------------------------
# audio


def test_clips_last_as_long_whatever_their_notes():
    cfg = small_cfg()
    dense = chord_seqs(1, cfg, 0)[0]
    sparse = np.zeros_like(dense)
    sparse[0, 20] = 1  # one short note, then silence
    empty = np.zeros_like(dense)
    lengths = []
    for seq in (dense, sparse, empty):
        audio, sr = soundfile.read(io.BytesIO(listen.render_clip(seq, cfg)))
        assert sr == cfg.sr and audio.ndim == 1 and np.abs(audio).max() <= 1.0
        lengths.append(len(audio))
    assert lengths == [round((cfg.n_steps * cfg.step_seconds + 1.0) * cfg.sr)] * 3
    dense_audio, _ = soundfile.read(io.BytesIO(listen.render_clip(dense, cfg)))
    assert np.abs(dense_audio).max() > 0.01  # the soundfont was heard


# --------------------------------------------------------------------------
# the server


@pytest.fixture
def served(tmp_path):
    """A server over an identify study of 6 and 5 clips, 3 trials per session: (server, listening folder)."""
    folder = tmp_path / "run" / listen.LISTENING_DIR
    server = ListeningServer(make_study(), folder, port=0, seed=5, n_trials=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, folder
    server.shutdown()
    server.server_close()
    thread.join()


def call(server, method, path, body=None, headers=None):
    """One request: (status, parsed JSON or bytes)."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    if headers is None:
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.getheader("Content-Type") == "application/json":
        payload = json.loads(payload)
    return response.status, payload


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_session_from_start_to_end(served):
    server, folder = served
    status, state = call(server, "POST", "/api/sessions", {"listener": "ann"})
    assert status == 201 and state["n_trials"] == 3 and state["answered"] == 0
    path = folder / f"{state['session']}.jsonl"
    assert _lines(path)[0]["kind"] == "session"
    for t in range(3):
        assert state["trial"]["index"] == t
        for clip in state["trial"]["clips"]:
            status, wav = call(server, "GET", f"/api/sessions/{state['session']}/clips/{clip}")
            assert status == 200 and wav[:4] == b"RIFF"
        status, reveal = call(server, "POST", f"/api/sessions/{state['session']}/answers",
                              {"trial": t, "choice": 1, "rating": t + 1})
        assert status == 200 and sorted(reveal["sets"]) == ["agent", "real"]
        assert reveal["correct"] == (reveal["sets"][1] == "real") and reveal["done"] == (t == 2)
        assert np.asarray(reveal["rolls"]).shape == (2, 4, 48)
        # on disk before the reply
        lines = _lines(path)
        assert len(lines) == t + 2 and lines[-1]["trial"] == t and lines[-1]["rating"] == t + 1
        status, state = call(server, "GET", f"/api/sessions/{state['session']}")
        assert status == 200 and state["answered"] == t + 1
    assert state["trial"] is None
    status, error = call(server, "POST", f"/api/sessions/{state['session']}/answers", {"trial": 3, "choice": 0})
    assert status == 409 and "complete" in error["error"] and len(_lines(path)) == 4


def test_two_listeners_get_separate_sessions(served):
    server, folder = served
    _, ann = call(server, "POST", "/api/sessions", {"listener": "ann"})
    _, bob = call(server, "POST", "/api/sessions", {"listener": "bob"})
    assert ann["session"] != bob["session"] and set(ann["trial"]["clips"]).isdisjoint(bob["trial"]["clips"])
    call(server, "POST", f"/api/sessions/{ann['session']}/answers", {"trial": 0, "choice": 0})
    _, bob_state = call(server, "GET", f"/api/sessions/{bob['session']}")
    assert bob_state["answered"] == 0 and bob_state["listener"] == "bob"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{ann['session']}.jsonl", f"{bob['session']}.jsonl"])
    # one session's clip is not served under the other's
    status, _ = call(server, "GET", f"/api/sessions/{bob['session']}/clips/{ann['trial']['clips'][0]}")
    assert status == 404


def test_only_the_page_and_the_sessions_clips_are_served(served):
    server, folder = served
    _, state = call(server, "POST", "/api/sessions", {})
    sid = state["session"]
    status, page = call(server, "GET", "/")
    assert status == 200 and b"listen.js" in page
    assert call(server, "GET", "/listen.js")[0] == 200
    for path in ["/listen.html", "/static/listen.html", "/../listen.py", "/api/sessions", "/api/sessions/",
                 f"/api/sessions/{sid}/clips", f"/api/sessions/{sid}/clips/../../../../etc/passwd",
                 f"/api/sessions/{sid}/clips/%2e%2e%2f{sid}.jsonl", f"/api/sessions/{sid}/{sid}.jsonl",
                 f"/listening/{sid}.jsonl", f"/api/sessions/..%2f..%2fconfig.json", "/api/sessions/../../run.json",
                 "/api/sessions/0000000000000000", "/api/sessions/ABCDEF0123456789"]:
        status, payload = call(server, "GET", path)
        assert status == 404, path
        assert b"kind" not in json.dumps(payload).encode()


def test_requests_naming_another_host_are_refused(served):
    server, folder = served
    port = server.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1"):
        assert call(server, "GET", "/", headers={"Host": host})[0] == 400
        status, _ = call(server, "POST", "/api/sessions", {"listener": "x"},
                         headers={"Host": host, "Content-Type": "application/json"})
        assert status == 400
    assert not list(folder.iterdir())
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert call(server, "GET", "/", headers={"Host": host})[0] == 200


def test_unknown_sessions_are_404(served):
    server, _ = served
    assert call(server, "GET", "/api/sessions/0123456789abcdef")[0] == 404
    assert call(server, "POST", "/api/sessions/0123456789abcdef/answers", {"trial": 0, "choice": 0})[0] == 404
    assert call(server, "GET", "/api/sessions/0123456789abcdef/clips/" + "0" * 20)[0] == 404


@pytest.mark.parametrize("body,headers", [
    (b"not json", None),
    (b'{"trial": 0, "choice": 7}', None),
    (b'{"trial": 0, "choice": 0, "rating": 0}', None),
    (b'{"trial": 0, "choice": 0, "extra": 1}', None),
    (b"[]", None),
    (b'{"trial": 0, "choice": 0, "pad": "' + b"x" * 100_000 + b'"}', None),
    (None, None),  # an empty body
    (b'{"trial": 0, "choice": 0}', {"Content-Type": "text/plain"}),  # what another site's page can post
    (b"trial=0&choice=0", {"Content-Type": "application/x-www-form-urlencoded"}),
])
def test_malformed_or_oversized_answers_are_400_and_never_written(served, body, headers):
    server, folder = served
    _, state = call(server, "POST", "/api/sessions", {"listener": "ann"})
    path = folder / f"{state['session']}.jsonl"
    before = path.read_bytes()
    status, error = call(server, "POST", f"/api/sessions/{state['session']}/answers", body, headers)
    assert status == 400 and error["error"]
    assert path.read_bytes() == before
    # the session is still at its first trial and takes a good answer
    assert call(server, "POST", f"/api/sessions/{state['session']}/answers", {"trial": 0, "choice": 0})[0] == 200


def test_an_answer_without_content_length_is_400(served):
    server, folder = served
    _, state = call(server, "POST", "/api/sessions", {"listener": "ann"})
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    conn.putrequest("POST", f"/api/sessions/{state['session']}/answers")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400 and b"Content-Length" in response.read()
    conn.close()
    assert len(_lines(folder / f"{state['session']}.jsonl")) == 1


def test_oversized_new_session_is_400_and_makes_no_file(served):
    server, folder = served
    status, _ = call(server, "POST", "/api/sessions", {"listener": "x" * 2000})
    assert status == 400 and not list(folder.iterdir())


def test_a_restarted_server_continues_a_session_from_its_file(served, tmp_path):
    server, folder = served
    _, state = call(server, "POST", "/api/sessions", {"listener": "ann"})
    sid = state["session"]
    call(server, "POST", f"/api/sessions/{sid}/answers", {"trial": 0, "choice": 1})
    _, before = call(server, "GET", f"/api/sessions/{sid}")
    again = ListeningServer(make_study(), folder, port=0, seed=5, n_trials=3)
    thread = threading.Thread(target=again.serve_forever, daemon=True)
    thread.start()
    try:
        status, after = call(again, "GET", f"/api/sessions/{sid}")
        assert status == 200 and after == before and after["trial"]["index"] == 1
        assert call(again, "POST", f"/api/sessions/{sid}/answers", {"trial": 1, "choice": 0})[0] == 200
        assert [line["trial"] for line in _lines(folder / f"{sid}.jsonl")[1:]] == [0, 1]
    finally:
        again.shutdown()
        again.server_close()
        thread.join()
    other = ListeningServer(make_study(n=(7, 7)), folder, port=0, seed=5, n_trials=3)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        status, error = call(other, "GET", f"/api/sessions/{sid}")
        assert status == 409 and "other sets" in error["error"]
    finally:
        other.shutdown()
        other.server_close()
        thread.join()


# --------------------------------------------------------------------------
# Ctrl-C


_SERVE_SCRIPT = """
import sys
import numpy as np
from musicrl.config import Config
from musicrl.evaluation import listen
from musicrl.evaluation.listen_server import ListeningServer, serve
cfg = Config(n_steps=4, sr=8000, fmax=4000, n_fft=400, hop_length=200, n_mels=16)
seqs = np.zeros((3, 4, cfg.n_pitches), np.float32)
seqs[:, :, 24] = 1
study = listen.Study("identify", ("real", "agent"), (seqs, seqs), cfg)
sys.exit(serve(ListeningServer(study, sys.argv[1], port=0), log=lambda line: print(line, flush=True)))
"""


def _started(process):
    """The page's address once the server says it is listening (or the failure's output)."""
    seen = []
    for line in process.stdout:
        if "listening test at " in line:
            return line.split("listening test at ", 1)[1].split()[0]
        seen.append(line)
    process.kill()
    raise AssertionError("the server did not start:\n" + "".join(seen))


def _ctrl_c(process, url):
    host, port = url.split("//", 1)[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/api/sessions", body=b'{"listener": "ann"}', headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 201
    conn.close()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    return process.returncode, out


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", _SERVE_SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    code, out = _ctrl_c(process, _started(process))
    assert code == 0 and "listening server stopped" in out and "Traceback" not in out
    assert len(list(tmp_path.glob("*.jsonl"))) == 1


# --------------------------------------------------------------------------
# a trained run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run (test_train's settings) with held-out pieces and a pretrained checkpoint."""
    from musicrl.learning.train import train
    from musicrl.music.midi import save_midi
    from musicrl.music.vectorize import seq_to_midi
    from musicrl.tests.test_train import tiny_cfg

    music = tmp_path_factory.mktemp("music")
    for i, seq in enumerate(chord_seqs(8, small_cfg(n_steps=12), seed=7)):
        save_midi(seq_to_midi(seq), music / f"piece{i}.mid")
    cfg = tiny_cfg(holdout_fraction=0.5, iterations=1, deterministic=False)
    result = train(cfg, data=music, out=tmp_path_factory.mktemp("runs"), name="a", progress=False,
                   handle_signals=False, log=lambda line: None)
    assert result.status == "finished"
    return result.run_dir


def test_a_runs_studies(run, tmp_path):
    identify = listen.study_of_run(run, n=6, seed=0)
    assert identify.names == ("real", "agent") and identify.cfg.n_steps == 4
    assert identify.sets[1].shape == (6, 4, identify.cfg.n_pitches) and len(identify.sets[0]) >= 2
    prefer = listen.study_of_run(run, mode="prefer", n=6, seed=0)
    assert prefer.names == ("pretrained", "agent")
    np.testing.assert_array_equal(prefer.sets[1], identify.sets[1])
    other = tmp_path / "b"
    shutil.copytree(run, other)
    two_runs = listen.study_of_run(run, mode="prefer", against=other, n=6, seed=0)
    assert two_runs.names == ("agent of b", "agent of a")
    np.testing.assert_array_equal(two_runs.sets[0], two_runs.sets[1])


def test_listen_command_serves_a_run_and_stops_on_ctrl_c(run):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "musicrl", "listen", "--run", str(run), "--port", "0",
                                "--n", "4", "--trials", "2"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = _started(process)
    assert url.startswith("http://127.0.0.1:")
    code, out = _ctrl_c(process, url)
    assert code == 0 and "listening server stopped" in out and "Traceback" not in out
    assert len(list((run / listen.LISTENING_DIR).glob("*.jsonl"))) == 1


# --------------------------------------------------------------------------
# the page in a browser


def _browser():
    """Headless Chromium through Debian's chromedriver; fails with what is missing and how to install it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"the browser test needs {' and '.join(missing)}: install them with "
                    "`apt-get update && apt-get install -y chromium chromium-driver`", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser test needs selenium: pip install -e '.[test]' (or pip install selenium)",
                    pytrace=False)
    os.environ["SE_OFFLINE"] = "true"  # selenium must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=860,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def test_a_missing_browser_fails_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMEDRIVER", tmp_path / "chromedriver")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        _browser()


def test_the_page_in_a_browser(tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cfg = small_cfg(n_steps=8)
    study = listen.Study("identify", ("real", "agent"), (chord_seqs(5, cfg, 1), chord_seqs(5, cfg, 2)), cfg)
    run_dir = tmp_path / "run"
    server = ListeningServer(study, run_dir / listen.LISTENING_DIR, port=0, seed=2, n_trials=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    driver = _browser()
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(server.url)
        driver.find_element(By.ID, "listener").send_keys("tester")
        driver.find_element(By.ID, "start-button").click()
        wait.until(lambda d: "session=" in d.current_url)
        choices, correct = [1, 0, 1], []
        for t, choice in enumerate(choices):
            if t == 2:
                # a reload continues the session at the trial on screen
                driver.refresh()
            wait.until(lambda d: d.find_element(By.ID, "progress").text == f"Trial {t + 1} of 3")
            ready = "return [0, 1].map(i => document.getElementById('clip-' + i).readyState)"
            wait.until(lambda d: min(d.execute_script(ready)) >= 2)
            if t == 0:
                driver.find_element(By.CSS_SELECTOR, "input[name=rating][value='4']").click()
            driver.find_element(By.ID, f"choose-{choice}").click()
            wait.until(lambda d: d.find_element(By.ID, "roll-1").is_displayed())
            labels = [driver.find_element(By.ID, f"label-{side}").text for side in (0, 1)]
            assert sorted(labels) == ["agent", "real"]
            correct.append(labels[choice] == "real")
            assert driver.find_element(By.ID, "result").text == ("Correct." if correct[-1] else "Not this time.")
            if t == 0:
                png = driver.get_screenshot_as_png()
                (tmp_path / "listening.png").write_bytes(png)
                if os.environ.get("MUSICRL_SCREENSHOT"):
                    Path(os.environ["MUSICRL_SCREENSHOT"]).write_bytes(png)
            if t < 2:
                driver.find_element(By.ID, "next").click()
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        thread.join()

    (path,) = (run_dir / listen.LISTENING_DIR).glob("*.jsonl")
    lines = _lines(path)
    assert lines[0]["listener"] == "tester"
    assert [(a["trial"], a["choice"], a["correct"]) for a in lines[1:]] == list(zip(range(3), choices, correct))
    assert [a["rating"] for a in lines[1:]] == [4, None, None]
    code = main(["listen", "--run", str(run_dir), "--results"])
    out = capsys.readouterr().out
    k = sum(correct)
    low, high = wilson_interval(k, 3)
    assert code == 0 and f"| tester | 3 | {k / 3:.2f} [{low:.2f}, {high:.2f}] | 4.00 (n=1) |" in out
