"""Models used by the ORM, view and demo-like tests."""

from __future__ import annotations

import datetime

from django.db import models

from cachewise.orm import CachedRows, CachewiseManager


class Author(models.Model):
    """ORM cache tests: a model other models' cached rows read through a foreign key."""

    name: models.CharField[str, str] = models.CharField(max_length=100)

    objects = CachewiseManager()


class Category(models.Model):
    """ORM cache tests: deleted categories set Article.category to NULL (no signals for that)."""

    name: models.CharField[str, str] = models.CharField(max_length=100)

    objects = CachewiseManager()


class Tag(models.Model):
    """ORM cache tests: the m2m side of Article."""

    name: models.CharField[str, str] = models.CharField(max_length=50)

    objects = CachewiseManager()


class Article(models.Model):
    """ORM cache tests: rows cached by pk, following relations."""

    title: models.CharField[str, str] = models.CharField(max_length=200)
    slug: models.SlugField[str, str] = models.SlugField(max_length=200, blank=True)
    author: models.ForeignKey[Author, Author] = models.ForeignKey(
        Author, on_delete=models.CASCADE, related_name="articles"
    )
    author_id: int  # Django's attribute for the key (stated for mypy, which runs without the plugin)
    category: models.ForeignKey[Category | None, Category | None] = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="articles"
    )
    category_id: int | None
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    featured: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    updated_at: models.DateTimeField[datetime.datetime, datetime.datetime] = models.DateTimeField(
        auto_now=True
    )

    objects = CachewiseManager()
    cached = CachedRows(fields=["id", "title", "slug", "author__name", "category_id", "updated_at"], ttl=1800)


class PageViews(models.Model):
    """Counter tests: the database row a cachewise Counter flushes its counts into."""

    page: models.IntegerField[int, int] = models.IntegerField(unique=True)
    views: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)


class Post(models.Model):
    """Counter + ORM cache tests: a cached row with a counter column."""

    title: models.CharField[str, str] = models.CharField(max_length=200)
    views: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)

    objects = CachewiseManager()
    cached = CachedRows(fields=["id", "title", "views"], ttl=1800)
