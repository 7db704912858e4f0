"""Models used by the ORM, view and demo-like tests."""

from __future__ import annotations

from django.db import models

from cachewise.orm import CachedRows, CachewiseManager


class Author(models.Model):
    """ORM cache tests: a model other models' cached rows read through a foreign key."""

    name = models.CharField(max_length=100)

    objects = CachewiseManager()


class Category(models.Model):
    """ORM cache tests: deleted categories set Article.category to NULL (no signals for that)."""

    name = models.CharField(max_length=100)

    objects = CachewiseManager()


class Tag(models.Model):
    """ORM cache tests: the m2m side of Article."""

    name = models.CharField(max_length=50)

    objects = CachewiseManager()


class Article(models.Model):
    """ORM cache tests: rows cached by pk, following relations."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, blank=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="articles"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    featured = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CachewiseManager()
    cached = CachedRows(fields=["id", "title", "slug", "author__name", "category_id", "updated_at"], ttl=1800)


class PageViews(models.Model):
    """Counter tests: the database row a cachewise Counter flushes its counts into."""

    page = models.IntegerField(unique=True)
    views = models.BigIntegerField(default=0)
