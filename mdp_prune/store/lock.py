"""One process at a time in a folder: an exclusive `fcntl.flock` on the folder's lock file (`paths.LOCK`).

    with folder_lock(run, "run folder"):                      # a second process stops: FolderInUse (exit 2)
        ...
    with folder_lock(dense, "dense folder", wait=True):      # a second process waits for the first
        ...

The kernel drops a flock when its process dies, so the lock of a run killed with `kill -9` is free at once; the
file it leaves (with the dead holder's details) is simply locked again and overwritten. After locking, the holder
writes its pid, host, start time and command line into the file, for the message a second process shows. A
clean release deletes the file, and the folder too if the lock created it and nothing else was written there, so
a lock leaves nothing beside the results. Because the file can be deleted while another process waits on it, a
process that gets the lock checks that its file is still the one in the folder, and otherwise locks the new one.

The lock is re-entrant within a thread (code that holds a folder may call a function that locks it again, at no
cost); another thread of the same process is treated like another process. A forked child does not
inherit its parent's locks.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mdp_prune.errors import UserError
from mdp_prune.store import paths


class FolderInUse(UserError):
    """Another process (or thread) holds the folder's lock."""


@dataclass
class _Hold:
    fd: int  # -1: a folder this process cannot write, used without a lock
    pid: int = field(default_factory=os.getpid)
    depth: int = 0
    created: bool = False  # the lock made the folder


_guard = threading.Lock()
_threads: dict[str, threading.RLock] = {}  # folder -> the thread of this process that holds it
_held: dict[str, _Hold] = {}  # folder -> this process's lock on it
_command: str | None = None


def set_command(text: str | None) -> None:
    """What the lock file names as the holder's command (default: this process's command line)."""
    global _command
    _command = text


def command_line() -> str:
    """This process's command as a user would type it (`python -m mdp_prune run ...` for a module)."""
    argv = list(sys.argv) or ["python"]
    first = Path(argv[0])
    head = f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name or "python"
    return " ".join([head, shlex.join(argv[1:])]).strip()


@contextmanager
def folder_lock(folder: Path | str, what: str = "run folder", wait: bool = False,
                announce: bool = False) -> Iterator[Path]:
    """Hold `folder` exclusively for the block. `wait=False`: raise `FolderInUse` (one line naming the holder) if
    another process holds it; `wait=True`: block until it is free, saying so on stderr first when `announce`."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    with _guard:
        thread_lock = _threads.setdefault(key, threading.RLock())
    if not thread_lock.acquire(blocking=wait):
        raise _in_use(folder, what, _read_holder(folder / paths.LOCK))
    try:
        hold = _held.get(key)
        if hold is None or hold.pid != os.getpid():
            hold = _held[key] = _acquire(folder, what, wait, announce)
        hold.depth += 1
        try:
            yield folder
        finally:
            hold.depth -= 1
            if hold.depth == 0 and hold.pid == os.getpid():
                if _held.get(key) is hold:
                    del _held[key]
                _release(folder, hold)
    finally:
        thread_lock.release()


def _acquire(folder: Path, what: str, wait: bool, announce: bool) -> _Hold:
    try:
        created = not folder.exists()
    except OSError as e:  # a parent folder that cannot be entered
        raise UserError(f"cannot lock {what} {folder}: {e.strerror or e}") from None
    lock = folder / paths.LOCK
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # a holder that had made the folder removed it just now: make it again
            continue
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and folder.is_dir():
                return _Hold(-1)  # a read-only folder: nothing of ours can write in it, so there is nothing to guard
            raise UserError(f"cannot lock {what} {folder}: {e.strerror or e}") from None
        try:
            _flock(fd, folder, what, wait, announce)
            if _same_file(fd, lock):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder before us deleted the file we waited on; lock the one there now
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": _command or command_line()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return _Hold(fd, created=created)


def _flock(fd: int, folder: Path, what: str, wait: bool, announce: bool) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if not wait:
            raise _in_use(folder, what, _holder(fd)) from None
    except OSError as e:  # ENOLCK, EOPNOTSUPP: a file system without locks (some network mounts)
        raise UserError(f"cannot lock {what} {folder}: {e.strerror or e} (its file system does not support "
                        "locks; use an --out on a local disk)") from None
    if announce:
        print(f"waiting: {_describe(folder, what, _holder(fd))}", file=sys.stderr, flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, ours = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)


def _release(folder: Path, hold: _Hold) -> None:
    if hold.fd < 0:
        return
    try:
        (folder / paths.LOCK).unlink(missing_ok=True)  # while still locked: a waiter then sees it is gone
    finally:
        os.close(hold.fd)
    if hold.created:
        try:
            folder.rmdir()  # only when empty: nothing but the lock was ever written there
        except OSError:
            pass


def _holder(fd: int) -> dict:
    """The holder's details; a holder that has just locked writes them a moment later."""
    for _ in range(20):
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            info = None
        if isinstance(info, dict):
            return info
        time.sleep(0.05)
    return {}


def _read_holder(path: Path) -> dict:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        return _holder(fd)
    finally:
        os.close(fd)


def _describe(folder: Path, what: str, info: dict) -> str:
    if not info:
        return f"{what} {folder} is in use by another process"
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    command = " ".join(str(info.get("command", "?")).split())  # one line, whatever the command held
    return f"{what} {folder} is in use by pid {info.get('pid', '?')}{where} ({command}, since {info.get('since', '?')})"


def _in_use(folder: Path, what: str, info: dict) -> FolderInUse:
    return FolderInUse(f"{_describe(folder, what, info)}; wait for it to finish or stop it")


def _after_fork() -> None:
    """A forked child holds none of its parent's locks: close its copies of the files (the parent keeps its
    locks) and forget them."""
    global _guard
    _guard = threading.Lock()  # another thread may have held it at the fork
    for hold in _held.values():
        if hold.fd >= 0:
            os.close(hold.fd)
    _held.clear()
    _threads.clear()


os.register_at_fork(after_in_child=_after_fork)
