"""The Stripe and Paddle endpoints: verify the signature against the raw body, then store and act once."""

from __future__ import annotations

import json

import stripe
import structlog
from flask import Blueprint, abort, current_app, jsonify, request
from paddle_billing.Notifications import Secret, Verifier

from portal.core import metrics
from portal.core.database import utcnow
from portal.refunds import alerts, paddle_events, reconciliation
from portal.web.extensions import db
from portal.web.links import links
from portal.web.payments import current_fees, stripe_livemode

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = structlog.get_logger(__name__)


@bp.post("/stripe")
def stripe_webhook():
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        abort(404)  # not configured: there is no endpoint to talk to
    payload = request.get_data()  # the raw bytes: the signature is over exactly these
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, request.headers.get("Stripe-Signature"), secret, int(current_app.config["STRIPE_WEBHOOK_TOLERANCE"])
        )
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError):
        metrics.PROCESSOR_EVENTS.labels("stripe", "unknown", "refused").inc()
        log.warning("processor event refused", provider="stripe", reason="bad or old signature")
        return jsonify(error="The signature does not match this body, or it is too old."), 400
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        metrics.PROCESSOR_EVENTS.labels("stripe", "unknown", "refused").inc()
        log.warning("processor event refused", provider="stripe", reason="not an event")
        return jsonify(error="Not a Stripe event."), 400
    problem = reconciliation.event_problem(
        event, api_version=str(current_app.config["STRIPE_API_VERSION"]), livemode=stripe_livemode()
    )
    if problem is not None:
        # Not stored and not acted on: an event in another version's shapes would be misread. Staff are
        # alerted; Stripe retries for days, so once the endpoint is fixed the event still arrives.
        alerts.raise_alert(db.session(), alerts.EVENT_REFUSED, problem, now=utcnow())
        db.session.commit()
        return jsonify(error=problem), 400
    outcome = reconciliation.receive(db.session(), event, now=utcnow(), links=links(), fees=current_fees())
    db.session.commit()
    kind = str(event["type"]) if str(event["type"]) in KNOWN_TYPES else "other"
    metrics.PROCESSOR_EVENTS.labels("stripe", kind, _outcome_class(str(outcome))).inc()
    log.info("processor event handled", provider="stripe", event_id=event["id"], type=event["type"], outcome=outcome)
    return jsonify(received=True, outcome=outcome)


def _outcome_class(outcome: str) -> str:
    """The reconciliation's sentence reduced to a label: duplicate, ignored, waiting or applied."""
    first = outcome.split(":", 1)[0].strip()
    return first if first in ("duplicate", "ignored", "waiting") else "applied"


# Event types named in the figures; any other is counted as "other" (Stripe has hundreds).
KNOWN_TYPES = (
    "charge.succeeded",
    "invoice.paid",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refunded",
    "charge.dispute.created",
)


@bp.post("/paddle")
def paddle_webhook():
    """Paddle Billing's notifications, verified by the SDK's ``Verifier`` against the raw body."""
    secret = current_app.config["PADDLE_WEBHOOK_SECRET"]
    if not secret:
        abort(404)
    try:
        verified = Verifier(maximum_variance=int(current_app.config["PADDLE_WEBHOOK_TOLERANCE"])).verify(
            request, Secret(secret)
        )
        event = json.loads(request.get_data().decode("utf-8")) if verified else None
    except (UnicodeDecodeError, ValueError, ConnectionRefusedError):
        event = None
    if event is None:
        return jsonify(error="The signature does not match this body, or it is too old."), 400
    if not isinstance(event, dict) or not event.get("event_id") or not event.get("event_type"):
        return jsonify(error="Not a Paddle notification."), 400
    outcome = paddle_events.receive(db.session(), event, now=utcnow(), links=links(), fees=current_fees())
    db.session.commit()
    return jsonify(received=True, outcome=outcome)
