"""The demo's processes: a private Redis (unless ``REDIS_URL``), Django in this process, Gunicorn.

Everything listens on 127.0.0.1 only. Every process started here is stopped on the way out,
including on Ctrl-C and on an error; a server the user gave us in ``REDIS_URL`` is never stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cachewise.embedded import EmbeddedRedis, free_port

__all__ = ["DemoError", "Served", "Stack", "gunicorn", "start_stack", "wait_until_serving"]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Configured as the production checklist asks for one server holding a cache and counters: a
#: memory cap, and evicting least-recently-used keys *with a TTL* when it is reached (cache entries
#: have one; the article views counter has none, so its pending increments are never evicted:
#: cachewise.E030 refuses allkeys-* for counters).
#: Gunicorn's shape for the load runs: threads so that a burst of requests really is concurrent.
WORKERS, THREADS = 2, 8
EMBEDDED_REDIS_ARGS = ("--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru")


class DemoError(Exception):
    """The demo cannot go on (a server did not start, a check failed); the message says why."""


@dataclass
class Stack:
    """What the demo runs against: the Redis URL, and the server when the demo started it."""

    redis_url: str
    redis: EmbeddedRedis | None
    prefix: str

    @property
    def embedded(self) -> bool:
        """True when the demo started Redis itself (so it may stop it for the outage scenario)."""
        return self.redis is not None


@contextlib.contextmanager
def start_stack(sqlite_path: str | None = None) -> Iterator[Stack]:
    """Start Redis unless ``REDIS_URL`` is set, export the demo's settings, set up Django."""
    user_url = os.environ.get("REDIS_URL", "").strip()
    redis = None if user_url else EmbeddedRedis(extra_args=EMBEDDED_REDIS_ARGS).start()
    try:
        url = user_url or (redis.url if redis else "")
        # A key prefix of this run's own: the cached variants start cold, and a shared server
        # never mixes this run's keys with another's.
        prefix = f"cwdemo-{secrets.token_hex(3)}"
        os.environ["CACHEWISE_DEMO_REDIS_URL"] = url
        os.environ["CACHEWISE_DEMO_PREFIX"] = prefix
        os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
        if sqlite_path:
            os.environ["CACHEWISE_DEMO_SQLITE"] = sqlite_path
        import django

        django.setup()
        yield Stack(redis_url=url, redis=redis, prefix=prefix)
    finally:
        _flush_metrics()
        if redis is not None:
            redis.stop()


def _flush_metrics() -> None:
    """Send this process's cachewise counters to Redis while it still runs (not at exit)."""
    try:
        from cachewise.monitoring.aggregate import flush
    except ImportError:
        return
    with contextlib.suppress(Exception):
        flush()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _get_status(host: str, port: int, path: str) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_serving(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until the server answers a page, or raise DemoError saying what went wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"gunicorn exited with status {process.returncode} before serving")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _get_status("127.0.0.1", port, "/plain/") == 200:
                return
        time.sleep(0.1)
    raise DemoError(f"gunicorn did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass
class Served:
    """A running Gunicorn: its base URL, and the file its output goes to (read it after the run)."""

    base_url: str
    log_path: Path

    def log(self) -> str:
        """Everything Gunicorn and its workers printed (warnings and errors only)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def gunicorn(log_path: Path, *, workers: int = WORKERS, threads: int = THREADS) -> Iterator[Served]:
    """Serve the demo with Gunicorn on a free loopback port; stop it on the way out.

    Its output goes to ``log_path`` rather than the terminal, where it would tear the progress
    bars; the report shows what the workers logged.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "demo.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--log-level", "warning",
        "--timeout", "60",
        "--graceful-timeout", "5",
    ]  # fmt: skip
    # This checkout's src/ first: the workers run the code being demonstrated, not another install.
    path = [str(REPO_ROOT / "src"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    # A session of its own: Ctrl-C reaches only the demo, which then stops Gunicorn gracefully
    # (its workers flush their counters to Redis before Redis is stopped).
    served = Served(f"http://127.0.0.1:{port}", log_path)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            start_new_session=True,
        )
    try:
        try:
            wait_until_serving(port, process)
        except DemoError as exc:
            raise DemoError(f"{exc}; its output:\n{served.log()[-3000:]}") from exc
        yield served
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
