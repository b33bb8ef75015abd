"""HTTP basic auth for MLDash, checked before anything else reads the request.

dash-auth read callback bodies before the login, answered a malformed `Authorization` header with a 500 and
compared passwords with `==`. This checks the header first, in constant time, and any malformed header is a 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Flask, Response, request

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="MLDash", charset="UTF-8"'}


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def _matches(given: tuple[str, str], logins: dict[str, str]) -> bool:
    user, password = given
    ok = False
    for known_user, known_password in logins.items():  # every login compared: the time tells nothing
        same_user = hmac.compare_digest(user.encode(), known_user.encode())
        same_password = hmac.compare_digest(password.encode(), known_password.encode())
        ok |= same_user and same_password
    return ok


def require_login(server: Flask, logins: dict[str, str], public: tuple[str, ...]) -> None:
    """Every route but `public` needs one of `logins`; registered first, so it runs before any other hook."""

    def _check():
        if request.path in public:
            return None
        given = _credentials(request.headers.get("Authorization", ""))
        if given is None or not _matches(given, logins):
            return Response("Login required\n", 401, _CHALLENGE, mimetype="text/plain")
        return None

    server.before_request_funcs.setdefault(None, []).insert(0, _check)
