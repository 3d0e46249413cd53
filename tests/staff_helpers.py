"""Staff accounts and a signed-in staff browser for the tests."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from portal.accounts.models import StaffUser
from portal.accounts.staff import create_staff
from portal.config import engine_options
from portal.core.vocabulary import StaffRole
from portal.policy import load_policy
from portal.refunds import acting, payouts
from portal.refunds.links import Links
from portal.refunds.models import RefundRequest
from portal.refunds.states import InvalidTransition
from portal.web.extensions import db
from tests.conftest import csrf_token
from tests.journey_helpers import file_request, lookup

PASSWORD = "correct horse battery staple"


def make_staff(session, email: str = "agent@example.com", role: StaffRole = StaffRole.AGENT, name: str = ""):
    user = create_staff(session, email, role, PASSWORD, name or email.split("@")[0].title())
    session.commit()
    return user


def sign_in(client, email: str, password: str = PASSWORD):
    token = csrf_token(client, "/staff/login")
    return client.post("/staff/login", data={"csrf_token": token, "email": email, "password": password})


def staff_post(client, url: str, page: str, /, **fields):
    """Post a form from a staff page the way a browser would: with the page's CSRF token."""
    html = client.get(page).get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    data = {"csrf_token": token}
    for key, value in fields.items():
        data[key] = value
    return client.post(url, data=data)


def approved_in_full(
    app, session, number: str = "ORD-10001", email: str = "alice.m@example.com", amount: str = "29.00"
):
    """The customer files for ``number`` and a signed-in agent approves ``amount``.

    Returns the agent's browser and the request's reference.
    """
    make_staff(session, "agent@example.com", StaffRole.AGENT)
    customer = app.test_client()
    lookup(customer, number, email)
    reference = file_request(customer, number).headers["Location"].rsplit("/", 1)[1]
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, f"{page}/approve", page, amount=amount).status_code == 303
    return agent, reference


def process_at_once(app, db_session, reference: str, gateway, callers: int = 20) -> list[str]:
    """``callers`` staff members press "process" on one request at the same instant, each with a
    connection of its own, as that many web workers would: "processed" or "409" for each."""
    with app.app_context():
        url = db.engine.url
    engine = create_engine(url, pool_size=callers, max_overflow=5, **engine_options(url.render_as_string(False)))
    request_id = db_session.scalar(select(RefundRequest.id).where(RefundRequest.reference == reference))
    user_id = db_session.scalar(select(StaffUser.id))
    links, policy = Links("http://portal.test", "secret"), load_policy(None)
    start = threading.Barrier(callers)
    outcomes: list[str] = []

    def caller() -> None:
        with Session(engine) as session:
            staff = acting.Staff(session.get(StaffUser, user_id), datetime.now(UTC), links, policy)
            start.wait()
            try:
                payouts.process_refund(session, request_id, staff, gateway)
                session.commit()
                outcomes.append("processed")
            except InvalidTransition:
                outcomes.append("409")

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engine.dispose()
    return outcomes
