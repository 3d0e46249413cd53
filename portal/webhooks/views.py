"""The Stripe and Paddle endpoints: verify the signature against the raw body, then store and act once."""
from __future__ import annotations

import json

import stripe
from flask import Blueprint, abort, current_app, jsonify, request
from paddle_billing.Notifications import Secret, Verifier

from portal.core.database import utcnow
from portal.refunds import paddle_events, reconciliation
from portal.web.extensions import db
from portal.web.links import links
from portal.web.payments import current_fees

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/stripe")
def stripe_webhook():
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        abort(404)  # not configured: there is no endpoint to talk to
    payload = request.get_data()  # the raw bytes: the signature is over exactly these
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, request.headers.get("Stripe-Signature"), secret,
                                              int(current_app.config["STRIPE_WEBHOOK_TOLERANCE"]))
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError):
        return jsonify(error="The signature does not match this body, or it is too old."), 400
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        return jsonify(error="Not a Stripe event."), 400
    outcome = reconciliation.receive(db.session, event, now=utcnow(), links=links(), fees=current_fees())
    db.session.commit()
    return jsonify(received=True, outcome=outcome)


@bp.post("/paddle")
def paddle_webhook():
    """Paddle Billing's notifications, verified by the SDK's ``Verifier`` against the raw body."""
    secret = current_app.config["PADDLE_WEBHOOK_SECRET"]
    if not secret:
        abort(404)
    try:
        verified = Verifier(maximum_variance=int(current_app.config["PADDLE_WEBHOOK_TOLERANCE"])).verify(
            request, Secret(secret))
        event = json.loads(request.get_data().decode("utf-8")) if verified else None
    except (UnicodeDecodeError, ValueError, ConnectionRefusedError):
        event = None
    if event is None:
        return jsonify(error="The signature does not match this body, or it is too old."), 400
    if not isinstance(event, dict) or not event.get("event_id") or not event.get("event_type"):
        return jsonify(error="Not a Paddle notification."), 400
    outcome = paddle_events.receive(db.session, event, now=utcnow(), links=links(), fees=current_fees())
    db.session.commit()
    return jsonify(received=True, outcome=outcome)
