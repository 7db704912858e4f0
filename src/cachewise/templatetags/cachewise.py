"""``{% load cachewise %}{% cache %}``: Django's fragment cache tag, keyed by data versions.

Same syntax as Django's tag, plus ``depends_on=`` (repeatable)::

    {% cache 300 "sidebar_popular" request.LANGUAGE_CODE depends_on=article using="default" %}
        ...
    {% endcache %}
    {% cache 600 category_list depends_on=category_ns|scope:category.pk %}...{% endcache %}

The key also holds the template the tag is in and the active language (see
:mod:`cachewise.pagecache.fragments`). A fill is single-flight (one render per expiry); if the cache is
unreachable the fragment is rendered uncached.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.template.base import FilterExpression, NodeList, Parser, Token
from django.utils.safestring import SafeString, mark_safe

from cachewise.compute.api import NoStore, get_or_compute
from cachewise.compute.namespace import Namespace
from cachewise.exceptions import OUTAGE_ERRORS
from cachewise.monitoring.metrics import record
from cachewise.pagecache.fragments import (
    NAMESPACE,
    Check,
    ScopedNamespace,
    fragment_key,
    resolve,
)
from cachewise.pagecache.outage import unwatch, watch
from cachewise.pagecache.serve import log_failure
from cachewise.pagecache.tracking import note as note_page_dependencies

register = template.Library()

__all__ = ["CacheNode", "do_cache", "register", "scope"]


class CacheNode(template.Node):
    """The parsed ``{% cache %}`` block."""

    def __init__(
        self,
        nodelist: NodeList,
        expire_time: FilterExpression,
        fragment_name: str,
        vary_on: list[FilterExpression],
        depends_on: list[FilterExpression],
        using: FilterExpression | None,
    ) -> None:
        self.nodelist = nodelist
        self.expire_time = expire_time
        self.fragment_name = fragment_name
        self.vary_on = vary_on
        self.depends_on = depends_on
        self.using = using

    def _timeout(self, context: template.Context, alias: str) -> float | None:
        value = self.expire_time.resolve(context)
        if value is None:
            default: float | None = caches[alias].default_timeout
            return default
        try:
            return int(value)
        except (ValueError, TypeError) as exc:
            raise template.TemplateSyntaxError(
                f'"cache" tag got a non-integer timeout value: {value!r}'
            ) from exc

    def _template_name(self) -> str | None:
        origin = getattr(self, "origin", None)
        return getattr(origin, "template_name", None) or getattr(origin, "name", None)

    def _key(self, context: template.Context) -> tuple[str, list[Check]]:
        depends = [expr.resolve(context, ignore_failures=True) for expr in self.depends_on]
        # A cached page around this fragment depends on what the fragment depends on, with the
        # versions read before the fragment reads its own (docs/views.md, "Fragments").
        note_page_dependencies(depends)
        vary = [expr.resolve(context) for expr in self.vary_on]
        versions, checks = resolve(depends)
        return fragment_key(self._template_name(), self.fragment_name, vary, versions), checks

    def render(self, context: template.Context) -> SafeString:
        alias = str(self.using.resolve(context)) if self.using is not None else DEFAULT_CACHE_ALIAS
        timeout = self._timeout(context, alias)
        if timeout is not None and timeout <= 0:
            return mark_safe(self.nodelist.render(context))
        failed: list[BaseException] = []
        checks: list[Check] = []

        def compute() -> str | NoStore[str]:
            try:
                html = str(self.nodelist.render(context))
            except BaseException as exc:
                failed.append(exc)  # the template's own error: never retried, never swallowed
                raise
            # The versions were read before; the data may have been loaded before them.
            if all(check() for check in checks):
                return html
            record("bypass:depends-on-changed", alias, NAMESPACE)
            return NoStore(html)

        outage, token = watch()
        try:
            key, found = self._key(context)
            checks.extend(found)
            html: str = get_or_compute(key, compute, timeout, stampede="lock", alias=alias)
            if outage.seen:  # the fill failed open: rendered, not stored
                record("bypass:cache-unavailable", alias, NAMESPACE)
            return mark_safe(html)
        except OUTAGE_ERRORS as exc:  # fail open; a server error (WRONGTYPE, OOM) propagates
            if failed:
                raise
            log_failure(alias, exc)
            record("bypass:cache-unavailable", alias, NAMESPACE)
            return mark_safe(self.nodelist.render(context))
        finally:
            unwatch(token)


def _split_options(parser: Parser, bits: list[str]) -> tuple[list[str], list[FilterExpression], Any]:
    rest: list[str] = []
    depends_on: list[FilterExpression] = []
    using: FilterExpression | None = None
    for bit in bits:
        if bit.startswith("depends_on="):
            depends_on.append(parser.compile_filter(bit[len("depends_on=") :]))
        elif bit.startswith("using="):
            using = parser.compile_filter(bit[len("using=") :])
        else:
            rest.append(bit)
    return rest, depends_on, using


@register.tag("cache")
def do_cache(parser: Parser, token: Token) -> CacheNode:
    """``{% cache timeout name [vary_on ...] [depends_on=obj ...] [using="alias"] %}...{% endcache %}``."""
    nodelist = parser.parse(("endcache",))
    parser.delete_first_token()
    bits = token.split_contents()
    rest, depends_on, using = _split_options(parser, bits[1:])
    if len(rest) < 2:
        raise template.TemplateSyntaxError(f"'{bits[0]}' tag requires at least 2 arguments.")
    name = rest[1]
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    vary_on = [parser.compile_filter(bit) for bit in rest[2:]]
    return CacheNode(nodelist, parser.compile_filter(rest[0]), name, vary_on, depends_on, using)


@register.filter
def scope(namespace: Namespace, value: Any) -> ScopedNamespace:
    """``depends_on=category_ns|scope:category.pk``: depend on one scope of a Namespace."""
    if not isinstance(namespace, Namespace):
        raise template.TemplateSyntaxError(f"'scope' filter needs a cachewise Namespace, got {namespace!r}")
    return ScopedNamespace(namespace, value)
