"""Checkpoints that are never seen half-written.

A checkpoint is a folder ``<root>/<name>/`` holding

* ``tf/ckpt.*``: a ``tf.train.Checkpoint`` of TensorFlow/Keras objects
  (models, optimizers);
* ``arrays.npz``: NumPy arrays (replay buffer, chord vocabulary, ...);
* ``state.json``: plain values (iteration counter, generator states, ...).

It is written into a hidden temporary folder next to it and renamed into
place in one step, so a crash or a Ctrl-C while writing leaves either the
previous checkpoints or the complete new one, never a partial folder. The
text file ``<root>/latest`` names the newest checkpoint; it too is replaced
atomically, and only after its checkpoint is in place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import MusicRLError

__all__ = [
    "LATEST_FILE",
    "checkpoint_iteration",
    "checkpoint_name",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
]

LATEST_FILE = "latest"
"""Name of the pointer file naming the newest checkpoint folder."""

_TF_PREFIX = ("tf", "ckpt")
_ARRAYS = "arrays.npz"
_STATE = "state.json"
_ITER_RE = re.compile(r"^iter-(\d+)$")


def checkpoint_name(iteration: int) -> str:
    """Folder name of the checkpoint after ``iteration`` iterations: ``iter-0000100``."""
    return f"iter-{int(iteration):07d}"


def checkpoint_iteration(path: str | os.PathLike) -> int | None:
    """The iteration of a folder named by :func:`checkpoint_name`, else None."""
    m = _ITER_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def save_checkpoint(
    root: str | os.PathLike,
    name: str,
    *,
    objects: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray] | None = None,
    state: Mapping[str, Any] | None = None,
    set_latest: bool = True,
) -> Path:
    """Write a checkpoint folder atomically.

    Parameters
    ----------
    root : str or path-like
        Folder of the run's checkpoints (created if missing).
    name : str
        Name of the checkpoint folder, e.g. ``checkpoint_name(100)`` or
        ``"pretrained"``. An existing checkpoint of that name is replaced
        (the old one stays in place until the new one is complete).
    objects : mapping of str to trackable
        TensorFlow/Keras objects (models, optimizers, variables) saved with
        ``tf.train.Checkpoint(**objects)``.
    arrays : mapping of str to np.ndarray, optional
        Saved with ``np.savez`` (uncompressed: fast, and exact).
    state : mapping, optional
        JSON-serializable values.
    set_latest : bool
        Point ``root/latest`` at this checkpoint once it is in place.

    Returns
    -------
    path : Path
        The checkpoint folder.

    Raises
    ------
    MusicRLError
        If the folder cannot be written (the previous checkpoints are intact).
    """
    import tensorflow as tf

    root = Path(root)
    if not name or "/" in name or name.startswith(".") or name == LATEST_FILE:
        raise MusicRLError(f"checkpoint name must be a plain folder name, got {name!r}")
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        tf.train.Checkpoint(**dict(objects)).write(str(tmp.joinpath(*_TF_PREFIX)))
        with open(tmp / _ARRAYS, "wb") as f:
            np.savez(f, **dict(arrays or {}))
        # the state is written last: a folder with state.json is complete
        (tmp / _STATE).write_text(json.dumps(dict(state or {}), indent=1, sort_keys=True) + "\n")
        _fsync_tree(tmp)
        old = None
        if final.exists():
            old = root / f".old-{name}-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if set_latest:
            _write_text_atomic(root / LATEST_FILE, name + "\n")
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise MusicRLError(f"cannot write checkpoint {str(final)!r}: {reason}") from None
    except BaseException:
        # e.g. a second Ctrl-C: the hidden folder is all that is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _is_complete(path: Path) -> bool:
    return (path / _STATE).is_file() and (path / _ARRAYS).is_file()


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete iteration checkpoints under ``root``, oldest iteration first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir()
        if p.is_dir() and checkpoint_iteration(p) is not None and _is_complete(p)
    ]
    return sorted(found, key=lambda p: checkpoint_iteration(p))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``root/latest`` names (or, failing that, the newest complete one); None if none.

    A newer complete iteration checkpoint wins over an older one the pointer
    names: a crash between a folder's rename into place and the pointer's
    update leaves the pointer one checkpoint behind.
    """
    root = Path(root)
    try:
        name = (root / LATEST_FILE).read_text().strip()
    except OSError:
        name = ""
    found = list_checkpoints(root)
    if name and "/" not in name and _is_complete(root / name):
        named = checkpoint_iteration(name)
        if named is not None and found and checkpoint_iteration(found[-1]) > named:
            return found[-1]
        return root / name
    return found[-1] if found else None


def load_checkpoint(
    path: str | os.PathLike, *, objects: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Restore a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or path-like
        The checkpoint folder.
    objects : mapping of str to trackable, optional
        Objects to restore in place, under the names they were saved with;
        each must already have all its variables (build models and
        optimizers first). Objects saved but not asked for are ignored.

    Returns
    -------
    arrays : dict of str to np.ndarray
    state : dict

    Raises
    ------
    MusicRLError
        If the folder is not a complete checkpoint, or an object's variables
        do not match what was saved.
    """
    import tensorflow as tf

    path = Path(path)
    if not _is_complete(path):
        raise MusicRLError(f"{str(path)!r} is not a complete checkpoint (no {_STATE} / {_ARRAYS})")
    if objects:
        try:
            status = tf.train.Checkpoint(**dict(objects)).read(str(path.joinpath(*_TF_PREFIX)))
            status.expect_partial()
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise MusicRLError(
                f"checkpoint {str(path)!r} does not match the objects to restore "
                f"(were the settings changed?): {str(e).splitlines()[0][:300]}"
            ) from None
    try:
        with np.load(path / _ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        state = json.loads((path / _STATE).read_text())
    except (OSError, ValueError) as e:
        raise MusicRLError(f"cannot read checkpoint {str(path)!r}: {e}") from None
    return arrays, state


def prune_checkpoints(root: str | os.PathLike, *, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` iteration checkpoints (never the one ``latest`` names).

    Named checkpoints such as ``pretrained`` are never deleted. Leftovers
    of interrupted writes and deletions (hidden folders, a temporary pointer
    file) are removed too.

    Returns
    -------
    removed : list of Path
    """
    root = Path(root)
    if int(keep) < 1:
        raise MusicRLError(f"keep must be >= 1, got {keep}")
    latest = latest_checkpoint(root)
    found = list_checkpoints(root)
    removed = []
    for p in found[: max(0, len(found) - int(keep))]:
        if latest is not None and p.resolve() == latest.resolve():
            continue
        # hidden first, in one step: a crash while deleting must not leave a visible folder missing files
        trash = root / f".del-{p.name}-{os.getpid()}"
        try:
            os.replace(p, trash)
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(p)
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith((".tmp-", ".old-", ".del-")):
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_file() and p.name.startswith(f".{LATEST_FILE}.") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
    return removed
