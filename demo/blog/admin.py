"""Admin registrations, so staff can edit an article and watch its cached fragment refresh."""

from __future__ import annotations

from django.contrib import admin

from demo.blog.models import Article, Author, Category

admin.site.register(Author)
admin.site.register(Category)


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    """Search and edit articles."""

    list_display = ("title", "author", "category", "views", "published_at")
    search_fields = ("title",)
    raw_id_fields = ("author",)
