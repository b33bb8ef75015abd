"""A gunicorn gthread worker that reads each request whole before a thread takes it.

gunicorn's gthread worker hands a connection to a thread as soon as bytes arrive, and that thread then blocks
on the socket until the body is in. A few hundred clients that send half a request hold every thread, and
`/health` waits behind them. Here the worker's event loop buffers the request (headers, then the body by
Content-Length or chunked framing) without blocking; a thread gets it only once it is complete. A client that
has not sent a whole request within the client timeout gets a 408 and is dropped. A request that can never be
whole (headers past 64 KiB, malformed chunk sizes, chunks past the body limit) is answered from the loop (431, 400,
413) and dropped, never handed to a thread. The thread that serves a request reads and writes with the client
timeout, so a client that stops reading its answer frees the thread too.
"""

from __future__ import annotations

import json
import re
import selectors
import time
from functools import partial

from gunicorn.workers import base
from gunicorn.workers.gthread import TConn, ThreadWorker

MAX_HEADER_BYTES = 64 << 10
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")  # what HTTP allows: hex digits, no sign, no spaces
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def answer(status: int, message: str) -> bytes:
    """A whole HTTP answer with a JSON error, for the event loop to send before it drops the connection."""
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


TIMEOUT_ANSWER = answer(408, "the request was not sent in time")


class Hopeless(Exception):
    """A request that can never be served: the loop answers `status` and drops the connection."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Framing:
    """Where a request being buffered stands: whole, still arriving, or hopeless (the parser will say why)."""

    def __init__(self, max_body: int):
        self.max_body = max_body

    def state(self, data: bytes) -> tuple[bool, bool]:
        """(done, wants_continue): done when a thread can take the request without waiting on the client.
        Raises Hopeless for a request that can never be whole."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEADER_BYTES:
                raise Hopeless(431, f"request headers over {MAX_HEADER_BYTES} bytes")
            return False, False
        headers = _headers(data[:end])
        body = memoryview(data)[end + 4 :]
        if "chunked" in headers.get("transfer-encoding", ""):
            return _chunked_done(body, self.max_body), _expects(headers)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return True, False
        if length <= 0 or length > self.max_body:
            return True, False  # no body, or one the app refuses (413) without reading it
        return len(body) >= length, _expects(headers)


def without_expect(data: bytes) -> bytes:
    """The request without its Expect header, once this worker has sent the 100 Continue itself."""
    end = data.find(b"\r\n\r\n")
    lines = data[:end].split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"expect:")]
    return b"\r\n".join(kept) + data[end:]


def _headers(head: bytes) -> dict[str, str]:
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode("latin-1")] = value.strip().lower().decode("latin-1")
    return fields


def _expects(headers: dict[str, str]) -> bool:
    return headers.get("expect") == "100-continue"


def _chunked_done(body: memoryview, max_body: int) -> bool:
    """Whether the last chunk (and the trailer's blank line) is in. Raises Hopeless for framing that can never
    be served: a chunk-size line that is not hex digits (a sign would move the position back: a loop), or chunks
    past the body limit."""
    pos = 0
    while True:
        line_end = bytes(body[pos : pos + 64]).find(b"\r\n")
        if line_end < 0:
            if len(body) - pos > 64:
                raise Hopeless(400, "a chunk-size line over 64 bytes")
            return False
        field = bytes(body[pos : pos + line_end]).split(b";")[0].strip()
        if not _CHUNK_SIZE.fullmatch(field):
            raise Hopeless(400, "a chunk size that is not hexadecimal")
        size = int(field, 16)
        pos += line_end + 2
        if size == 0:
            rest = bytes(body[pos:])
            return rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        if pos + size > max_body:
            raise Hopeless(413, f"a chunked body over {max_body} bytes")
        pos += size + 2
        if pos > len(body):
            return False


def read_ahead_worker(client_timeout: float, max_body: int) -> type[ThreadWorker]:
    """A gthread worker class that hands threads whole requests only (see the module's docstring)."""

    class ReadAheadWorker(ThreadWorker):
        framing = Framing(max_body)

        def init_process(self):
            self.reading: dict[TConn, float] = {}
            super().init_process()

        def accept(self, listener):
            try:
                client_sock, client_addr = listener.accept()
            except BlockingIOError:
                return
            self.nr_conns += 1
            conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
            self._start_reading(conn)

        def on_client_socket_readable(self, conn, client):
            # a kept-alive connection's next request: buffered like a new one
            self.keepalived_conns.remove(conn)
            self.poller.unregister(client)
            self._start_reading(conn)

        def _start_reading(self, conn: TConn) -> None:
            conn.buffered, conn.continued = bytearray(), False
            conn.sock.setblocking(False)
            self.reading[conn] = time.monotonic() + client_timeout
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, conn))

        def _on_bytes(self, conn: TConn, sock) -> None:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop(conn)
                return
            conn.buffered += data
            try:
                done, wants_continue = self.framing.state(bytes(conn.buffered))
            except Hopeless as exc:
                _send_quietly(sock, answer(exc.status, exc.message))
                self._drop(conn)
                return
            if not done:
                if wants_continue and not conn.continued:
                    conn.continued = True
                    _send_quietly(sock, CONTINUE)
                return
            self.poller.unregister(sock)
            del self.reading[conn]
            conn.data_ready = True
            self.enqueue_req(conn)

        def handle(self, conn):
            buffered = bytes(getattr(conn, "buffered", b""))
            if getattr(conn, "continued", False):
                buffered = without_expect(buffered)  # else gunicorn would send a second 100 Continue
            conn.buffered, conn.continued = bytearray(), False
            if buffered:
                conn.sock.settimeout(client_timeout)  # reads and writes: a client that stops reading frees us
                conn.init()
                conn.parser.unreader.unread(buffered)
            return super().handle(conn)

        def handle_quit(self, sig, frame):
            # gthread shuts its thread pool down inside this signal handler; when the signal lands while this very
            # thread is in tpool.submit (holding the pool's lock), that deadlocks until the master's SIGKILL 30 s
            # later (seen under load with gunicorn 26.2). Exiting is enough: idle pool threads end at exit.
            base.Worker.handle_quit(self, sig, frame)

        def murder_pending(self):
            super().murder_pending()
            now = time.monotonic()
            for conn in [c for c, deadline in self.reading.items() if deadline <= now or not self.alive]:
                _send_quietly(conn.sock, TIMEOUT_ANSWER)
                self._drop(conn)

        def _drop(self, conn: TConn) -> None:
            self.reading.pop(conn, None)
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.nr_conns -= 1
            conn.close()

    return ReadAheadWorker


def _send_quietly(sock, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:
        pass  # the client is gone or not reading; it is being dropped anyway
