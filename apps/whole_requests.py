"""Serve a WSGI app on gunicorn's asyncio (ASGI) worker, handing threads whole requests only.

gunicorn's gthread worker gives a connection to a thread as soon as bytes arrive, and the thread then blocks on
the socket: a few hundred clients that send half a request hold every thread, and `/health` waits behind them.
Here gunicorn's own asyncio worker and parser read the connections (malformed framing, oversized headers and
pipelining are theirs to handle), and `WholeRequests` buffers each body in the event loop, up to `max_body`
bytes and within `client_timeout`, before a thread runs the WSGI app. The answer goes back through the loop, so
a client that never reads it holds no thread either.

gunicorn 26's asyncio worker has three gaps that 27.0.1 closes, and mlflow pins gunicorn below 27, so `Worker`
closes them here: it has no deadline for a request's headers (nor for an idle kept-alive connection), its parser
buffers a header line that never ends without bound, and it drops the requests pipelined behind the first.
A connection that has not sent a request's headers within `client_timeout` of opening or of its last answer gets
a 408, one that sends more than `MAX_HEADER_BYTES` before its headers end gets a 431, and either is closed;
pipelined requests are fed back to the parser, in order.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import gunicorn
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

if gunicorn.version_info[0] != 26:
    raise ImportError(f"apps.whole_requests is written for gunicorn 26.x, found {gunicorn.__version__}")

WORKER = "apps.whole_requests.Worker"
MAX_HEADER_BYTES = 64 << 10


def _closing_answer(status: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


_TIMED_OUT = _closing_answer("408 Request Timeout", "the request was not sent in time")
_HEADERS_TOO_LARGE = _closing_answer("431 Request Header Fields Too Large", f"headers over {MAX_HEADER_BYTES} bytes")
_waiting: dict[tuple, _Deadline] = {}  # this worker's connections by peer, each waiting for headers or busy


class _Deadline(ASGIProtocol):
    """gunicorn's connection, closed with a 408 when no request's headers arrive in time."""

    timeout = 15.0

    def connection_made(self, transport):
        super().connection_made(transport)
        self.peer = tuple(transport.get_extra_info("peername") or ())
        _waiting[self.peer] = self
        self.timer, self.header_bytes = None, None
        self.arm()

    def arm(self):
        self.disarm()
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._refuse, _TIMED_OUT)
        self.header_bytes, self.tail = 0, b""

    def disarm(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.header_bytes = None

    def data_received(self, data):
        if self.header_bytes is not None:  # counted until the blank line that ends the headers
            if (self.tail + data).find(b"\r\n\r\n") == -1:
                self.header_bytes += len(data)
                self.tail = data[-3:]
                if self.header_bytes > MAX_HEADER_BYTES:
                    self._refuse(_HEADERS_TOO_LARGE)
                    return
            else:
                self.header_bytes = None
        super().data_received(data)

    def _refuse(self, answer: bytes):
        self.disarm()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _setup_callback_parser(self):
        super()._setup_callback_parser()
        self._callback_parser = _KeepsPipeline(self._callback_parser, self._feed_callback_parser)

    def connection_lost(self, exc):
        self.disarm()
        _waiting.pop(self.peer, None)
        super().connection_lost(exc)


class _KeepsPipeline:
    """gunicorn's parser, whose reset() between requests feeds back the pipelined bytes it would drop."""

    def __init__(self, parser, feed):
        self._parser, self._feed = parser, feed

    def __getattr__(self, name):
        return getattr(self._parser, name)

    def reset(self):
        pipelined = self._parser.remaining()
        self._parser.reset()
        if pipelined:  # fed once the connection's loop waits for its next request
            asyncio.get_running_loop().call_soon(self._feed, pipelined)


class Worker(gasgi.ASGIWorker):
    """gunicorn's asyncio worker with `_Deadline` connections (MLFLASK_CLIENT_TIMEOUT via `WholeRequests`)."""

    def init_process(self):
        gasgi.ASGIProtocol = _Deadline  # the worker builds its connections by this module-level name
        super().init_process()


class WholeRequests:
    """An ASGI app that runs `wsgi_app` in a pool of `threads` threads once a request's body is all in."""

    def __init__(self, wsgi_app, *, max_body: int, client_timeout: float, threads: int):
        self.wsgi_app, self.max_body, self.client_timeout = wsgi_app, max_body, client_timeout
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")
        _Deadline.timeout = client_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: nothing here speaks them; gunicorn closes the connection
        connection = _waiting.get(tuple(scope.get("client") or ()))
        if connection is not None:
            connection.disarm()  # the headers are in; the body has its own deadline below
        try:
            await self._serve(scope, receive, send)
        finally:
            if connection is not None and not connection.transport.is_closing():
                connection.arm()  # until the next request's headers

    async def _serve(self, scope, receive, send):
        headers = _header_map(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _refuse(send, 413, f"request body too large ({self.max_body} bytes at most)")
            return
        if headers.get(b"expect", b"").lower() == b"100-continue":
            await send({"type": "http.response.informational", "status": 100, "headers": []})
        try:
            body = await asyncio.wait_for(self._body(receive), self.client_timeout)
        except TimeoutError:
            await _refuse(send, 408, "the request was not sent in time")
            return
        except _TooLarge:
            await _refuse(send, 413, f"request body too large ({self.max_body} bytes at most)")
            return
        if body is None:
            return  # the client left
        environ = wsgi_environ(scope, body)
        status, response_headers, chunks = await asyncio.get_running_loop().run_in_executor(
            self.pool, _run_wsgi, self.wsgi_app, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _body(self, receive) -> bytes | None:
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            part = message.get("body", b"")
            size += len(part)
            if size > self.max_body:
                raise _TooLarge
            parts.append(part)
            if not message.get("more_body", False):
                return b"".join(parts)


class _TooLarge(Exception):
    pass


def wsgi_environ(scope: dict, body: bytes) -> dict:
    """PEP 3333's environ for an ASGI HTTP scope whose body has been read whole."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_LENGTH" or key == "TRANSFER_ENCODING":
            continue  # the body is whole: its length is known
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def _run_wsgi(app, environ: dict) -> tuple[int, list, list[bytes]]:
    started: list = []

    def start_response(status: str, headers: list, exc_info=None):
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]

    result = app(environ, start_response)
    try:
        chunks = [bytes(chunk) for chunk in result]
    finally:
        if hasattr(result, "close"):
            result.close()
    status, headers = started
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return int(status.split(" ", 1)[0]), encoded, chunks


def _header_map(headers) -> dict[bytes, bytes]:
    return {name.lower(): value.strip() for name, value in headers}


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
