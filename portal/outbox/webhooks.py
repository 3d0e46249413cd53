"""Outgoing webhooks: signed JSON events for every state change, delivered through the outbox.

An admin registers an endpoint and gets its secret once. Each event (``portal.refunds.notifications``
sends every state change) queues one outbox message per active endpoint in the transaction that
made the change; the outbox worker posts
it and retries with the same backoff as emails. The event id stays the same across retries,
so the subscriber can ignore a repeat. No Flask here.

Signatures: per the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, made with the
``standardwebhooks`` library), so receivers verify with a stock library in any language; and, for
one deprecation period, the older ``Portal-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the secret>``. After a secret is rotated, both headers carry a second signature
made with the old secret until the overlap ends, so a receiver that still has the old one accepts
the event; every attempt is logged (``WebhookDelivery``) with its status code and time taken.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session
from standardwebhooks import Webhook

from portal.core.markers import N_
from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage, WebhookDelivery, WebhookSubscription
from portal.outbox.worker import PermanentFailure, TemporaryFailure

log = structlog.get_logger(__name__)

STATE_CHANGED = "refund_request.state_changed"
TEST_EVENT = "portal.test"
SIGNATURE_HEADER = "Portal-Signature"  # deprecated: kept while receivers move to the standard headers


class SubscriptionError(ValueError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def subscribe(
    session: Session, url: str, description: str, *, created_by: int | None, now: datetime, require_https: bool
) -> WebhookSubscription:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SubscriptionError(N_("Enter the endpoint's full address, starting with https://."))
    if require_https and parts.scheme != "https":
        raise SubscriptionError(N_("Endpoints must use https://."))
    subscription = WebhookSubscription(
        url=url,
        description=description.strip()[:200],
        secret=new_secret(),
        active=True,
        created_by_id=created_by,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    return subscription


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in standard base64, the form Standard Webhooks' libraries decode."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def deactivate(session: Session, subscription: WebhookSubscription) -> None:
    subscription.active = False
    # What was queued for it will not be wanted any more.
    for message in session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.webhook_subscription_id == subscription.id, OutboxMessage.status == OutboxStatus.PENDING
        )
    ):
        message.status = OutboxStatus.DEAD
        message.last_error = "endpoint deactivated"
    session.flush()


def queue_event(
    session: Session, event_type: str, data: dict[str, Any], *, at: datetime, refund_request_id: int | None = None
) -> None:
    """Queue the event for every active endpoint, in the caller's transaction."""
    subscriptions = session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True))).all()
    for subscription in subscriptions:
        event_id = "evt_" + uuid.uuid4().hex
        session.add(
            OutboxMessage(
                channel="webhook",
                webhook_subscription=subscription,
                message=event_type,
                recipient=subscription.url,
                locale="en",
                refund_request_id=refund_request_id,
                variables={"id": event_id, "type": event_type, "created": at.isoformat(), "data": data},
                status=OutboxStatus.PENDING,
                attempts=0,
                message_id=event_id,
            )
        )


def body_of(message: OutboxMessage) -> bytes:
    # The same bytes on every attempt: the body is the stored event, serialized one way.
    return json.dumps(message.variables, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_secrets(subscription: WebhookSubscription, now: datetime) -> list[str]:
    """The current secret, then the previous one while a rotation's overlap lasts."""
    keys = [subscription.secret]
    until = subscription.previous_secret_until
    if subscription.previous_secret and until is not None and now < until:
        keys.append(subscription.previous_secret)
    return keys


def rotate_secret(
    session: Session, subscription: WebhookSubscription, *, now: datetime, overlap: timedelta
) -> WebhookSubscription:
    """A new secret at once; the old one keeps signing beside it (a second signature) for ``overlap``."""
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = now + overlap
    subscription.secret = new_secret()
    session.flush()
    return subscription


def signature(secret: str | list[str], timestamp: int, body: bytes) -> str:
    """``t=<time>,v1=<hex>``, with one ``v1`` per secret (two during a rotation's overlap)."""
    keys = [secret] if isinstance(secret, str) else secret
    macs = [
        hmac.new(k.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest() for k in keys
    ]
    return f"t={timestamp}," + ",".join(f"v1={mac}" for mac in macs)


def standard_headers(secret: str | list[str], event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery: ``webhook-signature`` lists one ``v1,…`` per
    secret, separated by spaces, as the specification allows for rotations."""
    keys = [secret] if isinstance(secret, str) else secret
    when = datetime.fromtimestamp(timestamp, UTC)
    signed = " ".join(Webhook(k).sign(event_id, when, body.decode("utf-8")) for k in keys)
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp), "webhook-signature": signed}


def verify(secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a subscriber does with the header (and what the tests do): any ``v1`` made with its secret."""
    pairs = [p.split("=", 1) for p in header.split(",") if "=" in p]
    try:
        timestamp = int(next((v for k, v in pairs if k == "t"), ""))
    except ValueError:
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for k, v in pairs if k == "v1")


def post(
    subscription: WebhookSubscription,
    event_id: str,
    event_type: str,
    body: bytes,
    *,
    timeout: float,
    outbox_message_id: int | None = None,
) -> tuple[WebhookDelivery, requests.Response | None]:
    """POST one signed event and record the delivery (status code, time taken, error) in the
    endpoint's log, in the session the endpoint belongs to."""
    now = int(time.time())
    keys = signing_secrets(subscription, datetime.fromtimestamp(now, UTC))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "refund-portal-webhooks/1",
        **standard_headers(keys, event_id, now, body),
        SIGNATURE_HEADER: signature(keys, now, body),
        "Portal-Event-Id": event_id,
        "Portal-Event-Type": event_type,
    }
    started = time.perf_counter()
    answer: requests.Response | None = None
    error = ""
    try:
        answer = requests.post(subscription.url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as problem:
        error = f"{type(problem).__name__}: {problem}"
    delivery = WebhookDelivery(
        webhook_subscription_id=subscription.id,
        outbox_message_id=outbox_message_id,
        event_id=event_id,
        event_type=event_type,
        status_code=answer.status_code if answer is not None else None,
        duration_ms=round((time.perf_counter() - started) * 1000),
        error=error[:2000] if error else ("" if answer is None or answer.ok else answer.text[:500]),
        created_at=datetime.now(UTC),
    )
    session = object_session(subscription)
    if session is not None:
        session.add(delivery)
    return delivery, answer


def deliver(message: OutboxMessage, *, timeout: float) -> None:
    """POST the event; raise TemporaryFailure to retry later or PermanentFailure to give up."""
    subscription = message.webhook_subscription
    if subscription is None or not subscription.active:
        raise PermanentFailure("the endpoint is no longer active")
    delivery, answer = post(
        subscription,
        message.message_id,
        message.message,
        body_of(message),
        timeout=timeout,
        outbox_message_id=message.id,
    )
    if answer is None:
        raise TemporaryFailure(delivery.error)
    if 200 <= answer.status_code < 300:
        log.info("webhook delivered", url=subscription.url, status=answer.status_code, event_id=message.message_id)
        return
    log.warning("webhook refused", url=subscription.url, status=answer.status_code, event_id=message.message_id)
    if answer.status_code == 410:  # the subscriber says the endpoint is gone for good
        session = object_session(message)
        if session is not None:  # stop sending it anything: the endpoint shows as inactive to admins
            deactivate(session, subscription)
        log.warning("webhook endpoint gone: deactivated", url=subscription.url)
        raise PermanentFailure("410 Gone: the endpoint was deactivated")
    raise TemporaryFailure(f"HTTP {answer.status_code}: {answer.text[:200]}")


def send_test(session: Session, subscription: WebhookSubscription, *, now: datetime, timeout: float) -> WebhookDelivery:
    """Post a ``portal.test`` event at once (not through the outbox, so the admin sees the answer),
    signed like every event; the delivery is logged with the others."""
    event_id = "evt_" + uuid.uuid4().hex
    event = {
        "id": event_id,
        "type": TEST_EVENT,
        "created": now.isoformat(),
        "data": {"message": "A test event from the refund portal: your endpoint receives and can verify events."},
    }
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    delivery, _ = post(subscription, event_id, TEST_EVENT, body, timeout=timeout)
    session.flush()
    return delivery


def deliveries(session: Session, subscription: WebhookSubscription, limit: int = 20) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_subscription_id == subscription.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
