"""Portal sessions: a SaaS's own app opens an order's page signed in as its customer.

Like Stripe's billing-portal sessions: the SaaS's backend asks for one with an API token that has
the ``portal_sessions`` permission and redirects its user's browser to the URL. The URL is valid
for a few minutes and opens once; only its SHA-256 is stored. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.core.tokens import hash_token, new_token
from portal.orders.models import Order, PortalSession

LOCALES = ("en", "zh", "nl")


class PortalSessionError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Opened:
    record: PortalSession
    token: str  # shown once, in the URL


def safe_return_url(url: str, base_url: str) -> bool:
    """Only https addresses, or the portal's own (which may be plain http in development)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password or any(c in url for c in "\r\n\t\\ "):
        return False
    if parts.scheme == "https":
        return True
    own = urlsplit(base_url)
    return (parts.scheme, parts.netloc) == (own.scheme, own.netloc)


def open_session(
    session: Session,
    order_number: str,
    *,
    api_token_id: int | None,
    locale: str | None,
    return_url: str | None,
    base_url: str,
    now: datetime,
    lifetime: timedelta,
) -> Opened:
    order = session.scalar(select(Order).where(Order.order_number == order_number.strip()))
    if order is None:
        raise PortalSessionError("order_number", N_("There is no order with this number."))
    if locale is not None and locale not in LOCALES:
        raise PortalSessionError("locale", N_("Choose en, zh or nl."))
    if return_url is not None and not safe_return_url(return_url, base_url):
        raise PortalSessionError("return_url", N_("The return URL must be an https:// address."))
    token, token_hash = new_token()
    record = PortalSession(
        order=order,
        token_hash=token_hash,
        api_token_id=api_token_id,
        locale=locale,
        return_url=return_url,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(record)
    session.flush()
    return Opened(record, token)


def redeem(session: Session, token: str, *, now: datetime, client: str) -> PortalSession | None:
    """The session for a valid, unused, unexpired token, marked used; a second use finds nothing."""
    record = session.scalar(select(PortalSession).where(PortalSession.token_hash == hash_token(token)))
    if record is None or record.used_at is not None or record.expires_at <= now:
        return None
    used = session.execute(
        update(PortalSession)
        .where(PortalSession.id == record.id, PortalSession.used_at.is_(None))
        .values(used_at=now, used_by_client=client[:64])
        .execution_options(synchronize_session=False)
    )
    assert isinstance(used, CursorResult)  # an UPDATE's result; typed as a plain Result
    if used.rowcount != 1:
        return None
    session.refresh(record)
    return record
