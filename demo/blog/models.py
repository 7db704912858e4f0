"""Authors, categories and articles: a few thousand rows, enough for queries to cost something."""

from __future__ import annotations

from django.db import models

from demo.blog.features import feature

_CachedRows = feature("CachedRows")
#: The fields of an article as the one-article API returns them.
ROW_FIELDS = ("id", "title", "slug", "author__name", "category__name", "views", "updated_at")


class Author(models.Model):
    """A writer; the list page and the aggregates join to it."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    bio = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    """A section of the blog."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    """A post; ``views`` is the durable view count that the Counter flushes into."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True, max_length=220)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="articles")
    body = models.TextField()
    featured = models.BooleanField(default=False)
    views = models.PositiveIntegerField(default=0)
    published_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    if _CachedRows is not None:
        #: ``Article.cached.get(pk)``: the row as a dict, invalidated after commit on a write of
        #: the Article, its Author or its Category (``author__name``, ``category__name``).
        cached = _CachedRows(fields=list(ROW_FIELDS), ttl=1800)

    class Meta:
        ordering = ["-published_at"]

    def __str__(self) -> str:
        return self.title
