"""The local web page of a blind listening test (``python -m musicrl listen``).

A :class:`ListeningServer` (the standard library's ``ThreadingHTTPServer``)
serves one static page and a small JSON API over a :class:`Study`:

==========================================  ==========================================
``GET /``, ``GET /listen.js``               the page (package data, nothing else on disk)
``POST /api/sessions``                      a new session: ``{"listener": name}`` -> id
``GET /api/sessions/<id>``                  the session's state and current trial
``GET /api/sessions/<id>/clips/<clip>``     one clip of the session, as WAV
``POST /api/sessions/<id>/answers``         ``{"trial", "choice", "rating"}`` -> the reveal
==========================================  ==========================================

Clips are named by opaque ids and only those of the session in the URL are
served, and, bound to 127.0.0.1, only to requests naming this machine. A
body that is not ``application/json`` (which keeps other sites'
pages from posting answers), larger than
:data:`~musicrl.evaluation.listen.MAX_BODY_BYTES` or malformed is refused
with 400 before anything is written; an unknown
session is 404; answering a trial other than the current one is 409. Each
answer is appended to the session's file and synced before the reply, so a
killed server loses nothing that was answered, and a session absent from
memory (after a restart) is rebuilt from its file.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MusicRLError
from ..seeding import as_rng
from . import listen

__all__ = ["ListeningServer", "serve"]

# name in the URL -> (package file, content type); the page is all the server reads from the package
_STATIC = {
    "/": ("listen.html", "text/html; charset=utf-8"),
    "/listen.js": ("listen.js", "text/javascript; charset=utf-8"),
}
_CLIP_CACHE_SIZE = 64


def _static_file(name: str) -> bytes:
    return resources.files("musicrl.evaluation").joinpath("static", name).read_bytes()


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and sync it to disk before returning, so an answer given is an answer kept."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


class ListeningServer(ThreadingHTTPServer):
    """A web server of listening sessions over one study.

    Parameters
    ----------
    study : Study
        The two sets compared.
    folder : str or path-like
        Where session files go (``<run>/listening``); created if missing.
    host : str
        Address to bind (``'127.0.0.1'``: this machine only).
    port : int
        TCP port (0: any free port; see ``server_address``).
    seed : int or np.random.Generator
        Randomness of the session ids and seeds.
    n_trials : int
        Trials per session (fewer when a set is smaller).
    """

    daemon_threads = True

    def __init__(self, study: listen.Study, folder: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0,
                 seed: int | np.random.Generator | None = None, n_trials: int = 20) -> None:
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise MusicRLError(f"n_trials must be an int >= 1, got {n_trials!r}")
        self.study = study
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MusicRLError(f"cannot create the listening folder {str(self.folder)!r}: {e.strerror or e}") from None
        self.n_trials = n_trials
        self._rng = as_rng(seed)
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[listen.ListeningSession, threading.Lock]] = {}
        self._clips: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise MusicRLError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        # bound to this machine only, the page answers only to this machine's names: another site's name
        # pointed at 127.0.0.1 (DNS rebinding) gets nothing
        bound = self.server_address[1]
        loopback = host in ("127.0.0.1", "localhost", "::1")
        self.hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"} if loopback else None

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def session_path(self, session: str) -> Path:
        return self.folder / f"{session}.jsonl"

    def new_session(self, listener: str) -> listen.ListeningSession:
        """Start a session, write its header line, and keep it in memory."""
        with self._lock:
            session_id = listen.new_session_id(self._rng)
            while session_id in self._sessions or self.session_path(session_id).exists():
                session_id = listen.new_session_id(self._rng)
            seed = int(self._rng.integers(0, 2**62))
            session = listen.ListeningSession.create(self.study, session=session_id, seed=seed,
                                                     n_trials=self.n_trials, listener=listener)
            _append_line(self.session_path(session_id), session.header)
            self._sessions[session_id] = (session, threading.Lock())
        return session

    def get_session(self, session_id: str) -> tuple[listen.ListeningSession, threading.Lock] | None:
        """A session from memory, else rebuilt from its file; None when there is none."""
        if not listen.is_session_id(session_id):
            return None
        with self._lock:
            if session_id not in self._sessions:
                path = self.session_path(session_id)
                if not path.is_file():
                    return None
                session = listen.ListeningSession.from_records(listen.read_session_file(path), self.study)
                self._sessions[session_id] = (session, threading.Lock())
            return self._sessions[session_id]

    def clip(self, session: listen.ListeningSession, trial: int, side: int) -> bytes:
        """The WAV of one clip, rendered once and kept for a while."""
        name, index = session.sets_of(trial)[side]
        key = (self.study.names.index(name), index)
        with self._lock:
            if key in self._clips:
                self._clips.move_to_end(key)
                return self._clips[key]
        wav = listen.render_clip(session.seq_of(trial, side), self.study.cfg)
        with self._lock:
            self._clips[key] = wav
            while len(self._clips) > _CLIP_CACHE_SIZE:
                self._clips.popitem(last=False)
        return wav


class _Handler(BaseHTTPRequestHandler):
    server: ListeningServer
    server_version = "musicrl-listen"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a listener's clicks are not worth a line each on the console

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _body(self) -> bytes | None:
        """The request body, or None after replying 400 to one not JSON, missing, oversized or cut short."""
        if self.headers.get_content_type() != "application/json":
            # a form or text/plain post from another site's page needs no preflight; JSON does, and gets none
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "a request body must be sent as application/json")
            return None
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "a request body with a Content-Length is required")
            return None
        if int(length) > listen.MAX_BODY_BYTES:
            # the body is left unread: the connection closes instead
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, f"a request body must be at most {listen.MAX_BODY_BYTES} bytes")
            return None
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "the request body was cut short")
            return None
        return body

    def _route(self) -> tuple[str, ...]:
        path = self.path.split("?", 1)[0]
        return tuple(part for part in path.split("/") if part)

    def _host_refused(self) -> bool:
        """Whether the request names another host than this machine's (then 400 is sent)."""
        if self.server.hosts is None or self.headers.get("Host", "").lower() in self.server.hosts:
            return False
        self.close_connection = True
        self._error(HTTPStatus.BAD_REQUEST, "this server answers only to 127.0.0.1, localhost and [::1]")
        return True

    def do_GET(self) -> None:
        if self._host_refused():
            return None
        path = self.path.split("?", 1)[0]
        if path in _STATIC:
            name, content_type = _STATIC[path]
            return self._send(HTTPStatus.OK, _static_file(name), content_type)
        parts = self._route()
        if len(parts) in (3, 5) and parts[:2] == ("api", "sessions"):
            found = self._session(parts[2])
            if found is None:
                return None
            session, lock = found
            if len(parts) == 3:
                with lock:
                    return self._json(HTTPStatus.OK, session.state())
            if parts[3] == "clips" and parts[4] in session.clips:
                trial, side = session.clips[parts[4]]
                return self._send(HTTPStatus.OK, self.server.clip(session, trial, side), "audio/wav")
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if self._host_refused():
            return None
        parts = self._route()
        if parts == ("api", "sessions"):
            return self._with_body(self._new_session)
        if len(parts) == 4 and parts[:2] == ("api", "sessions") and parts[3] == "answers":
            found = self._session(parts[2])
            if found is None:
                return None
            return self._with_body(lambda body: self._answer(body, *found))
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def _with_body(self, handle: Callable[[bytes], None]) -> None:
        body = self._body()
        if body is None:
            return
        try:
            handle(body)
        except MusicRLError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))

    def _session(self, session_id: str) -> tuple[listen.ListeningSession, threading.Lock] | None:
        """The session of the URL, or None after replying 404 (unknown) or 409 (made from other sets)."""
        try:
            found = self.server.get_session(session_id)
        except MusicRLError as e:
            self._error(HTTPStatus.CONFLICT, str(e))
            return None
        if found is None:
            self._error(HTTPStatus.NOT_FOUND, f"no listening session {session_id!r}")
        return found

    def _new_session(self, body: bytes) -> None:
        session = self.server.new_session(listen.parse_listener(body))
        self._json(HTTPStatus.CREATED, session.state())

    def _answer(self, body: bytes, session: listen.ListeningSession, lock: threading.Lock) -> None:
        trial, choice, rating = listen.parse_answer(body)
        with lock:
            try:
                record = session.answer(trial, choice, rating)
            except MusicRLError as e:
                return self._error(HTTPStatus.CONFLICT, str(e))
            _append_line(self.server.session_path(session.id), record)
            session.apply(record)
            reveal = session.reveal(record)
        self._json(HTTPStatus.OK, reveal)


def serve(server: ListeningServer, *, log: Callable[[str], None] = print) -> int:
    """Serve until SIGINT (Ctrl-C) or SIGTERM, then shut down cleanly.

    The server runs in a thread; the signal only sets an event, and the main
    thread calls ``server.shutdown()``, which must not run on the serving
    thread itself.

    Returns
    -------
    code : int
        0.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name="listen-server", daemon=True)
    thread.start()
    log(f"listening test at {server.url} (Ctrl-C to stop; answers go to {server.folder})")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log("listening server stopped")
    return 0
