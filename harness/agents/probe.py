"""A sequence-numbered UDP probe: `echo` on the far host, `send` on the near one (stdlib only).

Runs as a script inside a host (namespace or container), so it has no harness imports:
    python3 probe.py echo --port 9000
    python3 probe.py send --to 172.30.255.3 --port 9000 --rate 2000 --seconds 5
`send` prints one JSON object: how many it sent, and [seq, sent_at, echoed_at] for every echo
received (CLOCK_MONOTONIC seconds, the clock the harness's switch log uses).
    python3 probe.py echo --port 9001 --record
also keeps [seq, received_at] of every packet it received (what arrived up, apart from what came back
down), and prints them as one JSON object when it is told to stop (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time

HEADER = struct.Struct("!Id")  # sequence number, send time
HELLO = 0xFFFFFFFF


def echo(port: int, record: bool = False) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    received: list[list[float]] = []

    def report(*_: object) -> None:
        json.dump({"received": received}, sys.stdout)
        sys.stdout.flush()
        raise SystemExit(0)

    if record:
        signal.signal(signal.SIGTERM, report)
    while True:
        data, peer = sock.recvfrom(65535)
        if record:
            seq = HEADER.unpack_from(data)[0]
            if seq != HELLO:
                received.append([seq, time.monotonic()])
        sock.sendto(data, peer)


def send(to: str, port: int, rate: float, seconds: float, size: int, linger: float) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((to, port))
    sock.settimeout(0.05)
    padding = b"\0" * max(0, size - HEADER.size)
    deadline = time.monotonic() + 10
    while True:  # the echo must answer before the measured stream starts
        sock.send(HEADER.pack(HELLO, time.monotonic()) + padding)
        try:
            if HEADER.unpack_from(sock.recv(65535))[0] == HELLO:
                break
        except (TimeoutError, ConnectionRefusedError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"probe: no echo from {to}:{port} within 10 s")
    echoes: list[list[float]] = []
    stop = threading.Event()

    def receive() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                continue
            seq, sent_at = HEADER.unpack_from(data)
            if seq != HELLO:
                echoes.append([seq, sent_at, time.monotonic()])

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    period = 1.0 / rate
    start = time.monotonic()
    count = int(seconds * rate)
    for seq in range(count):
        due = start + seq * period
        while (left := due - time.monotonic()) > 0:
            time.sleep(left if left > 0.001 else 0)
        try:
            sock.send(HEADER.pack(seq, time.monotonic()) + padding)
        except OSError:
            pass  # no route for a moment (the demo's delete-then-add): the packet is lost, as on a real host
    time.sleep(linger)
    stop.set()
    receiver.join()
    return {"sent": count, "rate": rate, "started_at": start, "echoes": echoes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--record", action="store_true")
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, default=2000.0)
    s.add_argument("--seconds", type=float, default=5.0)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--linger", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.mode == "echo":
        echo(args.port, args.record)
        return 0
    json.dump(send(args.to, args.port, args.rate, args.seconds, args.size, args.linger), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
