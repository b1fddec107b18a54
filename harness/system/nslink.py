"""Netlink handles inside a network namespace, opened without forking.

pyroute2 opens a socket in another namespace by forking a helper process. Forking a process that
runs threads can deadlock the child (a lock held by another thread at fork time stays held), and
that hung the harness intermittently. Here the calling thread joins the namespace with setns(2),
opens the socket and returns: a network namespace switch is per thread and needs no fork.

pyroute2 keeps its socket per thread, so a handle belongs to the thread that opened it; Host
keeps one per thread.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

from pyroute2 import IPRoute

from harness.errors import BackendError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netlink_socket(netns_path: str, proto: int = NETLINK_ROUTE) -> socket.socket:
    """A raw netlink socket bound to the namespace at `netns_path` (opened in the calling thread)."""
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BackendError(f"cannot open network namespace {netns_path}: {exc.strerror}") from exc
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _lock:
            _setns(target)
            try:
                return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, proto)
            finally:
                _setns(own)
    finally:
        os.close(target)
        os.close(own)


def open_iproute(netns_path: str) -> IPRoute:
    """An IPRoute handle working in the namespace at `netns_path`, for use by the calling thread."""
    sock = netlink_socket(netns_path)
    return IPRoute(fileno=sock.detach())
