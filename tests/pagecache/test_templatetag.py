"""{% load cachewise %}{% cache %}: Django's syntax, keys with data versions, single flight, fail open."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.template import Context, Template, TemplateSyntaxError, engines
from django.test import override_settings
from django.utils import translation

from cachewise.caches_url import caches_from_url
from cachewise.compute.namespace import Namespace
from cachewise.embedded import EmbeddedRedis
from cachewise.monitoring.metrics import metrics
from cachewise.pagecache.fragments import DependsOnError
from tests.testapp.models import Article, Author


class Ticker:
    """A context callable counting how often the block body really rendered."""

    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> int:
        time.sleep(self.delay)
        with self._lock:
            self.count += 1
            return self.count


def render(source: str, **context: Any) -> str:
    return Template("{% load cachewise %}" + source).render(Context(context))


def test_django_syntax_caches_the_block() -> None:
    tick = Ticker()
    source = "{% cache 60 sidebar %}n={{ tick }}{% endcache %}"
    assert render(source, tick=tick) == "n=1"
    assert render(source, tick=tick) == "n=1"
    assert tick.count == 1


def test_quoted_name_none_timeout_and_using() -> None:
    tick = Ticker()
    source = '{% cache None "side" using="sessions" %}n={{ tick }}{% endcache %}'
    assert render(source, tick=tick) == render(source, tick=tick) == "n=1"


def test_vary_on_values_are_part_of_the_key() -> None:
    tick = Ticker()
    source = "{% cache 60 box user_id page %}{{ user_id }}:{{ page }}:{{ tick }}{% endcache %}"
    assert render(source, tick=tick, user_id=1, page=1) == "1:1:1"
    assert render(source, tick=tick, user_id=2, page=1) == "2:1:2"
    assert render(source, tick=tick, user_id=1, page=1) == "1:1:1"


def test_language_is_part_of_the_key() -> None:
    tick = Ticker()
    source = "{% cache 60 box %}{{ tick }}{% endcache %}"
    with translation.override("en"):
        assert render(source, tick=tick) == "1"
    with translation.override("fr"):
        assert render(source, tick=tick) == "2"


def test_template_is_part_of_the_key(settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "a.html": "{% load cachewise %}{% cache 60 box %}a{{ tick }}{% endcache %}",
                            "b.html": "{% load cachewise %}{% cache 60 box %}b{{ tick }}{% endcache %}",
                        },
                    )
                ]
            },
        }
    ]
    tick = Ticker()
    engine = engines["django"]
    assert engine.get_template("a.html").render({"tick": tick}) == "a1"
    assert engine.get_template("b.html").render({"tick": tick}) == "b2"
    assert engine.get_template("a.html").render({"tick": tick}) == "a1"


@pytest.mark.django_db
def test_editing_a_depends_on_instance_shows_on_the_next_request() -> None:
    author = Author.objects.create(name="Ann")
    article = Article.objects.create(title="First", author=author)
    source = "{% cache 600 article_body depends_on=article %}{{ article.title }}{% endcache %}"
    assert render(source, article=Article.objects.get(pk=article.pk)) == "First"
    assert render(source, article=Article.objects.get(pk=article.pk)) == "First"
    article.title = "Edited"
    article.save()
    assert render(source, article=Article.objects.get(pk=article.pk)) == "Edited"


@pytest.mark.django_db
def test_a_stale_name_only_fragment_would_not_change() -> None:
    # The trap of keys named by name only, shown against the same data: name-only keys stay stale.
    author = Author.objects.create(name="Ann")
    article = Article.objects.create(title="First", author=author)
    source = "{% cache 600 name_only %}{{ article.title }}{% endcache %}"
    assert render(source, article=article) == "First"
    Article.objects.filter(pk=article.pk).update(title="Edited")
    assert render(source, article=Article.objects.get(pk=article.pk)) == "First"


@pytest.mark.django_db(transaction=True)
def test_model_without_updated_at_uses_the_orm_row_version() -> None:
    author = Author.objects.create(name="Ann")
    source = "{% cache 600 byline depends_on=author %}{{ author.name }}{% endcache %}"
    assert render(source, author=Author.objects.get(pk=author.pk)) == "Ann"
    assert render(source, author=Author.objects.get(pk=author.pk)) == "Ann"
    author.name = "Bea"
    author.save()  # committed (autocommit): the ORM layer bumps the row's version
    assert render(source, author=Author.objects.get(pk=author.pk)) == "Bea"


def test_namespace_scope_and_bare_namespace() -> None:
    tick = Ticker()
    ns = Namespace("sidebar")
    scoped = "{% cache 600 cat depends_on=ns|scope:7 %}{{ tick }}{% endcache %}"
    bare = "{% cache 600 all depends_on=ns %}{{ tick }}{% endcache %}"
    assert render(scoped, ns=ns, tick=tick) == "1"
    assert render(bare, ns=ns, tick=tick) == "2"
    assert render(scoped, ns=ns, tick=tick) == "1"
    ns.bump(7)
    assert render(scoped, ns=ns, tick=tick) == "3"
    assert render(bare, ns=ns, tick=tick) == "2"
    ns.bump(None)
    assert render(bare, ns=ns, tick=tick) == "4"


def test_pair_and_list_of_dependencies() -> None:
    tick = Ticker()
    ns = Namespace("tags")
    source = "{% cache 600 many depends_on=deps %}{{ tick }}{% endcache %}"
    deps = [(ns, "a"), 3]
    assert render(source, deps=deps, tick=tick) == "1"
    assert render(source, deps=deps, tick=tick) == "1"
    ns.bump("a")
    assert render(source, deps=deps, tick=tick) == "2"
    assert render(source, deps=[(ns, "a"), 4], tick=tick) == "3"


def test_depends_on_that_resolves_to_nothing_raises() -> None:
    with pytest.raises(DependsOnError, match="resolved to nothing"):
        render("{% cache 60 x depends_on=typo %}x{% endcache %}")


def test_syntax_errors() -> None:
    with pytest.raises(TemplateSyntaxError):
        render("{% cache 60 %}x{% endcache %}")
    with pytest.raises(TemplateSyntaxError):
        render("{% cache 'soon' x %}x{% endcache %}")


def test_template_errors_inside_the_block_propagate() -> None:
    with pytest.raises(TemplateSyntaxError):
        render("{% cache 60 x %}{% if %}{% endif %}{% endcache %}")


def test_ten_threads_render_a_cold_fragment_once() -> None:
    tick = Ticker(delay=0.2)
    source = "{% cache 60 slow %}{{ tick }}{% endcache %}"
    results: list[str] = []
    barrier = threading.Barrier(10)

    def worker() -> None:
        barrier.wait(timeout=10)
        results.append(render(source, tick=tick))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == ["1"] * 10
    assert tick.count == 1


def test_cache_down_renders_uncached(disposable_redis: EmbeddedRedis) -> None:
    config = caches_from_url(disposable_redis.url, key_prefix="dead")
    disposable_redis.kill()
    tick = Ticker()
    ns = Namespace("down")
    with override_settings(CACHES=config):
        try:
            before = metrics.snapshot().get(("bypass:cache-unavailable", "default", "fragment"), 0.0)
            started = time.monotonic()
            first = render("{% cache 60 x depends_on=ns %}{{ tick }}{% endcache %}", tick=tick, ns=ns)
            second = render("{% cache 60 y %}{{ tick }}{% endcache %}", tick=tick)
            elapsed = time.monotonic() - started
            after = metrics.snapshot().get(("bypass:cache-unavailable", "default", "fragment"), 0.0)
        finally:
            for alias in ("default", "sessions"):
                caches[alias].close()
    assert (first, second) == ("1", "2")
    assert elapsed < 3.0
    assert after - before == 2
