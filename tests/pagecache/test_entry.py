"""A cached page turned back into a response: each copy is what Django would build, and its own."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse

from cachewise.pagecache import entry
from cachewise.pagecache.entry import Page, response_maker, to_response


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
def test_a_made_response_is_the_one_django_builds(headers: tuple[tuple[str, str], ...]) -> None:
    page = Page(203, "Non-Authoritative", headers, b"<p>body</p>", ())
    built, made = to_response(page), response_maker(page)()
    assert type(made) is HttpResponse
    assert list(made.items()) == list(built.items())
    assert (made.status_code, made.reason_phrase, made.content) == (
        203,
        "Non-Authoritative",
        b"<p>body</p>",
    )
    assert made.charset == built.charset
    assert vars(made).keys() == vars(built).keys()


def test_each_made_response_is_its_own() -> None:
    page = Page(200, "OK", (("Vary", "Cookie"), ("X-One", "1")), b"x", ())
    make = response_maker(page)
    first = make()
    assert isinstance(first, HttpResponse)
    first["X-One"] = "changed"
    del first["Vary"]
    first["X-Added"] = "yes"
    first.set_cookie("visitor", "a")
    first.write(b"more")
    first._resource_closers.append(lambda: None)  # type: ignore[attr-defined]
    first.status_code = 500
    second = make()
    assert isinstance(second, HttpResponse)
    assert second["X-One"] == "1"
    assert second["Vary"] == "Cookie"
    assert "X-Added" not in second
    assert not second.cookies
    assert second.content == b"x"
    assert second._resource_closers == []  # type: ignore[attr-defined]
    assert second.status_code == 200
    first.closed = True
    assert not second.closed


def test_state_of_an_unknown_kind_builds_each_response_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another Django could keep state this module does not know how to copy: then every
    # call builds the response the slow way rather than share that state between requests.
    built: list[HttpResponse] = []

    def with_extra_state(page: Page) -> Any:
        response = HttpResponse(page.body, status=page.status, reason=page.reason)
        response.extra = {"mutable": []}  # type: ignore[attr-defined]
        built.append(response)
        return response

    monkeypatch.setattr(entry, "to_response", with_extra_state)
    make = response_maker(Page(200, "OK", (), b"x", ()))
    first, second = make(), make()
    assert first is not second
    assert first.extra is not second.extra  # type: ignore[attr-defined]
    assert len(built) == 3  # the model, then one per call
