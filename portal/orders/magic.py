"""“Email me a link to all my orders”: single-use, 30 minutes, stored only as a hash."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from portal.core.tokens import hash_token, new_token
from portal.orders.models import Customer, MagicLink, MagicLinkRequest
from portal.outbox.queue import queue_email

LIFETIME = timedelta(minutes=30)
SESSION_KEY = "magic_link_token"


def ask_for_magic_link(session: Session, email: str, *, locale: str, now: datetime) -> None:
    """Record the request, the same one write for any address; ``process_requests`` (the worker)
    sends a link only where there are orders. The web request never looks the address up, so its
    timing cannot tell who is a customer."""
    session.add(
        MagicLinkRequest(email_normalized=Customer.normalize_email(email)[:320], locale=locale[:8], created_at=now)
    )
    session.flush()


def process_requests(session: Session, *, base_url: str, now: datetime, limit: int = 500) -> int:
    """Turn waiting requests into links and emails for addresses with orders; returns how many were sent."""
    sent = 0
    waiting = list(
        session.scalars(
            select(MagicLinkRequest)
            .where(MagicLinkRequest.processed_at.is_(None))
            .order_by(MagicLinkRequest.id)
            .limit(limit)
        )
    )
    for waiting_request in waiting:
        waiting_request.processed_at = now
        sent += send_magic_link(
            session, waiting_request.email_normalized, base_url=base_url, locale=waiting_request.locale, now=now
        )
    # Handled requests are kept a day (for support's questions), then forgotten.
    session.execute(delete(MagicLinkRequest).where(MagicLinkRequest.processed_at < now - timedelta(days=1)))
    return sent


def send_magic_link(session: Session, email: str, *, base_url: str, locale: str, now: datetime) -> bool:
    """Queue a link if the address has orders."""
    customer = session.scalar(select(Customer).where(Customer.email_normalized == Customer.normalize_email(email)))
    if customer is None:
        return False
    token, token_hash = new_token()
    session.add(MagicLink(customer=customer, token_hash=token_hash, created_at=now, expires_at=now + LIFETIME))
    # The customer's own language, not the language of whoever typed the address.
    queue_email(
        session,
        "magic_link",
        customer.email,
        customer.locale or locale,
        {
            "customer_name": customer.name,
            "link": f"{base_url}/access/{token}",
            "expires_minutes": int(LIFETIME.total_seconds() // 60),
        },
        domain=base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0],
    )
    session.flush()
    return True


def redeem(session: Session, token: str, *, now: datetime) -> Customer | None:
    """Exchange a valid, unused, unexpired token for its customer; a second use finds nothing."""
    link = session.scalar(select(MagicLink).where(MagicLink.token_hash == hash_token(token)))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    # Compare-and-set, so two tabs racing with the same link cannot both get in.
    used = session.execute(
        update(MagicLink)
        .where(MagicLink.id == link.id, MagicLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(used, CursorResult)  # an UPDATE's result; typed as a plain Result
    return link.customer if used.rowcount == 1 else None
