"""The HTTP front (issues #22 and #32), against a live `python -m apps.mlflask` with two workers: stalled,
malformed, pipelined and never-reading clients, and fuzzed byte streams, leave `/health` answering within 2 s."""

import json
import re
import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.services import start_mlflask, stop_process

STALLED = 500
CLIENT_TIMEOUT = 6


FUZZ_TIMEOUT = 1


def _served_with_timeout(serving_runs, folder, client_timeout: float):
    """`python -m apps.mlflask`, two workers, with this client timeout; yields its URL."""
    env = {**serving_runs["env"], "MLFLASK_CLIENT_TIMEOUT": str(client_timeout)}
    url, process, _, _ = start_mlflask(folder, env, workers=2)
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def server(serving_runs, tmp_path_factory):
    yield from _served_with_timeout(serving_runs, tmp_path_factory.mktemp("slow"), CLIENT_TIMEOUT)


@pytest.fixture(scope="module")
def fuzz_server(serving_runs, tmp_path_factory):
    yield from _served_with_timeout(serving_runs, tmp_path_factory.mktemp("fuzz"), FUZZ_TIMEOUT)


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


POST = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
MALFORMED = {  # each is refused (a 4xx from gunicorn's parser or the body reader) and its connection closed
    "negative chunk size": POST + b"Transfer-Encoding: chunked\r\n\r\n-6\r\nabcdef\r\n",
    "chunk size with a sign": POST + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
    "a header past the field limit": b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * (70 << 10),
    "a chunked body past the body limit": POST
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % (3 << 20)
    + b"a" * ((1 << 20) + 4096),
    "a declared length past the body limit": POST + b"Content-Length: 9999999999\r\n\r\n{",
    "length and chunked at once": POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "a request line that is no request line": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
    "a NUL in a header": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_are_refused_and_health_stays_up(server, case):
    """One packet once spun a worker's loop forever (a negative chunk size); eight such clients at once must leave
    `/health` answering within 2 s, and each gets a 4xx and a closed connection."""
    port = int(server.rsplit(":", 1)[1])
    socks = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                sock.sendall(MALFORMED[case])
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before it was all sent: the answer is still there to read
            socks.append(sock)
        started = time.monotonic()
        assert requests.get(server + "/health", timeout=2).status_code == 200
        assert time.monotonic() - started < 2
        answers = [_answer_to(sock, 5) for sock in socks]
        assert all(a[:10] == b"HTTP/1.1 4" and not a.endswith(b"<still open>") for a in answers), {
            a[:40] for a in answers
        }
    finally:
        for sock in socks:
            sock.close()


def test_pipelined_requests_are_answered_in_order(server):
    port = int(server.rsplit(":", 1)[1])
    body = json.dumps({"texts": ["A fine film."], "model": "none-such"}).encode()
    predict = POST + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    packet = (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        + predict
        + b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer = _send_and_read(port, packet)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"404"], answer
    assert b"none-such" in answer and not answer.endswith(b"<still open>")


def test_clients_that_never_read_their_answers_hold_no_thread(server):
    """Eight clients each pipeline 300 requests for the OpenAPI spec and read nothing: the answers fill their
    sockets, and `/health` (and a prediction, which needs a thread) still answer within 2 s."""
    port = int(server.rsplit(":", 1)[1])
    packet = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 300
    socks = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(packet)
            socks.append(sock)
        time.sleep(1)
        for path in ("/health", "/openapi.json"):
            started = time.monotonic()
            assert requests.get(server + path, timeout=2).status_code == 200
            assert time.monotonic() - started < 2
    finally:
        for sock in socks:
            sock.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    stream=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    b"POST /predict HTTP/1.1\r\n",
                    b"GET /health HTTP/1.1\r\n",
                    b"Host: 127.0.0.1\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"Content-Length: 5\r\n",
                    b"Content-Length: -1\r\n",
                    b"Expect: 100-continue\r\n",
                    b"\r\n",
                    b"5\r\nhello\r\n",
                    b"0\r\n\r\n",
                    b"-6\r\n",
                    b"ffffffffffffffff\r\n",
                    b'{"texts": ["x"]}',
                ]
            ),
            st.binary(max_size=40),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4),
)
def test_any_byte_stream_split_anywhere_ends_in_bounded_time(fuzz_server, stream, cuts):
    """Hypothesis: pieces of valid requests and junk, sent in fragments cut at arbitrary points, get answered or
    closed by the client timeout, and `/health` answers after each."""
    data = b"".join(stream)
    port = int(fuzz_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = 0
        try:
            for cut in sorted(c for c in cuts if c < len(data)) + [len(data)]:
                sock.sendall(data[start:cut])
                start = cut
            sock.shutdown(socket.SHUT_WR)  # then read what comes: the server must finish or close
        except OSError:
            pass  # refused mid-stream
        answer = _answer_to(sock, FUZZ_TIMEOUT + 3)
    assert not answer.endswith(b"<still open>")
    assert requests.get(fuzz_server + "/health", timeout=2).status_code == 200
