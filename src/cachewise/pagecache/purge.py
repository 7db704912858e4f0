"""Purge cached pages by URL: every variant of a path, or a whole subtree, without any scan.

Every cached page is stamped with the URL counters of its path (see
:mod:`cachewise.pagecache.stamp`), so purging is bumping counters, O(1) whatever the number of
variants (hosts, languages, time zones, query strings, Vary values) or pages in a subtree:

* ``invalidate_page("/articles/42/")``: every variant of that path on every host;
* ``invalidate_page("https://example.com/articles/42/")`` or ``host="example.com"``: that host's;
* ``invalidate_page("/articles/", prefix=True)``: ``/articles`` and everything below it.

The query string of a URL is ignored (all of its variants go). The counters live beside the
pages, in the cache alias a page is stored in; ``alias=None`` bumps them in every alias of
``CACHES`` (a page may live in any of them). The ``page_invalidated`` signal is sent once per
purge, after the bump, for CDNs and reverse proxies to forward it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.conf import settings

from cachewise.conf import conf
from cachewise.monitoring.metrics import record
from cachewise.orm import generations
from cachewise.signals import page_invalidated

from .key import NAMESPACE
from .stamp import path_prefixes, prefix_counter, url_counter

__all__ = ["invalidate_page", "split_url"]


def split_url(path_or_url: str, host: str | None = None) -> tuple[str | None, str]:
    """``(host, path)`` of a path or absolute URL; an explicit ``host`` wins over the URL's."""
    parts = urlsplit(path_or_url)
    path = unquote(parts.path) or "/"
    if not path.startswith("/"):
        raise ValueError(f"invalidate_page({path_or_url!r}): give a path starting with / or an absolute URL")
    found = host if host is not None else (parts.netloc or None)
    return (found.lower() if found else None), path


def _counters(host: str | None, path: str, prefix: bool) -> list[str]:
    if not prefix:
        return [url_counter(path, host)]
    # The deepest prefix counter a page carries: deeper subtrees purge this ancestor (a superset).
    return [prefix_counter(path_prefixes(path)[-1])]


def invalidate_page(
    path_or_url: str, *, host: str | None = None, prefix: bool = False, alias: str | None = None
) -> None:
    """Purge every cached variant of a URL (``prefix=True``: of every URL under it).

    Without ``host`` (and with a bare path) the URL is purged on every host. ``prefix`` works
    on whole path segments (``/a`` covers ``/a/b``, not ``/ab``) and on all hosts; a prefix
    deeper than ``PREFIX_DEPTH`` segments purges its ancestor at that depth. Raises when the
    cache cannot be reached: a purge never silently does nothing.
    """
    url_host, path = split_url(path_or_url, host)
    if prefix and url_host is not None:
        raise ValueError("invalidate_page(prefix=True) purges on every host; leave host out")
    keys = _counters(url_host, path, prefix)
    aliases = [alias] if alias is not None else list(settings.CACHES)
    for name in aliases:
        generations.bump(name, keys, conf.ORM_COUNTER_TTL)
        record("invalidate", name, NAMESPACE)
    page_invalidated.send(
        sender=invalidate_page, path=path, host=url_host, prefix=prefix, aliases=tuple(aliases)
    )
