"""What `clean` may remove beyond a run's own tags: only what no live process holds (no root needed)."""

from __future__ import annotations

import socket

from harness.system import cleanup


def test_only_sockets_nobody_listens_on_are_dead(tmp_path, monkeypatch):
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tmp_path / "wg0.sock"))
    live.listen()
    gone = socket.socket(socket.AF_UNIX)
    gone.bind(str(tmp_path / "wgnet1.sock"))
    gone.close()  # its daemon died: the file stays, nothing answers
    monkeypatch.setattr(cleanup, "stray_wireguard_sockets", lambda: sorted(str(p) for p in tmp_path.glob("*.sock")))
    try:
        assert cleanup.dead_wireguard_sockets() == [str(tmp_path / "wgnet1.sock")]
    finally:
        live.close()
