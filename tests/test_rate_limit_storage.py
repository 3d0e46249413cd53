"""Rate limits kept in Redis, as a deployment with several gunicorn workers configures them.

Redis is reached through a setting: PORTAL_TEST_REDIS_URL, or the machine's own server on
127.0.0.1:6379 (database 15, which the test empties of limiter keys). When the setting is
given and the server is unreachable, the test fails.
"""

import os

import pytest
import redis
import time_machine

from tests.journey_helpers import import_samples, lookup


@pytest.fixture
def redis_url():
    explicit = os.environ.get("PORTAL_TEST_REDIS_URL")
    url = explicit or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        if explicit:
            pytest.fail(f"PORTAL_TEST_REDIS_URL={url} is unreachable: {error}")
        pytest.skip(f"no Redis at {url}; set PORTAL_TEST_REDIS_URL to run this test")
    return url


def test_lookup_limits_live_in_redis_and_survive_a_worker_restart(redis_url, make_app, db_session):
    import_samples(db_session)
    server = redis.Redis.from_url(redis_url)
    keys = "LIMITS:*"

    def forget():
        for key in server.scan_iter(keys):
            server.delete(key)

    forget()
    try:
        with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
            first_worker = make_app(RATELIMIT_STORAGE_URI=redis_url).test_client()
            for attempt in range(10):
                assert lookup(first_worker, "ORD-10001", f"guess{attempt}@example.com").status_code == 200
            assert server.keys(keys), "the limiter wrote nothing to Redis"

            # A new worker process starts with empty memory; the count it sees comes from Redis.
            second_worker = make_app(RATELIMIT_STORAGE_URI=redis_url).test_client()
            second_worker.get("/language/zh")
            blocked = lookup(second_worker, "ORD-10001", "alice.m@example.com")
            assert blocked.status_code == 429
            assert "尝试次数过多" in blocked.get_data(as_text=True)
    finally:
        forget()
        server.close()


def test_sign_in_and_magic_link_limits_are_counted_across_workers(redis_url, make_app, db_session):
    """Two workers (two apps) share one count: the documented five a minute, not five each."""
    from tests.conftest import csrf_token
    from tests.staff_helpers import make_staff

    make_staff(db_session)
    server = redis.Redis.from_url(redis_url)
    for key in server.scan_iter("LIMITS:*"):
        server.delete(key)
    try:
        workers = [make_app(RATELIMIT_STORAGE_URI=redis_url).test_client() for _ in range(2)]
        answers = []
        for attempt in range(10):
            worker = workers[attempt % 2]
            answers.append(
                worker.post(
                    "/staff/login",
                    data={
                        "csrf_token": csrf_token(worker, "/staff/login"),
                        "email": "agent@example.com",
                        "password": "wrong",
                    },
                ).status_code
            )
        assert answers[:5] == [422] * 5 and set(answers[5:]) == {429}
        links = []
        for attempt in range(8):
            worker = workers[attempt % 2]
            links.append(
                worker.post(
                    "/access-link", data={"csrf_token": csrf_token(worker, "/"), "email": "alice.m@example.com"}
                ).status_code
            )
        assert links.count(429) == 3  # five an hour, shared
    finally:
        for key in server.scan_iter("LIMITS:*"):
            server.delete(key)
        server.close()


def test_a_default_limit_set_by_the_operator_applies_to_every_page(make_app):
    # The portal's own limits sit on its views; PORTAL_RATELIMIT_DEFAULT adds one to every page.
    from portal.web.extensions import limiter

    try:
        client = make_app(RATELIMIT_DEFAULT="3 per minute").test_client()
        answers = [client.get("/policy").status_code for _ in range(4)]
    finally:
        limiter.limit_manager.set_default_limits([])  # one limiter per process: the next app's config sets its own
    assert answers == [200, 200, 200, 429]


def test_without_a_default_limit_pages_are_not_counted(make_app):
    client = make_app().test_client()
    answers = {client.get("/policy").status_code for _ in range(40)}
    assert answers == {200}
