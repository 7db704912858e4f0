"""``manage.py cachewise invalidate``: what an operator runs after a write cachewise cannot see."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from cachewise import Namespace, get_or_compute, make_key
from cachewise.embedded import EmbeddedRedis
from cachewise.testing import isolated_caches
from tests.testapp.models import Article, Author, Category


def _run(*args: str) -> str:
    out = StringIO()
    call_command("cachewise", "invalidate", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_model_makes_a_raw_sql_write_visible() -> None:
    author, category = Author.objects.create(name="Ann"), Category.objects.create(name="News")
    article = Article.objects.create(title="Old", author=author, category=category)
    assert Article.cached.get(article.pk)["title"] == "Old"  # type: ignore[index]
    with connection.cursor() as cursor:  # a write no signal sees
        cursor.execute(f"UPDATE {Article._meta.db_table} SET title = %s WHERE id = %s", ["New", article.pk])
    assert Article.cached.get(article.pk)["title"] == "Old"  # type: ignore[index]

    output = _run("--model", "testapp.Article")

    assert "testapp.Article" in output
    assert Article.cached.get(article.pk)["title"] == "New"  # type: ignore[index]


def test_key_is_recomputed_on_the_next_read() -> None:
    key = make_key("report", 1)
    assert get_or_compute(key, lambda: "first", 60) == "first"
    _run("--key", key)
    assert get_or_compute(key, lambda: "second", 60) == "second"


def test_namespace_scope_bump_makes_old_keys_unreachable() -> None:
    category = Namespace("category")
    before = category.key(7, "articles")
    output = _run("--namespace", "category", "--scope", "7")
    assert category.key(7, "articles") != before
    assert f"v{category.version(7)}" in output


def test_a_string_scope_of_digits_needs_scope_type_str() -> None:
    tags = Namespace("tag")
    before_int, before_str = tags.key(7), tags.key("7")
    _run("--namespace", "tag", "--scope", "7", "--scope-type", "str")
    assert tags.key(7) == before_int
    assert tags.key("7") != before_str


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to invalidate"),
        (("--scope", "7"), "--scope needs --namespace"),
        (("--namespace", "category"), "needs at least one --scope"),
        (("--model", "testapp.Nope"), "expected app_label.ModelName"),
    ],
)
def test_bad_arguments_say_what_to_give(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run(*args)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_cache_is_an_error_never_a_silent_success(
    disposable_redis: EmbeddedRedis, redis_server: Any
) -> None:
    from cachewise.testing import RedisServerInfo

    dead = RedisServerInfo(disposable_redis.host, disposable_redis.port, 0, disposable_redis.url)
    with isolated_caches(dead):
        disposable_redis.kill()
        with override_settings(CACHEWISE_ORM_CACHE="default"):
            with pytest.raises(CommandError, match=r"could not invalidate model testapp\.Article"):
                _run("--model", "testapp.Article")
            with pytest.raises(CommandError, match="could not invalidate key"):
                _run("--key", make_key("report", 1))
        disposable_redis.restart()
