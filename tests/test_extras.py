"""Optional packages (pip extras): the core runs without them, and a feature that needs one says
which extra to install. "Not installed" is simulated with a ``None`` entry in ``sys.modules``,
which makes ``import`` fail exactly as for a missing package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cachewise.backends.format import ValueFormat
from cachewise.exceptions import ConfigurationError, MissingExtraError
from cachewise.testing import RedisServerInfo

ROOT = Path(__file__).resolve().parent.parent

_WITHOUT_RICH_AND_PROMETHEUS = textwrap.dedent(
    """
    import io, sys
    sys.modules["rich"] = None
    sys.modules["prometheus_client"] = None
    import django
    django.setup()
    from django.core.cache import caches
    from django.core.checks import run_checks
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import Client, override_settings
    import cachewise
    from cachewise import cached, make_key
    from cachewise.orm import cached_list
    from tests.testapp.models import Article

    caches["default"].set(make_key("extras", 1), "value")
    assert caches["default"].get(make_key("extras", 1)) == "value"

    @cached(ttl=60)
    def answer():
        return 42

    assert answer() == 42
    run_checks()
    out = io.StringIO()
    call_command("cachewise", "ping", stdout=out)
    assert "OK" in out.getvalue(), out.getvalue()
    call_command("cachewise", "stats", "--json", "--pings", "1", stdout=io.StringIO())
    try:
        call_command("cachewise", "stats", "--pings", "1", stdout=io.StringIO())
    except CommandError as exc:
        print("STATS:", exc)
    with override_settings(ROOT_URLCONF="tests.urls_monitoring", CACHEWISE_METRICS_ALLOWED_IPS=["127.0.0.1"]):
        try:
            Client(REMOTE_ADDR="127.0.0.1").get("/cache/metrics/")
        except cachewise.MissingExtraError as exc:
            print("METRICS:", exc)
    assert "rich" not in sys.modules or sys.modules["rich"] is None
    print("CORE OK")
    """
)


def test_core_works_without_rich_and_prometheus_and_features_name_their_extra(
    redis_server: RedisServerInfo,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_cli",
        REDIS_URL=redis_server.url,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    )
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RICH_AND_PROMETHEUS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CORE OK" in result.stdout
    assert (
        "STATS: manage.py cachewise stats and bigkeys needs the 'rich' package, which is not installed"
        in result.stdout
    )
    assert "pip install 'django-cachewise[cli]'" in result.stdout
    assert "METRICS: The Prometheus endpoint (cache/metrics/) needs the 'prometheus-client'" in result.stdout
    assert "pip install 'django-cachewise[prometheus]'" in result.stdout


@pytest.mark.parametrize(
    ("compressor", "hidden", "extra"),
    [("zstd", ("zstandard",), "zstd"), ("lz4", ("lz4", "lz4.frame"), "lz4")],
)
def test_a_missing_compression_library_names_its_own_extra(
    monkeypatch: pytest.MonkeyPatch, compressor: str, hidden: tuple[str, ...], extra: str
) -> None:
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as excinfo:
        ValueFormat(compressor=compressor)
    message = str(excinfo.value)
    assert f"pip install 'django-cachewise[{extra}]'" in message
    assert "msgpack" not in message
    assert isinstance(excinfo.value, ConfigurationError)


def test_a_missing_msgpack_names_the_msgpack_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'django-cachewise\[msgpack\]'"):
        ValueFormat(serializer="msgpack")


def test_an_unimportable_dotted_path_is_not_blamed_on_an_extra() -> None:
    with pytest.raises(ConfigurationError, match="cannot be loaded") as excinfo:
        ValueFormat(compressor="myproject.compressors.Brotli")
    assert "pip install" not in str(excinfo.value)
