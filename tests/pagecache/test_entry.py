"""A cached page turned back into a response: the copied header table gives what Django would."""

from __future__ import annotations

import pytest
from django.http import HttpResponse

from cachewise.pagecache.entry import Page, header_table, to_response


@pytest.mark.parametrize(
    "headers",
    [
        (
            ("Content-Type", "application/json"),
            ("Vary", "Cookie, Accept-Language"),
            ("X-Frame-Options", "DENY"),
        ),
        (
            ("Cache-Control", "max-age=60"),
            ("Content-Language", "de"),
            ("X-Title", "Größe"),
        ),  # no Content-Type
        (),
    ],
    ids=["typed", "untyped-non-ascii", "none"],
)
def test_a_response_from_the_header_table_is_the_one_django_builds(
    headers: tuple[tuple[str, str], ...],
) -> None:
    page = Page(203, "Non-Authoritative", headers, b"<p>body</p>", ())
    table = header_table(page)
    assert table is not None
    built, copied = to_response(page), to_response(page, table)
    assert isinstance(copied, HttpResponse)
    assert list(copied.items()) == list(built.items())
    assert (copied.status_code, copied.reason_phrase, copied.content) == (
        203,
        "Non-Authoritative",
        b"<p>body</p>",
    )
    assert copied.charset == built.charset


def test_each_response_from_one_table_is_its_own() -> None:
    page = Page(200, "OK", (("Vary", "Cookie"), ("X-One", "1")), b"x", ())
    table = header_table(page)
    first = to_response(page, table)
    first["X-One"] = "changed"
    del first["Vary"]
    first["X-Added"] = "yes"
    first.set_cookie("visitor", "a")
    second = to_response(page, table)
    assert second["X-One"] == "1"
    assert second["Vary"] == "Cookie"
    assert "X-Added" not in second
    assert not second.cookies
