"""Publish progress and notifications to Herald over HTTP, with Python's standard library only.

A service key (created by a Herald admin with the ``createServiceKey`` mutation) is all it needs:
no Redis, no GraphQL. Every call sends an ``Idempotency-Key`` and keeps it across its own retries
(connection errors, 429 after its Retry-After, 5xx, and a 409 saying the same call is still
running), so a retried call is stored once and answered as the first time.

    publisher = HeraldPublisher.from_env()   # HERALD_URL, HERALD_SERVICE_KEY
    file = publisher.register("file", owner_id="alice", project_id="demo", name="report.pdf")
    publisher.append("file", file["id"], "processing_started", "PROCESSING", progress=0)
    publisher.append("file", file["id"], "processing_completed", "COMPLETED", progress=100)
    publisher.notify({"kind": "USER", "id": "alice"}, "Your report is ready", level="SUCCESS")
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

PATHS = {"file": "/v1/files", "query": "/v1/queries"}


class HeraldError(Exception):
    """Herald refused a request: ``status`` is the HTTP status, ``code`` the contract's error code."""

    def __init__(self, status, code, message, body):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.body = body


class HeraldPublisher:
    """A client of Herald's publish endpoint (``/v1/...``) for one service key."""

    def __init__(self, url, service_key, timeout=10.0, retries=5, backoff=0.5):
        self.url = url.rstrip("/")
        self.service_key = service_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    @classmethod
    def from_env(cls, **options):
        """Reads HERALD_URL (default http://127.0.0.1:4000) and HERALD_SERVICE_KEY."""
        key = os.environ.get("HERALD_SERVICE_KEY")
        if not key:
            raise RuntimeError("HERALD_SERVICE_KEY is not set")
        return cls(os.environ.get("HERALD_URL", "http://127.0.0.1:4000"), key, **options)

    def register(self, kind, owner_id, project_id=None, name=None, resource_id=None, idempotency_key=None):
        """Registers a file or query (``kind``) so its owner and project can watch it; returns its record."""
        body = {"ownerId": owner_id, "projectId": project_id, "name": name}
        if resource_id is not None:
            body["id"] = resource_id
        return self._post(PATHS[kind], body, idempotency_key)

    def append(self, kind, resource_id, event, status, progress=None, message=None, data=None, idempotency_key=None):
        """Appends one update; returns the stored entry (``seq``, ``cursor``, ``update``)."""
        body = {"event": event, "status": status, "progress": progress, "message": message}
        if data is not None:
            body["data"] = data
        path = f"{PATHS[kind]}/{urllib.parse.quote(resource_id, safe='')}/updates"
        return self._post(path, body, idempotency_key)

    def notify(self, target, title, body=None, level=None, data=None, idempotency_key=None):
        """Sends a notification to ``target`` (``{"kind": "USER", "id": "alice"}``); returns it as stored."""
        payload = {"target": target, "title": title, "body": body, "level": level}
        if data is not None:
            payload["data"] = data
        return self._post("/v1/notifications", payload, idempotency_key)

    def _post(self, path, body, idempotency_key):
        key = idempotency_key or str(uuid.uuid4())
        data = json.dumps(body).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.service_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:
                answer = _json_or_none(error.read())
                first = ((answer or {}).get("errors") or [{}])[0]
                extensions = first.get("extensions", {})
                # Retried: too many requests, a server error, or this same call still running elsewhere.
                retryable = (
                    error.code == 429
                    or error.code >= 500
                    or extensions.get("reason") == "IDEMPOTENCY_KEY_IN_PROGRESS"
                )
                if not retryable or attempt == self.retries:
                    raise HeraldError(error.code, extensions.get("code"), first.get("message", error.reason), answer) from None
                time.sleep(float(error.headers.get("Retry-After") or self.backoff * 2**attempt))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


def _json_or_none(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None
