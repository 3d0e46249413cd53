"""Staff accounts and a signed-in staff browser for the tests."""
from __future__ import annotations

import re

from portal.accounts import create_staff
from portal.domain import StaffRole
from tests.conftest import csrf_token

PASSWORD = "correct horse battery staple"


def make_staff(session, email: str = "agent@example.com", role: StaffRole = StaffRole.AGENT, name: str = ""):
    return create_staff(session, email, role, PASSWORD, name or email.split("@")[0].title())


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
