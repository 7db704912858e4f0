"""Edit an article under load: how long until every Gunicorn worker serves the new page?

Client threads keep loading the cached article list and the cached article page (``cache_page``
with automatic data dependencies) while the demo process, a process of its own, saves a new title
for the article. Each answer records which worker sent it (``X-Demo-Worker``) and whether it
shows the new title. Reported: for each worker, the time from the commit's return to its first
answer with the new title, and how many requests *sent after the commit* still got the old page
(the promise is none).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Answer", "EditResult", "edit_under_load"]


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered (seconds into the run), by whom, and what."""

    sent: float
    answered: float
    worker: str
    status: int
    hit: bool
    fresh: bool


@dataclass
class EditResult:
    """All answers and the instant the edit's commit returned (seconds into the run)."""

    committed: float = 0.0
    answers: list[Answer] = field(default_factory=list)

    @property
    def after(self) -> list[Answer]:
        """Answers to requests sent after the commit returned."""
        return [answer for answer in self.answers if answer.sent >= self.committed]

    @property
    def stale_after(self) -> int:
        """Requests sent after the commit that still got the old page (should be 0)."""
        return sum(1 for answer in self.after if not answer.fresh)

    @property
    def workers(self) -> list[str]:
        """Workers that answered during the run."""
        return sorted({answer.worker for answer in self.answers})

    def first_fresh(self) -> dict[str, float | None]:
        """Per worker: seconds from the commit to its first answer showing the edit (None: never)."""
        first: dict[str, float | None] = dict.fromkeys(self.workers)
        for answer in sorted(self.answers, key=lambda a: a.answered):
            if answer.fresh and answer.answered >= self.committed and first[answer.worker] is None:
                first[answer.worker] = answer.answered - self.committed
        return first

    @property
    def every_worker_after(self) -> float | None:
        """Seconds until the last worker served the new page; None if one never did."""
        times = list(self.first_fresh().values())
        return None if not times or any(t is None for t in times) else max(t for t in times if t is not None)


def _get(host: str, port: int, path: str) -> tuple[int, str, bool, str]:
    # A new connection per request: a kept-alive one would stay with the worker that accepted it,
    # and the point is to hear from every worker.
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    hit = response.getheader("X-Demo-Computed", "1") == "0"
    return response.status, response.getheader("X-Demo-Worker", "?"), hit, body


def edit_under_load(
    base_url: str,
    paths: Sequence[str],
    edit: Callable[[], str],
    *,
    threads: int = 4,
    before: float = 1.0,
    after: float = 2.0,
) -> EditResult:
    """Load ``paths`` for ``before`` seconds, call ``edit()`` (returns the new text), load ``after`` more."""
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the demo only loads loopback servers, got {base_url!r}")
    result = EditResult(committed=float("inf"))
    marker: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    origin = time.perf_counter()

    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    def client(offset: int) -> None:
        index = offset
        while not stop.is_set():
            path = paths[index % len(paths)]
            index += 1
            sent = time.perf_counter() - origin
            try:
                status, worker, hit, body = _get(host, port, path)
            except (OSError, http.client.HTTPException):
                status, worker, hit, body = 0, "?", False, ""
            fresh = bool(marker) and marker[0] in body
            with lock:
                result.answers.append(Answer(sent, time.perf_counter() - origin, worker, status, hit, fresh))

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(before)
    text = edit()
    marker.append(text)  # set before the commit's time: no answer is judged against nothing
    result.committed = time.perf_counter() - origin
    time.sleep(after)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    # Answers sent before the commit are judged too (a page rendered after it may show the edit).
    return result
