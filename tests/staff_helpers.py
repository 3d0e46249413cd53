"""Staff accounts and a signed-in staff browser for the tests."""

from __future__ import annotations

import re

from portal.accounts.staff import create_staff
from portal.core.vocabulary import StaffRole
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
