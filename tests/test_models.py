from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.core.database import Base, in_models
from portal.core.tokens import new_token
from portal.core.vocabulary import Actor, Reason, RequestState
from portal.orders.importing import import_orders
from portal.refunds.models import AppendOnlyError, RefundRequest, StatusEvent
from portal.web.extensions import db


def test_migrations_create_exactly_the_models(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": in_models})
        assert compare_metadata(context, Base.metadata) == []


def _request(session, data_dir) -> RefundRequest:
    with open(data_dir / "orders.csv", encoding="utf-8", newline="") as f:
        import_orders(session, f)
    from sqlalchemy import select

    from portal.orders.models import Order

    order = session.scalar(select(Order).where(Order.order_number == "ORD-10001"))
    request = RefundRequest(
        order=order,
        reason=Reason.NO_LONGER_NEEDED,
        currency="USD",
        amount_requested_minor=2900,
        locale="en",
        tracking_token_hash=new_token()[1],
    )
    session.add(request)
    session.add(StatusEvent(refund_request=request, actor=Actor.CUSTOMER, to_state=RequestState.RECEIVED))
    session.commit()
    return request


def test_references_are_unguessable_and_readable(db_session, data_dir):
    request = _request(db_session, data_dir)
    assert request.reference.startswith("RF-") and len(request.reference) == 11
    assert not set(request.reference[3:]) & set("01ILOU")


def test_the_timeline_is_append_only(db_session, data_dir):
    request = _request(db_session, data_dir)
    event = request.events[0]
    event.note = "rewritten"
    with pytest.raises(AppendOnlyError):
        db_session.commit()
    db_session.rollback()
    db_session.delete(request.events[0])
    with pytest.raises(AppendOnlyError):
        db_session.commit()


def test_a_request_keeps_the_decision_it_was_filed_under(db_session, data_dir, tmp_path):
    from datetime import datetime

    from portal.policy import DEFAULT_POLICY, evaluate, load_policy

    request = _request(db_session, data_dir)
    filed_at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    decision = evaluate(request.order, load_policy(), filed_at, request.reason)
    request.record_decision(decision)
    db_session.commit()

    stricter = tmp_path / "stricter.toml"
    stricter.write_text(DEFAULT_POLICY.read_text().replace("full_refund_days = 14", "full_refund_days = 3"))
    assert evaluate(request.order, load_policy(stricter), filed_at, request.reason).outcome.value == "refused"

    db_session.expire_all()
    kept = db_session.get(RefundRequest, request.id)
    assert kept.policy_version == "2026-01"
    assert kept.decision_at_filing == decision and kept.decision_at_filing.outcome.value == "full"
