"""Slow clients (issue #22, point 10), against a live `python -m apps.mlflask` with two workers: hundreds of
half-sent requests neither hold its threads nor stop `/health`, and they are answered 408 and dropped."""

import json
import socket
import time

import pytest
import requests

from tests.conftest import start_mlflask, stop_process

STALLED = 500
CLIENT_TIMEOUT = 6


@pytest.fixture(scope="module")
def server(serving_runs, tmp_path_factory):
    env = {**serving_runs["env"], "MLFLASK_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT)}
    url, process, _, _ = start_mlflask(tmp_path_factory.mktemp("slow"), env, workers=2)
    try:
        yield url
    finally:
        stop_process(process)


def _stall(port: int, i: int) -> socket.socket:
    """A client that sends part of a request and then nothing: headers cut short, or a body cut short."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    if i % 2:
        sock.sendall(head.encode())
    else:
        sock.sendall(f'{head}Content-Length: 200\r\n\r\n{{"texts": ["half'.encode())
    return sock


def _answer_to(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data + b"<still open>"
    except ConnectionResetError:
        pass
    return data


def test_stalled_clients_do_not_block_health_and_are_dropped(server):
    port = int(server.rsplit(":", 1)[1])
    stalled = [_stall(port, i) for i in range(STALLED)]
    try:
        opened = time.monotonic()
        for _ in range(3):
            started = time.monotonic()
            answer = requests.get(server + "/health", timeout=2)  # the bound; a blocked server times out
            assert answer.status_code == 200 and time.monotonic() - started < 2
        # a real request sent slowly, in pieces, is still read and answered
        body = json.dumps({"texts": ["A fine, moving film."], "model": "none-such"}).encode()
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        for piece in (body[:5], body[5:]):
            time.sleep(0.5)
            slow.sendall(piece)
        answer = _answer_to(slow, 30)
        assert answer.startswith(b"HTTP/1.1 404") and b"none-such" in answer  # the whole body was read
        # every stalled client is answered 408 and its connection closed once the client timeout has passed
        answers = [_answer_to(sock, max(0.5, opened + CLIENT_TIMEOUT + 5 - time.monotonic())) for sock in stalled]
        assert all(a.startswith(b"HTTP/1.1 408") and not a.endswith(b"<still open>") for a in answers), {
            a[:40] for a in answers
        }
        assert requests.get(server + "/health", timeout=2).status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def test_expect_100_continue_gets_its_interim_answer(server):
    port = int(server.rsplit(":", 1)[1])
    body = json.dumps({"texts": ["A fine film."], "model": "none-such"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"  # curl waits for this before the body
        sock.sendall(body)
        answer = _answer_to(sock, 30)
    assert answer.startswith(b"HTTP/1.1 404") and b"none-such" in answer


def _send_and_read(port: int, raw: bytes, wait: float = 10) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(raw)
        return _answer_to(sock, wait)
    finally:
        sock.close()


HOPELESS = {  # requests that can never be whole: each is answered from the worker's loop and dropped
    "negative chunk size": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\nabcdef\r\n",
        b"HTTP/1.1 400",
    ),
    "chunk size with a sign": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
        b"HTTP/1.1 400",
    ),
    "headers past 64 KiB, no end": (b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * (70 << 10), b"HTTP/1.1 431"),
    "chunks past the body limit": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % (2 << 20)
        + b"a" * 1000,
        b"HTTP/1.1 413",
    ),
}


@pytest.mark.parametrize("case", sorted(HOPELESS))
def test_a_hopeless_request_is_answered_from_the_loop_and_health_stays_up(server, case):
    """One packet once spun a worker's loop forever (a negative chunk size); eight such clients at once must leave
    `/health` answering within 2 s, and each gets its error and a closed connection at once."""
    port = int(server.rsplit(":", 1)[1])
    raw, status = HOPELESS[case]
    socks = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(raw)
            socks.append(sock)
        started = time.monotonic()
        assert requests.get(server + "/health", timeout=2).status_code == 200
        assert time.monotonic() - started < 2
        answers = [_answer_to(sock, 5) for sock in socks]
        assert all(a.startswith(status) and not a.endswith(b"<still open>") for a in answers), {a[:40] for a in answers}
    finally:
        for sock in socks:
            sock.close()


def test_the_framing_of_any_byte_stream_ends_in_bounded_time():
    """In process, seeded: valid chunked requests cut at every point are whole only at their end; random chunk
    sizes (signs, spaces, junk) either wait, finish or are hopeless, and never loop."""
    import random

    from apps.read_ahead import Framing, Hopeless

    framing = Framing(1 << 20)
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    whole = head + b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    assert [framing.state(whole[:i])[0] for i in range(len(head), len(whole) + 1)] == [False] * (
        len(whole) - len(head)
    ) + [True]
    rng = random.Random(7)
    alphabet = b"0123456789abcdefABCDEF-+ ;\r\nxyz"
    started = time.monotonic()
    for _ in range(3000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        try:
            framing.state(head + body)
        except Hopeless as exc:
            assert exc.status in (400, 413)
    assert time.monotonic() - started < 5
