"""Alerts for staff about problems no customer caused. No Flask here.

Raised when the processor refuses the portal's own request (a rejected or under-privileged key,
a charge already refunded or disputed), when a refund appears beyond what was paid, or when an
event arrives in a shape the portal does not read. Each is logged at WARNING for the operator's
log monitoring, stored for the staff pages until resolved, and never emailed to a customer. The
same open alert is not raised twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.orders.models import Order
from portal.refunds.models import RefundRequest, StaffAlert

log = logging.getLogger("portal.alerts")

CREDENTIALS = "processor_refused"
OVER_REFUND = "over_refund"
EVENT_REFUSED = "event_refused"


def raise_alert(
    session: Session,
    kind: str,
    message: str,
    *,
    now: datetime,
    request: RefundRequest | None = None,
    order: Order | None = None,
) -> StaffAlert:
    request_id = request.id if request is not None else None
    existing = session.scalar(
        select(StaffAlert).where(
            StaffAlert.kind == kind,
            StaffAlert.message == message,
            StaffAlert.resolved_at.is_(None),
            StaffAlert.refund_request_id.is_(None)
            if request_id is None
            else StaffAlert.refund_request_id == request_id,
        )
    )
    if existing is not None:
        return existing
    log.warning("staff alert [%s]%s: %s", kind, f" {request.reference}" if request is not None else "", message)
    alert = StaffAlert(
        kind=kind,
        message=message[:4000],
        refund_request_id=request_id,
        order_id=order.id if order is not None else (request.order_id if request is not None else None),
        created_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def open_alerts(session: Session, *, request: RefundRequest | None = None, limit: int = 50) -> list[StaffAlert]:
    query = select(StaffAlert).where(StaffAlert.resolved_at.is_(None))
    if request is not None:
        query = query.where((StaffAlert.refund_request_id == request.id) | (StaffAlert.order_id == request.order_id))
    return list(session.scalars(query.order_by(StaffAlert.id.desc()).limit(limit)))
