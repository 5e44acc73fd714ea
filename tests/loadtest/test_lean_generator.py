"""The cheap generator's parts: the timerfd pacer, the keep-alive client, the memoised answer check."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.event
import numpy as np
import pytest

from loadtest.schedule import pace
from loadtest.spec import PointSpec
from loadtest.targets import parse_target
from loadtest.timer import precise_waiter
from loadtest.users.base import Driver
from loadtest.users.codecs import Call
from loadtest.users.http import HTTPError, KeepAliveClient, request_bytes


def test_pace_with_a_waiter_never_spins() -> None:
    now = [0.0]
    waits: list[float] = []
    sleeps: list[float] = []

    def wait_until(due: float) -> None:
        waits.append(due)
        now[0] = due

    ticks = list(pace(iter([0.0, 0.01, 0.01, 0.02]), 5.0, sleeps.append, clock=lambda: now[0], wait_until=wait_until))
    assert [t.scheduled for t in ticks] == [5.0, 5.01, 5.01, 5.02]
    assert waits == [5.0, 5.01, 5.02]  # a due time already reached is released at once
    assert sleeps == []  # no sleep(0) spin, no coarse sleep


def test_timerfd_wakes_at_the_due_time_while_other_greenlets_run() -> None:
    waiter = precise_waiter()
    if waiter is None:
        pytest.skip("no timerfd on this platform")
    ran: list[float] = []
    try:
        other = gevent.spawn(lambda: ran.append(time.perf_counter()))
        for delay in (0.0003, 0.002, 0.02):
            due = time.perf_counter() + delay
            waiter(due)
            assert time.perf_counter() >= due  # never early
        assert ran, "the wait blocked the whole process instead of this greenlet"
        other.join()
    finally:
        waiter.close()


def _server(answers: list[bytes]) -> Iterator[tuple[int, list[int]]]:
    """A raw HTTP server on 127.0.0.1 answering each request with the next of `answers`; yields (port, accepts)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    accepts: list[int] = []
    queue = list(answers)

    def handle(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while queue:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < n:
                    rest += conn.recv(65536)
                buf = rest[n:]
                answer = queue.pop(0)
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            accepts.append(1)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield lsock.getsockname()[1], accepts
    finally:
        lsock.close()


@pytest.fixture
def server() -> Iterator[Callable[[list[bytes]], tuple[int, list[int]]]]:
    gens: list[Iterator[tuple[int, list[int]]]] = []

    def start(answers: list[bytes]) -> tuple[int, list[int]]:
        gen = _server(answers)
        gens.append(gen)
        return next(gen)

    yield start
    for gen in gens:
        gen.close()


def test_keepalive_client_reads_both_body_framings_and_reuses_the_connection(server: Callable) -> None:
    port, accepts = server(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer-Timing: upstream;dur=1.5\r\n\r\nhello",
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbus\r\n1\r\ny\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]
    )
    client = KeepAliveClient("127.0.0.1", port, timeout_s=5)
    req = request_bytes(f"127.0.0.1:{port}", "/x", b'{"a": 1}', {"Content-Type": "application/json"})
    first = client.post(req)
    assert (first.status, first.body, first.header("server-timing")) == (200, b"hello", "upstream;dur=1.5")
    second = client.post(req)
    assert (second.status, second.body) == (503, b"busy")
    third = client.post(req)
    assert (third.status, third.body) == (200, b"ok")
    assert len(accepts) == 1  # one connection carried all three
    assert client.open == 0  # ...and was dropped after `Connection: close`


def test_keepalive_client_reports_a_closed_connection_and_a_refused_port(server: Callable) -> None:
    port, _ = server([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])  # closes before the promised body
    client = KeepAliveClient("127.0.0.1", port, timeout_s=2)
    with pytest.raises(HTTPError, match="closed"):
        client.post(request_bytes("h", "/", b"", {}))
    assert client.open == 0
    free = socket.create_server(("127.0.0.1", 0))
    dead_port = free.getsockname()[1]
    free.close()
    with pytest.raises(HTTPError):
        KeepAliveClient("127.0.0.1", dead_port, timeout_s=2).post(request_bytes("h", "/", b"", {}))


def test_identical_answers_are_checked_once_and_wrong_ones_stay_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = Driver.__new__(Driver)  # no artifacts needed: the check itself is stubbed and counted
    driver.cfg = PointSpec(parse_target("torchserve-rest-direct:digits"), artifacts=Path("unused"))
    driver._verdicts, driver._memo_bytes = {}, 0
    checked: list[bytes] = []

    def check(call: Call, body: bytes) -> str:
        checked.append(body)
        return "ok" if body == b"right" else "wrong"

    monkeypatch.setattr(driver, "_check", check)
    call = Call("/p", b"", np.zeros((1, 10), np.float32))
    verdicts = [driver.judge(call, b) for b in (b"right", b"right", b"bad", b"right", b"bad")]
    assert verdicts == ["ok", "ok", "wrong", "ok", "wrong"]
    assert checked == [b"right", b"bad"]


def test_a_point_spec_survives_the_locust_command_line() -> None:
    """What the bench writes (`--lt-*`) is exactly what Locust reads back: one spec, one set of defaults."""
    import argparse

    from loadtest.spec import add_options
    from loadtest.validity import DEFAULT

    parser = argparse.ArgumentParser()
    add_options(parser)
    target = parse_target("tfserving-grpc-gateway:digits@9123")
    open_load = {"mode": "open", "schedule": "constant", "rate_rps": 20.0, "batch": 2, "seed": 7}
    closed_load = {"mode": "closed", "concurrency": 4, "batch": 1}
    for load in (open_load, closed_load):
        spec = PointSpec.of(target, load, DEFAULT.longer(1), run_dir=Path("/r"), out=Path("/o/p.json"))
        assert PointSpec.from_options(parser.parse_args(spec.argv())) == spec
    defaults = PointSpec.from_options(parser.parse_args([]))
    assert (defaults.warmup_s, defaults.window_s, defaults.duration_s) == (
        DEFAULT.warmup_s,
        DEFAULT.window_s,
        DEFAULT.min_duration_s,
    )
    assert defaults.key_file == Path("run/torchserve/key_file.json")


def test_auto_priority_is_real_time_only_where_the_pacer_sleeps() -> None:
    from loadtest.pointrun import priority_for

    assert priority_for(parse_target("torchserve-rest-direct:digits"), "auto") == "fifo"
    assert priority_for(parse_target("tfserving-rest-gateway:digits"), "auto") == "fifo"
    assert priority_for(parse_target("torchserve-grpc-direct:digits"), "auto") == "nice"  # its pacer spins
    assert priority_for(parse_target("torchserve-grpc-direct:digits"), "fifo") == "fifo"  # asked for explicitly


def test_a_stopped_open_loop_counts_its_cut_requests_as_dropped_not_errors() -> None:
    """The web UI's Stop kills the drive greenlet: requests still in flight were cut by the generator, so the point
    records them as dropped (unmeasured), never as server errors (before: 3 errors in a stopped TF gRPC point)."""
    from loadtest.drive import run_open_loop
    from loadtest.recorder import Recorder

    rec = Recorder("t", time.time(), 0.0, 1.0)
    release = gevent.event.Event()

    def send() -> str:
        release.wait()  # never answered before the stop
        return "ok"

    driver = gevent.spawn(run_open_loop, send, [0.0, 0.01, 0.02, 5.0], rec, None, 2000, 10.0, True)
    gevent.sleep(0.2)
    driver.kill(block=True, timeout=5)
    assert rec.totals.counts["errors"] == 0 and rec.totals.counts["dropped"] == 3
