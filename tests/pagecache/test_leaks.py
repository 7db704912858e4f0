"""No page cached for one visitor is ever served to another (real session, auth, CSRF middleware)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

pytestmark = pytest.mark.urls("tests.urls_views")


@pytest.fixture(autouse=True)
def _debug_headers(settings: Any) -> None:
    settings.CACHEWISE_DEBUG_HEADERS = True


def _state(response: Any) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(response.content)
    return state


@pytest.fixture
def users(db: None) -> tuple[User, User]:
    return (
        User.objects.create_user("alice", password="pw-alice"),
        User.objects.create_user("bob", password="pw-bob"),
    )


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_two_users_and_anonymous_visitors_each_see_their_own_page(users: tuple[User, User]) -> None:
    alice, bob = _logged_in(users[0]), _logged_in(users[1])
    anon1, anon2 = Client(), Client()
    first_anon = anon1.get("/hello/")
    for _ in range(2):
        assert alice.get("/hello/").content.startswith(b"hello alice ")
        assert bob.get("/hello/").content.startswith(b"hello bob ")
        assert anon2.get("/hello/").content == first_anon.content
    assert first_anon["X-Cachewise"] == "miss"
    assert anon2.get("/hello/")["X-Cachewise"] == "hit"
    response = alice.get("/hello/")
    assert response["X-Cachewise"] == "bypass; reason=session"
    assert "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_logging_in_after_an_anonymous_page_was_cached_shows_the_user(users: tuple[User, User]) -> None:
    client = Client()
    assert client.get("/hello/").content.startswith(b"hello anon ")
    assert client.login(username="alice", password="pw-alice")
    assert client.get("/hello/").content.startswith(b"hello alice ")
    client.logout()
    assert client.get("/hello/").content.startswith(b"hello anon ")


@pytest.mark.django_db
def test_per_user_pages_are_cached_per_user_and_private(users: tuple[User, User]) -> None:
    alice, bob, anon = _logged_in(users[0]), _logged_in(users[1]), Client()
    a1, b1, n1 = alice.get("/dashboard/"), bob.get("/dashboard/"), anon.get("/dashboard/")
    a2, b2, n2 = alice.get("/dashboard/"), bob.get("/dashboard/"), anon.get("/dashboard/")
    assert a1.content.startswith(b"dashboard alice ")
    assert a2.content == a1.content
    assert b1.content.startswith(b"dashboard bob ")
    assert b2.content == b1.content
    assert n1.content.startswith(b"dashboard anon ")
    assert n2.content == n1.content
    assert [r["X-Cachewise"] for r in (a2, b2, n2)] == ["hit", "hit", "hit"]
    assert all("private" in r["Cache-Control"] for r in (a1, a2, b1, b2, n1, n2))


@pytest.mark.django_db
def test_per_user_with_credentials_the_middleware_did_not_resolve_is_not_cached() -> None:
    # A view authenticating from the header itself (DRF style) would render a user's page for
    # a request Django sees as anonymous: keying it as "anonymous" would share it.
    response = Client().get("/dashboard/", HTTP_AUTHORIZATION="Token secret")
    assert response["X-Cachewise"] == "bypass; reason=authorization"


@pytest.mark.django_db
def test_authorization_header_bypasses_and_is_never_served_a_shared_page() -> None:
    anon = Client()
    cached = anon.get("/hello/")
    anon.get("/hello/")
    response = Client().get("/hello/", HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    assert response["X-Cachewise"] == "bypass; reason=authorization"
    assert response.content != cached.content


@pytest.mark.django_db
def test_csrf_token_pages_are_per_visitor() -> None:
    one, two = Client(), Client()
    r1, r2 = one.get("/csrf/"), two.get("/csrf/")
    assert r1["X-Cachewise"] == r2["X-Cachewise"] == "bypass; reason=csrf"
    assert r1.content != r2.content
    assert r1.cookies["csrftoken"].value != r2.cookies["csrftoken"].value


def test_host_is_part_of_the_key() -> None:
    client = Client()
    a = _state(client.get("/echo/", HTTP_HOST="example.com"))
    b = _state(client.get("/echo/", HTTP_HOST="www.example.com"))
    assert (a["state"]["host"], b["state"]["host"]) == ("example.com", "www.example.com")


def test_disallowed_host_is_refused_not_cached() -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/echo/", HTTP_HOST="evil.test").status_code == 400
    assert _state(client.get("/echo/"))["state"]["host"] == "testserver"


def test_x_forwarded_host_is_ignored_unless_trusted(settings: Any) -> None:
    client = Client()
    first = client.get("/echo/", HTTP_X_FORWARDED_HOST="example.com")
    assert _state(first)["state"]["host"] == "testserver"
    settings.USE_X_FORWARDED_HOST = True
    trusted = client.get("/echo/", HTTP_X_FORWARDED_HOST="example.com")
    assert _state(trusted)["state"]["host"] == "example.com"
    assert trusted["X-Cachewise"] == "miss"


def test_accept_language_absent_empty_and_set_are_distinct() -> None:
    client = Client()
    absent = _state(client.get("/echo/"))
    empty = _state(client.get("/echo/", HTTP_ACCEPT_LANGUAGE=""))
    french = _state(client.get("/echo/", HTTP_ACCEPT_LANGUAGE="fr"))
    assert [s["state"]["lang_header"] for s in (absent, empty, french)] == [None, "", "fr"]
    assert len({s["n"] for s in (absent, empty, french)}) == 3


def test_active_language_is_part_of_the_key(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    client = Client()
    en = _state(client.get("/echo/", HTTP_COOKIE="django_language=en"))
    fr = _state(client.get("/echo/", HTTP_COOKIE="django_language=fr"))
    assert (en["state"]["language"], fr["state"]["language"]) == ("en", "fr")


def test_undeclared_vary_header_from_the_response_is_honoured() -> None:
    client = Client()
    a = client.get("/echo/", HTTP_X_CUSTOM="a")
    b = client.get("/echo/", HTTP_X_CUSTOM="b")
    a2 = client.get("/echo/", HTTP_X_CUSTOM="a")
    assert (_state(a)["state"]["custom"], _state(b)["state"]["custom"]) == ("a", "b")
    assert a2.content == a.content
    assert a2["X-Cachewise"] == "hit"


def test_declared_cookie_varies_the_key_but_other_cookies_do_not() -> None:
    client = Client()
    dark = client.get("/echo/", HTTP_COOKIE="theme=dark; utm=1")
    other = client.get("/echo/", HTTP_COOKIE="theme=dark; utm=2")
    light = client.get("/echo/", HTTP_COOKIE="theme=light")
    assert other.content == dark.content
    assert other["X-Cachewise"] == "hit"
    assert _state(light)["state"]["theme"] == "light"


def test_query_string_is_keyed_by_its_parameters_and_served_only_to_its_raw_form() -> None:
    client = Client()
    a = client.get("/echo/?b=2&a=1")
    assert client.get("/echo/?b=2&a=1")["X-Cachewise"] == "hit"
    reordered = client.get("/echo/?a=1&b=2")
    assert reordered["X-Cachewise"] == "bypass; reason=query-form"
    assert _state(reordered)["state"]["full_path"] == "/echo/?a=1&b=2"
    assert _state(client.get("/echo/?a=1&b=3"))["state"]["query"] == [["a", ["1"]], ["b", ["3"]]]
    assert _state(a)["state"]["query"] == [["a", ["1"]], ["b", ["2"]]]


def test_percent_encoded_and_plain_query_never_share_a_full_path() -> None:
    # ?a=%31 and ?a=1 are the same parameters (one canonical key, one entry), but
    # get_full_path() differs: whoever came first must not choose the URL the other one sees.
    client = Client()
    encoded = client.get("/echo/?a=%31")
    plain = client.get("/echo/?a=1")
    assert _state(encoded)["state"]["full_path"] == "/echo/?a=%31"
    assert _state(plain)["state"]["full_path"] == "/echo/?a=1"
    assert plain["X-Cachewise"] == "bypass; reason=query-form"
    again = client.get("/echo/?a=%31")
    assert again["X-Cachewise"] == "hit"
    assert again.content == encoded.content
    from django.core.cache import cache

    cache.clear()
    first_plain = client.get("/echo/?a=1")
    assert _state(client.get("/echo/?a=%31"))["state"]["full_path"] == "/echo/?a=%31"
    assert client.get("/echo/?a=1").content == first_plain.content


def test_undeclared_query_parameters_bypass_the_cache() -> None:
    client = Client()
    first = client.get("/allow-listed/?page=2")
    assert client.get("/allow-listed/?page=2").content == first.content
    tracked = client.get("/allow-listed/?page=2&utm=x")
    assert tracked["X-Cachewise"] == "bypass; reason=query-param"
    assert tracked.content != first.content
    assert client.get("/hello/?anything=1")["X-Cachewise"] == "bypass; reason=query-param"
    assert client.get("/allow-listed/?page=3").content.startswith(b"page=3 ")


def test_head_and_get_are_cached_apart() -> None:
    client = Client()
    client.head("/hello/")
    get = client.get("/hello/")
    assert get["X-Cachewise"] == "miss"
    assert get.content.startswith(b"hello anon ")


HEADERS = {
    "HTTP_HOST": st.sampled_from([None, "example.com", "www.example.com"]),
    "HTTP_X_FORWARDED_HOST": st.sampled_from([None, "example.com", "localhost"]),
    "HTTP_AUTHORIZATION": st.sampled_from([None, "", "Bearer a", "Bearer b"]),
    "HTTP_ACCEPT_LANGUAGE": st.sampled_from([None, "", "en", "fr"]),
    "HTTP_X_CUSTOM": st.sampled_from([None, "", "a", "b"]),
    "HTTP_COOKIE": st.sampled_from([None, "", "theme=dark", "theme=", "theme=light; x=1", "x=2"]),
    "QUERY_STRING": st.sampled_from(["", "a=1", "a=%31", "a=2", "a=1&a=2", "a=2&a=1", "b=2&a=1", "a=1&b=2"]),
}


@override_settings(USE_X_FORWARDED_HOST=True)
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.fixed_dictionaries(HEADERS), min_size=2, max_size=8))
def test_no_cached_response_is_served_to_a_request_differing_in_a_varied_dimension(
    requests: list[dict[str, str | None]],
) -> None:
    from django.core.cache import cache

    cache.clear()
    client = Client()
    for extra in requests:
        meta = {k: v for k, v in extra.items() if v is not None}
        response = client.get("/echo/", **meta)  # type: ignore[arg-type]
        state = _state(response)["state"]
        cookies = dict(part.split("=", 1) for part in (extra["HTTP_COOKIE"] or "").split("; ") if part)
        expected = {
            "host": extra["HTTP_X_FORWARDED_HOST"] or extra["HTTP_HOST"] or "testserver",
            "authorization": extra["HTTP_AUTHORIZATION"],
            "lang_header": extra["HTTP_ACCEPT_LANGUAGE"],
            "custom": extra["HTTP_X_CUSTOM"],
            "theme": cookies.get("theme"),
        }
        assert {k: state[k] for k in expected} == expected
        if extra["HTTP_AUTHORIZATION"] is not None:
            assert response["X-Cachewise"] == "bypass; reason=authorization"
        raw = extra["QUERY_STRING"] or ""
        pairs = [p.replace("%31", "1").split("=") for p in raw.split("&") if p]
        values: dict[str, list[str]] = {}
        for name, value in pairs:
            values.setdefault(name, []).append(value)
        assert state["query"] == sorted([k, v] for k, v in values.items())
        assert state["full_path"] == ("/echo/?" + raw if raw else "/echo/")


def test_disallowed_host_is_a_400_even_when_nothing_else_checks_the_host(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "CommonMiddleware" not in m]
    client = Client(raise_request_exception=False)
    assert client.get("/hello/", HTTP_HOST="evil.test").status_code == 400
    assert client.get("/async-echo/", HTTP_HOST="evil.test").status_code == 400


def test_a_host_accepted_once_is_refused_after_allowed_hosts_change(settings: Any) -> None:
    # The page cache remembers the hosts Django accepted (a hit skips the validation): the
    # memory follows ALLOWED_HOSTS, whether assigned (setting_changed) or overridden.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "CommonMiddleware" not in m]
    client = Client(raise_request_exception=False)
    settings.ALLOWED_HOSTS = ["shop.example"]
    assert client.get("/hello/", HTTP_HOST="shop.example").status_code == 200
    assert client.get("/hello/", HTTP_HOST="shop.example").status_code == 200  # remembered
    assert client.get("/hello/", HTTP_HOST="evil.test").status_code == 400  # never remembered
    assert client.get("/hello/", HTTP_HOST="evil.test").status_code == 400
    settings.ALLOWED_HOSTS = ["other.example"]
    assert client.get("/hello/", HTTP_HOST="shop.example").status_code == 400
    with override_settings(ALLOWED_HOSTS=["shop.example"]):
        assert client.get("/hello/", HTTP_HOST="shop.example").status_code == 200
    assert client.get("/hello/", HTTP_HOST="shop.example").status_code == 400


@pytest.fixture
def credentials(settings: Any) -> None:
    settings.CACHEWISE_CREDENTIAL_COOKIES = ["jwt"]
    settings.CACHEWISE_CREDENTIAL_HEADERS = ["X-Api-Key"]


@pytest.mark.usefixtures("credentials")
def test_cookie_authenticated_user_is_never_served_a_shared_page_nor_shares_its_own() -> None:
    jwt_user, anon = Client(), Client()
    jwt_user.cookies["jwt"] = "alice"
    first = jwt_user.get("/token-hello/")
    assert first.content.startswith(b"hello user-alice ")
    assert first["X-Cachewise"] == "bypass; reason=credential"
    assert "private" in first["Cache-Control"]
    for _ in range(2):
        assert anon.get("/token-hello/").content.startswith(b"hello anon ")
    assert anon.get("/token-hello/")["X-Cachewise"] == "hit"
    assert jwt_user.get("/token-hello/").content.startswith(b"hello user-alice ")
    empty = Client()
    empty.cookies["jwt"] = ""
    assert empty.get("/token-hello/")["X-Cachewise"] == "bypass; reason=credential"


@pytest.mark.usefixtures("credentials")
def test_credential_header_is_never_served_a_shared_page() -> None:
    anon = Client()
    anon.get("/token-hello/")
    response = Client().get("/token-hello/", HTTP_X_API_KEY="bob")
    assert response.content.startswith(b"hello user-bob ")
    assert response["X-Cachewise"] == "bypass; reason=credential"
    assert anon.get("/token-hello/").content.startswith(b"hello anon ")


def test_without_the_setting_a_cookie_authenticated_page_is_shared() -> None:
    # The documented limit of the guarantee: cachewise cannot know a cookie is a credential.
    jwt_user = Client()
    jwt_user.cookies["jwt"] = "alice"
    jwt_user.get("/token-hello/")
    assert Client().get("/token-hello/").content.startswith(b"hello user-alice ")


@pytest.mark.usefixtures("credentials")
def test_response_issuing_a_credential_header_is_never_stored() -> None:
    client = Client()
    first, second = client.get("/issues-token/"), client.get("/issues-token/")
    assert first["X-Cachewise"] == second["X-Cachewise"] == "bypass; reason=credential"
    assert first["X-Api-Key"] != second["X-Api-Key"]
    assert "private" in first["Cache-Control"]


def test_a_single_credential_name_given_as_a_string_is_one_name(settings: Any) -> None:
    settings.CACHEWISE_CREDENTIAL_COOKIES = "jwt"
    client = Client()
    client.cookies["jwt"] = "alice"
    assert client.get("/token-hello/")["X-Cachewise"] == "bypass; reason=credential"
    other = Client()
    other.cookies["j"] = "1"
    assert other.get("/token-hello/")["X-Cachewise"] != "bypass; reason=credential"
