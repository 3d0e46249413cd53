"""Passkeys in the real Chromium: registered and used through the DevTools WebAuthn domain's
virtual authenticator (reached from Playwright's CDP session), checked by py_webauthn on the server."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts.models import SecurityEvent, WebAuthnCredential
from portal.core.vocabulary import StaffRole
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_browser_journey import ARTIFACTS

pytestmark = [pytest.mark.browser]


def _sign_in_with_password(page, base: str) -> None:
    page.goto(f"{base}/staff/login")
    page.fill("#email", "admin@example.com")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_an_admin_registers_a_passkey_and_signs_in_with_it(app, db_session, browser, live_server):
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    app.config["STAFF_MFA"] = "admins"  # the default: admins need a second factor
    # WebAuthn needs a secure context and a domain for the relying party: localhost is both.
    base = live_server.replace("127.0.0.1", "localhost")
    app.config["BASE_URL"] = base
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]
    try:
        _sign_in_with_password(page, base)
        page.wait_for_url(f"{base}/staff/security")  # nothing else opens before a second factor exists
        page.fill("#passkey-name", "Virtual key")
        page.click("#passkey-register")
        page.wait_for_selector("text=The passkey was added.")
        page.screenshot(path=str(ARTIFACTS / "staff-passkey-added.png"), full_page=True)
        stored = db_session.scalars(select(WebAuthnCredential)).all()
        assert [c.name for c in stored] == ["Virtual key"]
        in_browser = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        assert len(in_browser) == 1
        assert page.goto(f"{base}/staff/users").url == f"{base}/staff/users"

        page.click("text=Sign out")
        _sign_in_with_password(page, base)
        page.wait_for_url(f"{base}/staff/login/second-factor")
        assert page.goto(f"{base}/staff/users").url.startswith(
            f"{base}/staff/login"
        )  # the password alone is not enough
        _sign_in_with_password(page, base)
        page.wait_for_url(f"{base}/staff/login/second-factor")
        page.click("#passkey-signin")
        page.wait_for_url(f"{base}/staff/queue")
        assert page.goto(f"{base}/staff/users").url == f"{base}/staff/users"
        db_session.expire_all()
        assert db_session.scalar(select(WebAuthnCredential.sign_count)) >= 1
        details = [e.detail for e in db_session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "sign_in"))]
        assert details[-1] == "with second factor"

        # Removing the authenticator: the passkey cannot be used any more, and the page says so.
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        page.click("text=Sign out")
        _sign_in_with_password(page, base)
        page.wait_for_url(f"{base}/staff/login/second-factor")
    finally:
        context.close()
    assert errors == []
