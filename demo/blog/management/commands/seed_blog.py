"""``manage.py seed_blog``: fill the blog with deterministic fake authors, categories and articles."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from demo.blog.models import Article, Author, Category

WORDS = [
    "cache",
    "redis",
    "latency",
    "throughput",
    "stampede",
    "version",
    "counter",
    "invalidate",
    "commit",
    "replica",
    "shard",
    "request",
    "worker",
    "queue",
    "python",
    "django",
    "template",
    "fragment",
    "query",
    "index",
    "join",
    "aggregate",
    "page",
    "expiry",
    "lock",
    "token",
    "lease",
    "window",
    "budget",
    "metric",
    "signal",
    "breaker",
    "outage",
    "recovery",
]
CATEGORIES = (
    "Performance",
    "Databases",
    "Operations",
    "Python",
    "Django",
    "Architecture",
    "Testing",
    "Security",
    "Frontend",
    "Culture",
    "Tutorials",
    "News",
)
FIRST = ("Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis", "Radia", "Edsger")
LAST = ("Lovelace", "Hopper", "Torvalds", "Rossum", "Liskov", "Thompson", "Hamilton", "Ritchie", "Perlman")
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


class Command(BaseCommand):
    """Replace the blog's content with ``--articles`` seeded rows (same seed, same rows)."""

    help = "Seed the demo blog with deterministic fake content."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--articles", type=int, default=3000)
        parser.add_argument("--authors", type=int, default=60)
        parser.add_argument("--seed", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        with transaction.atomic():
            Article.objects.all().delete()
            Author.objects.all().delete()
            Category.objects.all().delete()
            categories = self._categories()
            authors = self._authors(rng, options["authors"])
            self._articles(rng, options["articles"], authors, categories)
        self._staff_user()
        if options["verbosity"] > 0:
            self.stdout.write(
                f"seeded {len(authors)} authors, {len(categories)} categories, {options['articles']} articles"
            )

    def _categories(self) -> list[Category]:
        rows = [Category(name=name, slug=name.lower()) for name in CATEGORIES]
        return Category.objects.bulk_create(rows)

    def _authors(self, rng: random.Random, count: int) -> list[Author]:
        rows = []
        for index in range(count):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            rows.append(Author(name=name, slug=f"author-{index}", bio=_sentence(rng, 30)))
        return Author.objects.bulk_create(rows)

    def _articles(
        self, rng: random.Random, count: int, authors: list[Author], categories: list[Category]
    ) -> None:
        rows = []
        for index in range(count):
            paragraphs = "\n\n".join(_sentence(rng, 60) + "." for _ in range(4))
            rows.append(
                Article(
                    title=_sentence(rng, 6),
                    slug=f"article-{index}",
                    author=rng.choice(authors),
                    category=rng.choice(categories),
                    body=paragraphs,
                    featured=rng.random() < 0.05,
                    views=rng.randint(0, 500),
                    published_at=START + timedelta(minutes=37 * index),
                )
            )
        Article.objects.bulk_create(rows, batch_size=500)

    def _staff_user(self) -> None:
        """A staff account for the dashboard in ``--serve`` mode (loopback only)."""
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True})
        user.is_staff = True
        user.is_superuser = True
        user.set_password("admin")
        user.save()
