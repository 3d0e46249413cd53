"""What every payment processor's events share: stored once by their id, marked handled (or
waiting for their order), and the waiting ones replayed once their order arrives. Each provider
(``reconciliation`` for Stripe, ``paddle_events`` for Paddle) reads its own payloads. No Flask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.refunds.models import ProcessorEvent


def store_once(
    session: Session,
    *,
    provider: str,
    event_id: str,
    kind: str,
    charge: str,
    occurred_at: datetime,
    payload: dict[str, Any],
    now: datetime,
) -> ProcessorEvent | None:
    """Store the event; None when it was stored before (a redelivery)."""
    stored = ProcessorEvent(
        provider=provider,
        event_id=event_id,
        type=kind[:64],
        charge=charge[:255],
        occurred_at=occurred_at,
        payload=payload,
        received_at=now,
    )
    session.add(stored)
    try:
        session.flush()
    except IntegrityError:
        # Stored before (a redelivery, or the same event racing itself). A failed flush leaves the
        # transaction unusable, and this event is all it held, so it is rolled back.
        session.rollback()
        return None
    return stored


def finish(stored: ProcessorEvent, outcome: str, *, now: datetime) -> str:
    """Note what the event did; one still waiting for its charge's order stays unhandled."""
    if not outcome.startswith("waiting"):
        stored.processed_at = now
    stored.outcome = outcome[:2000]
    return outcome


def replay_waiting(
    session: Session,
    order_event: ProcessorEvent,
    *,
    order_events: Iterable[str],
    act: Callable[[ProcessorEvent], str],
) -> str:
    """The events that came before their charge's order, handled now in the order the processor made them."""
    waiting = session.scalars(
        select(ProcessorEvent)
        .where(
            ProcessorEvent.provider == order_event.provider,
            ProcessorEvent.charge == order_event.charge,
            ProcessorEvent.processed_at.is_(None),
            ProcessorEvent.id != order_event.id,
            ProcessorEvent.type.not_in(tuple(order_events)),
        )
        .order_by(ProcessorEvent.occurred_at, ProcessorEvent.id)
    ).all()
    for event in waiting:
        act(event)
    return f"; {len(waiting)} waiting event(s) handled" if waiting else ""
