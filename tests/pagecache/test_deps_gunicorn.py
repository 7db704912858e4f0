"""Two Gunicorn workers serve cached pages; writes committed by a third process show on the next request.

Gunicorn (2 sync worker processes) serves ``tests.pagedeps_site``: a list and a detail page through
``cache_page`` and through the site-wide middleware (``/site/...``). A writer process commits each
kind of write; then requests go out until *each* worker has answered every page, and every answer
must show the write. A rolled-back write and a write to an unrelated table must leave every page
a hit in both workers. The site uses the test database (SQLite: a copy in a file; PostgreSQL: the
test database itself) and the test's Redis prefix.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tests.testapp.models import Article, Author, Tag

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database(tmp_path: Path) -> str:
    """Where the children find the test's data: the PostgreSQL test database, or a SQLite copy."""
    if connection.vendor == "postgresql":
        parts = urlsplit(os.environ["DATABASE_URL"])
        return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    target = tmp_path / "site.sqlite3"
    connection.ensure_connection()
    with sqlite3.connect(target) as copy:
        connection.connection.backup(copy)
    return str(target)


def _env(database: str, caches: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.pagedeps_site",
        "CW_PD_DATABASE": database,
        "CW_PD_CACHES": json.dumps(caches),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }


def _get(port: int, path: str) -> tuple[str, str, str]:
    """(worker pid, X-Cachewise, body) of one anonymous GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, (path, response.status, body[:200])
        state = response.getheader("X-View-Cache") or response.getheader("X-Cachewise") or ""
        return response.getheader("X-Worker", ""), state, body
    finally:
        conn.close()


@contextlib.contextmanager
def _gunicorn_server(env: dict[str, str]) -> Iterator[int]:
    """One Gunicorn server with one sync worker process; its port."""
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "sync",
        "--log-level", "warning", "--timeout", "30", "--graceful-timeout", "2",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not start"
            with contextlib.suppress(OSError, http.client.HTTPException):
                _get(port, "/authors/")
                break
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[list[int]]:
    """WORKERS worker processes, each behind a port of its own.

    One server per worker, not one server with WORKERS workers: the kernel may hand every
    connection of a quiet machine to the same accepting worker, and the test must reach each.
    """
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(_gunicorn_server(env)) for _ in range(WORKERS)]


class _Writer:
    """The writer process (tests/pagedeps_writer.py): one committed write per call."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.pagedeps_writer"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        return stdout.readline().strip()

    def __call__(self, op: str, pk: int, text: str = "-") -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(f"{op} {pk} {text}\n")
        stdin.flush()
        assert self._line() == "ok"

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process.wait(timeout=10)


def _each_worker(ports: list[int], path: str) -> dict[str, list[tuple[str, str]]]:
    """One answer to ``path`` from every worker, by worker pid."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for port in ports:
        pid, state, body = _get(port, path)
        seen.setdefault(pid, []).append((state, body))
    assert len(seen) == WORKERS, f"expected {WORKERS} worker processes, got {sorted(seen)}"
    return seen


def _all_answers(ports: list[int], paths: list[str], check: Callable[[str, str, str], None]) -> None:
    for path in paths:
        for answers in _each_worker(ports, path).values():
            for state, body in answers:
                check(path, state, body)


@pytest.mark.parametrize("near", [False, True], ids=["redis", "near-cache"])
def test_writes_in_another_process_show_in_every_worker(
    cachewise_caches: dict[str, Any], tmp_path: Path, near: bool
) -> None:
    """With the near cache on, each worker serves its hits (page and versions) from memory, and
    the writer's version bumps reach it only through Redis tracking (docs/near-cache.md)."""
    alice = Author.objects.create(name="Alice")
    first = Article.objects.create(title="First", author=alice)
    first.tags.add(Tag.objects.create(name="news"))
    second = Article.objects.create(title="Second", author=alice)
    caches = dict(cachewise_caches)
    if near:
        default = caches["default"]
        caches["default"] = {**default, "OPTIONS": {**(default.get("OPTIONS") or {}), "near_cache": True}}
    env = _env(_database(tmp_path), caches)
    detail = f"/detail/{first.pk}/"
    lists, details = ["/list/", "/site/list/"], [detail, f"/site{detail}"]
    with _gunicorn(env) as ports:
        writer = _Writer(env)
        try:
            # Warm: every page stored, and a hit in each worker.
            _all_answers(ports, lists + details, lambda *args: None)

            def unchanged(path: str, state: str, body: str) -> None:
                assert state == "hit", (path, state, body)

            _all_answers(ports, lists + details, unchanged)
            snapshot = {path: _get(ports[0], path)[2] for path in lists + details}

            for op, pk, text in (("rollback", first.pk, "Never"), ("unrelated", 1, "-")):
                writer(op, pk, text)
                _all_answers(ports, lists + details, unchanged)
                assert {path: _get(ports[0], path)[2] for path in lists + details} == snapshot

            def shows(expected: str, present: bool = True) -> Callable[[str, str, str], None]:
                def check(path: str, state: str, body: str) -> None:
                    assert (expected in body) is present, (path, state, body)

                return check

            writer("save", first.pk, "Saved")
            _all_answers(ports, lists + details, shows("Saved by Alice [news]"))
            writer("insert", first.pk, "Inserted")
            _all_answers(ports, lists, shows("Inserted by Alice []"))
            writer("m2m", first.pk, "hot")
            _all_answers(ports, lists + details, shows("Saved by Alice [hot,news]"))
            writer("update", first.pk, "Updated")
            _all_answers(ports, lists + details, shows("Updated by Alice [hot,news]"))
            writer("delete", second.pk)
            _all_answers(ports, lists, shows("Second by Alice", present=False))
        finally:
            writer.close()
