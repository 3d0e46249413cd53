"""One outgoing webhook endpoint (admins): its delivery log, a test event, and rotating its secret."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.outbox import webhooks as outgoing
from portal.outbox.models import WebhookSubscription
from portal.staff import bp
from portal.staff.auth import roles_required
from portal.staff.forms import ActionForm
from portal.web.extensions import db
from portal.web.i18n import moment


def _endpoint(subscription_id: int) -> WebhookSubscription:
    return db.session.get(WebhookSubscription, subscription_id) or abort(404)


def _page(subscription: WebhookSubscription, *, new_secret: str | None = None, status: int = 200):
    now = utcnow()
    overlap_until = subscription.previous_secret_until
    return render_template(
        "staff/webhook.html",
        e=subscription,
        deliveries=outgoing.deliveries(db.session(), subscription, limit=50),
        overlap_until=overlap_until if overlap_until is not None and overlap_until > now else None,
        new_secret=new_secret,
        action_form=ActionForm(),
        moment=moment,
    ), status


@bp.get("/webhooks/<int:subscription_id>")
@roles_required(StaffRole.ADMIN)
def webhook_detail(subscription_id: int):
    return _page(_endpoint(subscription_id))


@bp.post("/webhooks/<int:subscription_id>/test")
@roles_required(StaffRole.ADMIN)
def webhook_test(subscription_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    subscription = _endpoint(subscription_id)
    if not subscription.active:
        abort(409)
    delivery = outgoing.send_test(
        db.session(), subscription, now=utcnow(), timeout=float(current_app.config["WEBHOOK_TIMEOUT"])
    )
    db.session.commit()
    if delivery.status_code is not None and 200 <= delivery.status_code < 300:
        flash(
            _(
                "The endpoint accepted the test event: HTTP %(code)s in %(ms)s ms.",
                code=delivery.status_code,
                ms=delivery.duration_ms,
            ),
            "success",
        )
    elif delivery.status_code is not None:
        flash(_("The endpoint answered the test event with HTTP %(code)s.", code=delivery.status_code), "error")
    else:
        flash(_("The endpoint did not answer the test event: %(error)s", error=delivery.error), "error")
    return redirect(url_for("staff.webhook_detail", subscription_id=subscription.id), code=303)


@bp.post("/webhooks/<int:subscription_id>/rotate")
@roles_required(StaffRole.ADMIN)
def webhook_rotate(subscription_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    subscription = _endpoint(subscription_id)
    if not subscription.active:
        abort(409)
    hours = float(current_app.config["WEBHOOK_SECRET_OVERLAP_HOURS"])
    outgoing.rotate_secret(db.session(), subscription, now=utcnow(), overlap=timedelta(hours=hours))
    db.session.commit()
    # The new secret is shown once, on the answer to the form that made it.
    return _page(subscription, new_secret=subscription.secret)
