"""increment_field: a counter flush refreshes the rows it updated, not the model's whole cache."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F

from cachewise import Counter, increment_field
from tests.testapp.models import Post


@pytest.fixture
def posts() -> list[Post]:
    return [Post.objects.create(title=f"post {n}") for n in range(3)]


@pytest.mark.django_db(transaction=True)  # invalidations are sent after the flush's commit
def test_a_flush_invalidates_only_the_rows_it_updated(
    posts: list[Post], django_assert_num_queries: Any
) -> None:
    first, other, _ = posts
    views = Counter("orm:post-views", apply=increment_field(Post, "views"))
    for post in posts:
        Post.cached.get(post.pk)  # every row cached
    views.incr(first.pk, 3)
    views.flush()
    with django_assert_num_queries(0):
        assert Post.cached.get(other.pk) == {"id": other.pk, "title": "post 1", "views": 0}
    with django_assert_num_queries(1):
        assert Post.cached.get(first.pk)["views"] == 3  # type: ignore[index]
    assert Post.objects.get(pk=first.pk).views == 3


@pytest.mark.django_db(transaction=True)
def test_applying_through_the_cachewise_manager_empties_the_whole_row_cache(
    posts: list[Post], django_assert_num_queries: Any
) -> None:
    """Why increment_field exists: update() cannot tell which rows it touched."""
    first, other, _ = posts
    views = Counter(
        "orm:post-views-naive",
        apply=lambda pk, delta: Post.objects.filter(pk=pk).update(views=F("views") + delta),
    )
    for post in posts:
        Post.cached.get(post.pk)
    views.incr(first.pk)
    views.flush()
    with django_assert_num_queries(1):
        Post.cached.get(other.pk)


def test_a_misspelt_column_fails_when_the_counter_is_defined() -> None:
    from django.core.exceptions import FieldDoesNotExist

    with pytest.raises(FieldDoesNotExist):
        increment_field(Post, "veiws")
