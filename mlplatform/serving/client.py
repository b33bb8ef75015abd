"""The one HTTP client for MLFlask, used by jobs 4-5, MLDash and the tests.

Timeouts on every call, retries on connection errors for idempotent calls only, and typed errors.
"""

from __future__ import annotations

import time

import requests

from mlplatform.errors import PlatformError
from mlplatform.settings import Settings


class MLFlaskError(PlatformError):
    """MLFlask answered with an error; `status` is the HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"MLFlask {status}: {message}")
        self.status = status
        self.message = message


class MLFlaskUnavailable(MLFlaskError):
    def __init__(self, url: str, reason: str):
        super().__init__(0, f"unreachable at {url} ({reason})")


class Unauthorized(MLFlaskError):
    pass


class NotFound(MLFlaskError):
    pass


class Conflict(MLFlaskError):
    pass


_BY_STATUS = {401: Unauthorized, 404: NotFound, 409: Conflict}


class MLFlaskClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        deploy_timeout: float = 600.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._deploy_timeout = deploy_timeout
        self._retries = retries
        self._session = requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> MLFlaskClient:
        return cls(settings.mlflask_url, settings.mlflask_token, **kwargs)

    def _request(self, method: str, path: str, idempotent: bool, timeout: float | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        attempts = self._retries if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._session.request(
                    method, self.base_url + path, headers=headers, timeout=timeout or self._timeout, **kwargs
                )
                break
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == attempts:
                    raise MLFlaskUnavailable(self.base_url, type(exc).__name__) from None
                time.sleep(0.2 * 2**attempt)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text[:200]
            raise _BY_STATUS.get(response.status_code, MLFlaskError)(response.status_code, message)
        return response

    def health(self) -> bool:
        try:
            return self._request("GET", "/health", idempotent=False, timeout=3).ok
        except MLFlaskError:
            return False

    def models(self) -> list[dict]:
        return self._request("GET", "/models", idempotent=True).json()["models"]

    def model(self, name: str) -> dict | None:
        """One deployed model with its registry reference and card; None when `name` is not deployed."""
        try:
            return self._request("GET", f"/models/{requests.utils.quote(name, safe='')}", idempotent=True).json()
        except NotFound:
            return None

    def deploy(
        self, name: str, model_uri: str | None = None, run_id: str | None = None, metric: str | None = None
    ) -> dict:
        """Serve `model_uri` (models:/<name>@<alias> or /<version>), or let MLFlask promote a run or the best one."""
        given = {"model_uri": model_uri, "run_id": run_id, "metric": metric}
        body = {"name": name, **{k: v for k, v in given.items() if v}}
        return self._request("POST", "/models", idempotent=False, timeout=self._deploy_timeout, json=body).json()

    def remove(self, name: str) -> dict:
        return self._request("DELETE", f"/models/{requests.utils.quote(name, safe='')}", idempotent=True).json()

    def predict(self, model: str, texts: list[str]) -> dict:
        return self._request("POST", "/predict", idempotent=True, json={"model": model, "texts": texts}).json()

    def logs(self, limit: int = 200) -> list[dict]:
        return self._request("GET", "/logs", idempotent=True, params={"limit": limit}).json()["logs"]
