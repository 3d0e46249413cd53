"""POST /api/v1/portal-sessions: a SaaS backend opens an order's page signed in as its customer."""

import json

import pytest
from sqlalchemy import select

from portal.orders.models import PortalSession
from tests.journey_helpers import import_samples
from tests.staff_helpers import make_staff

pytestmark = pytest.mark.usefixtures("frozen")


def token(runner, *permissions):
    args = ["staff", "token", "agent@example.com", "--name", "saas"]
    for permission in permissions:
        args += ["--permission", permission]
    return runner.invoke(args=args).output.strip().splitlines()[-1]


def open_session(client, bearer, **body):
    return client.post(
        "/api/v1/portal-sessions",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {bearer}"},
    )


def test_a_one_time_url_opens_the_order_signed_in_with_a_way_back(app, runner, db_session):
    import_samples(db_session)
    make_staff(db_session, "agent@example.com")
    db_session.commit()
    api = app.test_client()
    # A token without the permission (every token made before permissions existed) is refused.
    assert open_session(api, token(runner), order_number="ORD-20001").status_code == 403
    bearer = token(runner, "portal_sessions")
    assert open_session(api, bearer, order_number="ORD-20001", return_url="http://evil.example/").status_code == 422
    answer = open_session(
        api, bearer, order_number="ORD-20001", locale="zh", return_url="https://app.example.com/billing"
    )
    assert answer.status_code == 201, answer.json
    url = answer.json["url"]
    record = db_session.scalar(select(PortalSession))
    assert url.rsplit("/", 1)[1] not in record.token_hash  # stored hashed only

    browser = app.test_client()
    opened = browser.get(url.replace("http://portal.test", ""))
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/orders/ORD-20001")
    page = browser.get("/orders/ORD-20001")
    assert page.status_code == 200 and 'href="https://app.example.com/billing"' in page.get_data(as_text=True)
    assert 'lang="zh-Hans"' in page.get_data(as_text=True)
    # Single use: a second opening (another browser) is refused and signs nobody in.
    other = app.test_client()
    assert other.get(url.replace("http://portal.test", "")).status_code == 410
    assert other.get("/orders/ORD-20001").status_code == 404
    db_session.expire_all()
    assert db_session.scalar(select(PortalSession)).used_at is not None
