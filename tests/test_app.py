import re

import pytest

from portal import create_app
from portal.config import ConfigError, finalize, load_secret_key
from tests.journey_helpers import lookup
from tests.staff_helpers import sign_in


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True)).group(1)


@pytest.mark.parametrize("header", ["zh-CN,zh;q=0.9", "zh-Hans-CN", "zh-SG,en;q=0.5", "zh", "zh_CN"])
def test_every_way_a_browser_asks_for_chinese_gets_chinese(client, header):
    response = client.get("/", headers={"Accept-Language": header})
    assert html_lang(response) == "zh-Hans"
    assert "申请退款" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "header,lang", [("nl-BE,nl;q=0.9", "nl"), ("fr-FR,fr;q=0.9", "en"), ("", "en"), ("fr;q=0.9,nl;q=0.5", "nl")]
)
def test_other_languages_fall_back_in_order(client, header, lang):
    assert html_lang(client.get("/", headers={"Accept-Language": header})) == lang


def test_the_switch_wins_over_the_browser_and_stays_in_the_session(client):
    response = client.get("/language/nl?next=/", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert html_lang(page) == "nl"
    assert "Vraag een terugbetaling aan" in page.get_data(as_text=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_the_switch_never_redirects_off_site(client, target):
    response = client.get("/language/en", query_string={"next": target})
    assert response.headers["Location"] == "/"


def test_unknown_language_is_not_found(client):
    assert client.get("/language/fr").status_code == 404


def test_pages_send_strict_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_https_responses_carry_hsts(client):
    response = client.get("/", base_url="https://portal.test")
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_page_assets_are_served_locally(client):
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html.split("<footer")[0])
    with client.get("/static/portal.css") as css:
        assert css.status_code == 200 and "color-scheme" in css.get_data(as_text=True)


def test_error_pages_are_localized(client):
    response = client.get("/no-such-page", headers={"Accept-Language": "nl"})
    assert response.status_code == 404
    assert "Wij konden die pagina niet vinden" in response.get_data(as_text=True)


def test_readiness_answers_200_with_the_database_up_at_the_migrations_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["checks"]["database"]["ok"] is True


def test_readiness_answers_503_and_liveness_200_with_the_database_down(tmp_path):
    app = create_app(
        {"ENV": "testing", "SECRET_KEY": "x" * 40, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite3"}
    )
    assert app.test_client().get("/readyz").status_code == 503
    assert app.test_client().get("/healthz").status_code == 200


def test_settings_come_from_prefixed_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_BASE_URL", "https://refunds.example.com/")
    monkeypatch.setenv("PORTAL_UPLOAD_DIR", str(tmp_path / "up"))
    app = create_app({"ENV": "testing", "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite://"})
    assert app.config["BASE_URL"] == "https://refunds.example.com"
    assert app.config["UPLOAD_DIR"] == str(tmp_path / "up")


def test_postgres_urls_use_psycopg_3(tmp_path):
    config = {"ENV": "testing", "DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "k"}
    finalize(config, tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"SECRET_KEY": None}, "PORTAL_SECRET_KEY is not set"),
        ({"SECRET_KEY": "short"}, "shorter than"),
        ({"BASE_URL": "http://refunds.example.com"}, "https://"),
        ({"DATABASE_URL": None}, "PORTAL_DATABASE_URL"),
        ({"MAIL_SERVER": ""}, "PORTAL_MAIL_SERVER"),
        # Counters kept in each worker's memory let N workers allow N times the documented limit.
        ({"RATELIMIT_STORAGE_URI": "memory://"}, "PORTAL_RATELIMIT_STORAGE_URI"),
        ({"RATELIMIT_STORAGE_URI": None}, "PORTAL_RATELIMIT_STORAGE_URI"),
    ],
)
def test_production_refuses_unsafe_defaults(tmp_path, change, problem):
    config = {
        "ENV": "production",
        "SECRET_KEY": "s" * 48,
        "BASE_URL": "https://refunds.example.com",
        "DATABASE_URL": "postgresql://db/portal",
        "MAIL_SERVER": "smtp.example.com",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
        **change,
    }
    with pytest.raises(ConfigError, match=problem):
        finalize(config, tmp_path)


def test_production_with_safe_settings_starts_with_secure_cookies(tmp_path):
    config = {
        "ENV": "production",
        "SECRET_KEY": "s" * 48,
        "BASE_URL": "https://refunds.example.com",
        "DATABASE_URL": "postgresql://db/portal",
        "MAIL_SERVER": "smtp.example.com",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
    }
    finalize(config, tmp_path)
    assert config["SESSION_COOKIE_SECURE"] is True


def test_development_secret_is_generated_once_and_kept(tmp_path):
    first = load_secret_key(tmp_path)
    assert len(first) >= 40 and load_secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_demo_data_seeds_on_an_empty_database(runner):
    # `make run` seeds with this command; a name clash inside it once made it crash.
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "Demo data seeded." in result.output and "staff login (admin)" in result.output


def test_running_the_demo_again_ends_the_sessions_of_the_old_logins(app, runner):
    first = runner.invoke(args=["demo"])
    password = first.output.split("staff login (agent): agent@demo.example / ", 1)[1].split()[0]
    agent = app.test_client()
    sign_in(agent, "agent@demo.example", password)
    assert agent.get("/staff/queue").status_code == 200
    again = runner.invoke(args=["demo"])  # every `make run` prints a new login
    assert again.exit_code == 0 and password not in again.output
    assert "orders kept; the staff logins get a new password." in again.output and "filed: 0" not in again.output
    assert agent.get("/staff/queue").status_code == 302  # signed out: the old password's session ended


def test_private_pages_are_never_stored_and_pages_vary_with_the_language(client, orders):
    home = client.get("/")
    assert "Accept-Language" in home.headers["Vary"] and "no-store" not in home.headers.get("Cache-Control", "")
    assert "no-store" not in client.get("/policy").headers.get("Cache-Control", "")
    lookup(client, "ORD-10001", "alice.m@example.com")
    order = client.get("/orders/ORD-10001")
    assert order.status_code == 200 and order.headers["Cache-Control"] == "private, no-store"
    assert client.get("/staff/login").headers["Cache-Control"] == "private, no-store"
