"""A writer in a process of its own for tests/pagecache/test_deps_gunicorn.py: one command per line.

``python -m tests.pagedeps_writer`` with ``DJANGO_SETTINGS_MODULE=tests.pagedeps_site``; reads
``<op> <pk> <text>`` lines on stdin, commits the write and answers ``ok`` (or the error).
"""

from __future__ import annotations

import sys


def _write(op: str, pk: int, text: str) -> None:
    from django.db import transaction

    from tests.testapp.models import Article, PageViews, Tag

    if op == "save":
        article = Article.objects.get(pk=pk)
        article.title = text
        article.save()
    elif op == "insert":
        Article.objects.create(title=text, author=Article.objects.get(pk=pk).author)
    elif op == "delete":
        Article.objects.get(pk=pk).delete()
    elif op == "m2m":
        Article.objects.get(pk=pk).tags.add(Tag.objects.create(name=text))
    elif op == "update":
        Article.objects.filter(pk=pk).update(title=text)
    elif op == "rollback":
        try:
            with transaction.atomic():
                Article.objects.filter(pk=pk).update(title=text)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    elif op == "unrelated":
        PageViews.objects.create(page=pk, views=1)
    else:
        raise ValueError(op)


def main() -> None:
    """Serve commands until stdin closes."""
    import django

    django.setup()
    print("ready", flush=True)
    for line in sys.stdin:
        op, pk, text = line.rstrip("\n").split(" ", 2)
        try:
            _write(op, int(pk), text)
            print("ok", flush=True)
        except Exception as exc:  # reported to the test, which fails with it
            print(f"error {exc!r}", flush=True)


if __name__ == "__main__":
    main()
