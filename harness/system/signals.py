"""SIGINT and SIGTERM unwind through the same path: both become Interrupted (a KeyboardInterrupt).

Teardown defers them, so a second Ctrl-C cannot cut a cleanup short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from harness.errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_pending: list[int] = []  # signals whose KeyboardInterrupt has not reached a checkpoint yet


_UNSAFE_FILES = (f"logging{os.sep}__init__.py", f"{os.sep}threading.py")


def _in_lock_code(frame: FrameType | None) -> bool:
    """Whether the signal landed in logging's or threading's own code (a few frames up): an at-fork hook
    such as logging's _releaseLock runs there, and an exception raised in it is ignored *and* leaves
    logging's module lock held, so the next log call of another thread blocks forever."""
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith(_UNSAFE_FILES) or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if _in_lock_code(frame):  # (a __del__ too: Python ignores what it raises)
        _pending.append(signum)
        return  # deferred: the next checkpoint (a progress line, a wait's poll, a bring-up phase) raises it
    raise Interrupted(signum)


def checkpoint() -> None:
    """Raise, once more, an interrupt whose KeyboardInterrupt was swallowed.

    Python ignores an exception raised where it cannot propagate: a signal that lands in an at-fork
    hook ("Exception ignored in: <function _releaseLock ...>") or a __del__ is lost, and the run went
    on holding the topology (a CI flake). The handler itself defers a signal that lands in logging's or
    threading's code. Bring-up calls this between its phases, every progress line and every wait's poll
    do too; a raise here consumes the pending signal, so it is raised at most twice."""
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """While active, SIGINT and SIGTERM raise KeyboardInterrupt, so context managers clean up.

    SIGINT too, explicitly: a process started in the background by a non-interactive shell (`cmd &`,
    nohup, some CI runners) inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt.
    """
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the body runs; if one came, raise KeyboardInterrupt after it."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = list(_pending)  # one deferred before teardown is raised after it, not inside
    _pending.clear()
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise Interrupted(received[0], "during teardown")
