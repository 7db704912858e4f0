"""``manage.py cachewise invalidate``: invalidate cached data by model, key or namespace scope.

For writes cachewise cannot see (a raw SQL migration, a data fix in ``psql``, another program
writing the same tables) and for operators who need a stale entry gone now:

- ``--model app_label.Model``: every cached row and list that reads the model
  (:func:`cachewise.invalidate_model`; one round trip bumping its generation).
- ``--key KEY [--alias A]``: one ``get_or_compute``/``@cached`` key, fenced so that a fill already
  running is not stored (:func:`cachewise.compute.api.invalidate`).
- ``--namespace NAME --scope S [--alias A]``: bump a :class:`cachewise.Namespace` scope, so every
  key built under its old version becomes unreachable. Keys encode types, so ``7`` and ``"7"``
  are different scopes: a scope of digits is read as an int (a primary key) unless
  ``--scope-type str`` says otherwise.

- ``--path PATH_OR_URL [--host H]``: every cached variant of a page (all hosts unless the URL or
  ``--host`` names one; all languages, query strings and Vary values) through
  :func:`cachewise.invalidate_page`.
- ``--prefix PATH``: every cached page under a path (whole segments: ``/blog`` covers
  ``/blog/2024/post``, not ``/blogroll``), on every host.

Options combine and repeat. Nothing is scanned or deleted by pattern: invalidation is always a
version bump or a fenced delete, so it is O(1) and safe on a large or clustered Redis. A cache that
cannot be reached is an error (exit 1): an invalidation must never silently not happen.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from cachewise import Namespace, invalidate_model, invalidate_page
from cachewise.compute.api import invalidate
from cachewise.conf import conf
from cachewise.exceptions import CachewiseError
from cachewise.signals import cache_degraded

from .local import refuse_per_process_cache
from .output import print_table

help = "Invalidate cached rows/lists of a model, a get_or_compute key, or a Namespace scope."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` / ``--key`` / ``--namespace`` with ``--scope`` (each repeatable), ``--alias``."""
    parser.add_argument("--model", action="append", default=[], metavar="APP_LABEL.MODEL")
    parser.add_argument("--key", action="append", default=[], metavar="KEY")
    parser.add_argument("--namespace", metavar="NAME", help="a cachewise Namespace name")
    parser.add_argument("--scope", action="append", default=[], metavar="SCOPE")
    parser.add_argument(
        "--scope-type",
        choices=("auto", "int", "str"),
        default="auto",
        help="how to read --scope: auto (digits are an int, like a primary key), int or str",
    )
    parser.add_argument("--path", action="append", default=[], metavar="PATH_OR_URL")
    parser.add_argument("--prefix", action="append", default=[], metavar="PATH")
    parser.add_argument("--host", help="with --path: purge only this host's variants")
    parser.add_argument("--alias", default="default", help="cache alias for --key and --namespace")


def _model(label: str) -> Any:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise CommandError(f"--model {label!r}: {exc} (expected app_label.ModelName)") from exc


def _scope(raw: str, kind: str) -> int | str:
    # Keys encode types (7 and "7" are different scopes), and scopes are usually primary keys.
    if kind == "int" or (kind == "auto" and raw.lstrip("-").isdigit()):
        try:
            return int(raw)
        except ValueError as exc:
            raise CommandError(f"--scope {raw!r} is not an int (use --scope-type str)") from exc
    return raw


def _targets(options: dict[str, Any]) -> list[tuple[str, str, Any]]:
    targets: list[tuple[str, str, Any]] = [("model", label, _model(label)) for label in options["model"]]
    targets += [("key", key, key) for key in options["key"]]
    if options["scope"] and not options["namespace"]:
        raise CommandError("--scope needs --namespace NAME")
    if options["namespace"]:
        if not options["scope"]:
            raise CommandError("--namespace needs at least one --scope (the part whose version to bump)")
        targets += [
            ("namespace", f"{options['namespace']}:{scope}", _scope(scope, options["scope_type"]))
            for scope in options["scope"]
        ]
    targets += [("path", path, path) for path in options.get("path") or ()]
    targets += [("prefix", prefix, prefix) for prefix in options.get("prefix") or ()]
    if not targets:
        raise CommandError(
            "nothing to invalidate: give --model, --key, --path, --prefix or --namespace with --scope"
        )
    return targets


def _invalidate(kind: str, target: Any, options: dict[str, Any]) -> str:
    if kind == "model":
        _invalidate_model_or_raise(invalidate_model, target)
        return "generation bumped"
    if kind in ("path", "prefix"):
        return _purge(kind, target, options)
    if kind == "key":
        invalidate(target, alias=options["alias"])
        return "deleted (fenced)"
    version = Namespace(options["namespace"], alias=options["alias"]).bump(target)
    return f"now v{version}"


def _purge(kind: str, target: str, options: dict[str, Any]) -> str:
    prefix = kind == "prefix"
    try:
        invalidate_page(target, host=None if prefix else options.get("host"), prefix=prefix)
    except ValueError as exc:
        raise CommandError(f"--{kind} {target!r}: {exc}") from exc
    return "purged on every host" if prefix or not options.get("host") else f"purged on {options['host']}"


def _invalidate_model_or_raise(invalidate_model: Any, model: Any) -> None:
    # invalidate_model() reports a failed bump (signal, log, and a global epoch bump once the cache
    # answers again) instead of raising, which suits a request; a one-shot command ends before
    # "again", so turn the report into an error the operator sees.

    failures: list[BaseException] = []

    def on_degraded(sender: Any, *, error: BaseException, **kwargs: Any) -> None:
        failures.append(error)

    # Only the ORM invalidation's own reports (sent with sender=invalidate_model), never another
    # operation's degradation that a background thread might signal meanwhile.
    uid = "cachewise.cli.invalidate"
    cache_degraded.connect(on_degraded, sender=invalidate_model, dispatch_uid=uid, weak=False)
    try:
        invalidate_model(model)
    finally:
        cache_degraded.disconnect(sender=invalidate_model, dispatch_uid=uid)
    if failures:
        raise CommandError(f"could not invalidate model {model._meta.label}: {failures[0]}")


def _refuse_local_caches(targets: list[tuple[str, str, Any]], options: dict[str, Any]) -> None:

    if any(kind == "model" for kind, _name, _target in targets):
        refuse_per_process_cache(conf.ORM_CACHE, "invalidating a model")
    if any(kind != "model" for kind, _name, _target in targets):
        refuse_per_process_cache(options["alias"], "invalidating a key or a namespace scope")


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Invalidate each target in turn; stop with exit 1 at the first one the cache refuses, and
    before any when the cache is a per-process one (it would invalidate only this process)."""
    rows = []
    targets = _targets(options)
    _refuse_local_caches(targets, options)
    for kind, name, target in targets:
        try:
            rows.append([kind, name, _invalidate(kind, target, options)])
        except CachewiseError as exc:
            raise CommandError(
                f"could not invalidate {kind} {name!r}: {exc}; nothing after it was attempted. "
                "Check the cache with `manage.py cachewise ping` and run this again."
            ) from exc
    print_table(command, "Invalidated", ["kind", "target", "result"], rows)
