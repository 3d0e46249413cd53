"""Routine work: a request left unanswered is closed after the reminder that said when, in the
customer's language, through its own transition."""

from datetime import timedelta

import pytest

from portal.core.vocabulary import Actor, RequestState, StaffRole
from tests.journey_helpers import latest_request, outbox
from tests.staff_console_helpers import act, filed
from tests.staff_helpers import make_staff, sign_in

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def agent(app, orders):
    make_staff(orders, "agent@example.com", StaffRole.AGENT)
    client = app.test_client()
    sign_in(client, "agent@example.com")
    return client


def test_an_unanswered_request_is_closed_after_the_reminder_that_said_so(app, agent, orders, frozen):
    reference = filed(app, locale="nl")
    act(agent, reference, "ask", questions=["what_went_wrong"])
    runner = app.test_cli_runner()
    frozen.shift(timedelta(days=3, minutes=1))
    runner.invoke(args=["outbox", "send"])
    [reminder] = [m for m in outbox(orders, "information_request") if m.variables["reminder"]]
    assert reminder.locale == "nl" and reminder.variables["closes_on"] == "2026-12-06"
    frozen.shift(timedelta(days=10))  # 13 days after asking: not yet
    runner.invoke(args=["automation", "run"])
    assert latest_request(orders).state is RequestState.AWAITING_CUSTOMER
    frozen.shift(timedelta(days=1))
    result = runner.invoke(args=["automation", "run"])
    assert "closed 1 unanswered request(s)" in result.output, result.output
    request = latest_request(orders)
    assert request.state is RequestState.CLOSED_UNANSWERED and request.resolved_at is not None
    assert request.events[-1].actor is Actor.SYSTEM
    [closed] = outbox(orders, "closed_unanswered")
    assert closed.locale == "nl" and closed.variables["asked_on"] == "2026-11-22"
    # The staff security log has it, by automation.
    from sqlalchemy import select

    from portal.accounts.models import SecurityEvent
    from portal.accounts.sessions import actor_name

    [logged] = orders.scalars(select(SecurityEvent).where(SecurityEvent.kind == "closed_unanswered")).all()
    assert actor_name(logged) == "automation"
    assert logged.detail == f"{reference}: closed, no answer to the question of 2026-11-22"
    # Once closed, nothing more happens to it.
    assert "closed" not in app.test_cli_runner().invoke(args=["automation", "run"]).output.split(";")[-1]


def test_no_close_without_the_reminder_first(app, agent, orders, frozen):
    from portal.core.database import utcnow
    from portal.refunds.links import Links
    from portal.refunds.routine import close_unanswered

    reference = filed(app)
    act(agent, reference, "ask", questions=["what_went_wrong"])
    frozen.shift(timedelta(days=20))
    assert close_unanswered(orders, now=utcnow(), links=Links("http://portal.test", "s")) == 0  # no reminder yet
    assert latest_request(orders).state is RequestState.AWAITING_CUSTOMER


def test_the_closed_email_renders_in_every_language(app):
    from portal.web.mail import email_kit

    with app.app_context():
        kit = email_kit()
        for locale in ("en", "zh", "nl"):
            rendered = kit.render(
                "closed_unanswered",
                locale,
                customer_name="Li",
                reference="RF-1",
                order_number="ORD-1",
                asked_on="2026-11-22",
                tracking_url="/track/x",
            )
            assert "RF-1" in rendered.subject
