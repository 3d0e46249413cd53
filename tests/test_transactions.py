"""One commit per change, at the boundary: what a crash or a wrong email declaration leaves behind."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.core import idempotency
from portal.core.vocabulary import RequestState, StaffRole
from portal.outbox import queue as outbox_queue
from portal.outbox.kit import MessageSpec, Variable
from portal.outbox.models import OutboxMessage
from portal.refunds.models import RefundRequest, StatusEvent
from tests.journey_helpers import import_samples
from tests.staff_helpers import make_staff, sign_in, staff_post
from tests.test_api import Api, filed, new_token

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


def approvals(session) -> int:
    return session.scalar(select(func.count(StatusEvent.id)).where(StatusEvent.to_state == RequestState.APPROVED))


def test_an_api_write_and_its_idempotent_answer_are_committed_together(app, runner, db_session, frozen, monkeypatch):
    import_samples(db_session)
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    api = Api(app.test_client(), new_token(runner, "agent@example.com"))
    reference = filed(app)

    def dies_before_answering(*args, **kwargs):
        raise RuntimeError("the worker died between the write and its answer")

    # The worker dies after the approval ran but before the answer was stored: neither may stay.
    with monkeypatch.context() as patched:
        patched.setattr(idempotency, "store", dies_before_answering)
        with pytest.raises(RuntimeError):
            api.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "k-1"})
    db_session.expire_all()
    assert (
        db_session.scalar(select(RefundRequest.state).where(RefundRequest.reference == reference))
        is RequestState.RECEIVED
    )
    assert approvals(db_session) == 0

    # The client retries with the same key once the abandoned claim has lapsed: the approval runs once.
    frozen.shift(idempotency.ABANDONED_AFTER + timedelta(seconds=1))
    again = api.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json["state"] == "approved"
    replay = api.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "k-1"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json == again.json
    db_session.expire_all()
    assert approvals(db_session) == 1


def test_an_email_that_does_not_fit_its_declaration_fails_the_action_not_the_delivery(app, db_session, monkeypatch):
    import_samples(db_session)
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    reference = filed(app)
    queued_before = db_session.scalar(select(func.count(OutboxMessage.id)))
    real = outbox_queue.specs_in(outbox_queue.resource_dir("emails"))
    # Marketing declared a new variable for the approval email that the code does not send yet.
    approval = real["approval"]
    changed = {
        **real,
        "approval": MessageSpec(
            approval.name, approval.description, {**approval.variables, "coupon": Variable("coupon", "text", "X")}
        ),
    }
    monkeypatch.setattr(outbox_queue, "specs_in", lambda root: changed)

    staff = app.test_client()
    sign_in(staff, "agent@example.com")
    with pytest.raises(Exception, match="missing variable\\(s\\) coupon"):
        staff_post(
            staff, f"/staff/requests/{reference}/approve", f"/staff/requests/{reference}", amount="29.00", note=""
        )
    # Nothing of the approval was committed: no state change, no timeline event, no email queued.
    db_session.expire_all()
    assert (
        db_session.scalar(select(RefundRequest.state).where(RefundRequest.reference == reference))
        is RequestState.RECEIVED
    )
    assert approvals(db_session) == 0
    assert db_session.scalar(select(func.count(OutboxMessage.id))) == queued_before
