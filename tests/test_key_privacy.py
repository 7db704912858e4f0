"""No personal data in key names: fragment vary values and @cached arguments are hashed.

Checked where an operator would look: the key names in Redis (SCAN) and ``cachewise bigkeys``.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from django.core.cache import caches
from django.core.management import call_command
from django.template import Context, Template
from django.test import override_settings

from cachewise import cached

EMAIL = "alice@example.com"
QUERY = "private medical query"
SECRETS = ("alice", "example", "medical", "private")


@cached(ttl=60)
def search_results(user_email: str, query: str) -> list[str]:
    return [f"result for {len(query)} chars"]


def render_fragment(email: str) -> str:
    source = "{% load cachewise %}{% cache 60 'profile_box' email query %}box for {{ email }}{% endcache %}"
    return Template(source).render(Context({"email": email, "query": QUERY}))


def key_names(redis_client: Any) -> list[str]:
    prefix = caches["default"].key_prefix
    return [key.decode() for key in redis_client.scan_iter(match=f"{prefix}:*")]


def bigkeys_output() -> str:
    as_json, table = StringIO(), StringIO()
    call_command("cachewise", "bigkeys", "--json", "--top", "50", stdout=as_json)
    call_command("cachewise", "bigkeys", "--top", "50", stdout=table)
    listed = [entry["key"] for entry in json.loads(as_json.getvalue())["keys"]]
    return "\n".join(listed) + "\n" + table.getvalue()


def test_argument_values_never_appear_in_key_names_or_bigkeys(redis_client: Any) -> None:
    assert search_results(EMAIL, QUERY) == ["result for 21 chars"]
    assert render_fragment(EMAIL) == f"box for {EMAIL}"
    names = key_names(redis_client)
    assert any(
        name.split(":", 2)[-1].startswith("tests.test_key_privacy.search_results:v1:#") for name in names
    )
    assert any(":fragment:v1:#" in name for name in names), names
    report = bigkeys_output()
    assert "search_results" in report  # namespaces stay readable
    assert "fragment" in report
    for secret in SECRETS:
        assert not any(secret in name.lower() for name in names), (secret, names)
        assert secret not in report.lower(), secret
    # Hashed keys still hit: the same call and the same fragment come back from the cache.
    assert render_fragment(EMAIL) == f"box for {EMAIL}"
    assert len(key_names(redis_client)) == len(names)


def test_readable_keys_is_an_explicit_debugging_option(redis_client: Any) -> None:
    with override_settings(CACHEWISE_READABLE_KEYS=True):
        search_results(EMAIL, QUERY)
        render_fragment(EMAIL)
    names = key_names(redis_client)
    assert any("alice%40example.com" in name for name in names), names
    assert sum("private%20medical%20query" in name for name in names) >= 2  # @cached and the fragment
