"""Automation end to end: a routine request is approved by a rule after the cooling-off period and
refunded through the gateway with the usual emails; withdrawals, signals and the pause stop it."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.core.database import utcnow
from portal.core.vocabulary import Actor, RefundStatus, RequestState
from portal.orders.models import LookupFailure
from portal.refunds.automation.models import ActionStatus, AutomationAction
from portal.refunds.filing import withdraw_refund
from tests.journey_helpers import file_request, import_samples, latest_request, lookup, outbox
from tests.staff_helpers import make_staff, sign_in

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


@pytest.fixture
def auto_app(make_app, stripe_stub):
    return make_app(**stripe_stub.portal_settings())


@pytest.fixture
def filed(auto_app, stripe_stub, db_session):
    """ORD-10001 ($29.00 monthly, bought online 10 days ago) filed by its customer: a routine request."""
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    customer = auto_app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    reference = file_request(customer, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    return customer, reference


def run(app):
    result = app.test_cli_runner().invoke(args=["automation", "run"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_routine_request_is_refunded_by_its_rule_after_the_cooling_off_period(
    auto_app, filed, stripe_stub, db_session, frozen
):
    _customer, reference = filed
    assert "1 queued" in run(auto_app)
    [action] = db_session.scalars(select(AutomationAction)).all()
    assert (action.status, action.rule_id, action.amount_minor) == (ActionStatus.QUEUED, "routine-monthly", 2900)
    # Written in bulk (COPY on PostgreSQL): the due time reads back as the moment it was set for.
    assert action.due_at == latest_request(db_session).created_at + timedelta(minutes=60)
    frozen.shift(timedelta(minutes=59))
    run(auto_app)
    assert latest_request(db_session).state is RequestState.RECEIVED and stripe_stub.calls == 0
    frozen.shift(timedelta(minutes=2))
    assert "approved 1, refunded 1" in run(auto_app)
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and request.amount_approved_minor == 2900
    approval = next(e for e in request.events if e.to_state is RequestState.APPROVED)
    assert approval.actor is Actor.SYSTEM and approval.staff_user_id is None
    assert approval.note == f"approved by rule routine-monthly (policy version {request.policy_version})"
    [refund] = request.refunds
    assert (refund.status, refund.gateway, refund.staff_user_id) == (RefundStatus.SUCCEEDED, "stripe", None)
    assert refund.idempotency_key == f"refund-{reference}-attempt-1" and stripe_stub.refunded("ch_3QaB10001") == 2900
    assert refund.fee_kept_minor == 114  # 2.9 % of 29.00 + 0.30, as for a staff member's refund
    assert [m.message for m in outbox(db_session)] == ["acknowledgement", "approval", "refunded"]
    # A second round finds nothing more to do: one refund, ever.
    run(auto_app)
    assert stripe_stub.calls == 1


def test_the_api_and_the_staff_page_say_which_rule_approved(auto_app, filed, db_session, frozen):
    _customer, reference = filed
    run(auto_app)
    frozen.shift(timedelta(minutes=61))
    run(auto_app)
    make_staff(db_session, "agent@example.com")
    agent = auto_app.test_client()
    sign_in(agent, "agent@example.com")
    page = agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "approved by rule routine-monthly" in page
    from portal.accounts.staff import create_api_token

    _record, token = create_api_token(db_session, "agent@example.com", "helpdesk", now=utcnow())
    db_session.commit()
    body = (
        auto_app.test_client().get(f"/api/v1/requests/{reference}", headers={"Authorization": f"Bearer {token}"}).json
    )
    [approval] = [e for e in body["timeline"] if e["to_state"] == "approved"]
    assert approval["actor"] == "system"
    assert (
        approval["note"]
        == f"approved by rule routine-monthly (policy version {body['decision_at_filing']['policy_version']})"
    )


def test_a_customer_who_withdraws_during_the_cooling_off_period_is_not_refunded(
    auto_app, filed, stripe_stub, db_session, frozen
):
    run(auto_app)
    withdraw_refund(db_session, latest_request(db_session), now=utcnow())  # the customer's own service
    db_session.commit()
    frozen.shift(timedelta(minutes=61))
    run(auto_app)
    assert latest_request(db_session).state is RequestState.WITHDRAWN and stripe_stub.calls == 0
    action = db_session.scalars(select(AutomationAction)).one()
    assert action.status is ActionStatus.CANCELLED and "withdrawn" in action.outcome


def test_a_fraud_signal_raised_meanwhile_leaves_the_request_for_staff(auto_app, filed, stripe_stub, db_session, frozen):
    run(auto_app)
    db_session.add(LookupFailure(order_number="ORD-10001", client_hash="x" * 64))
    db_session.commit()
    frozen.shift(timedelta(minutes=61))
    run(auto_app)
    assert latest_request(db_session).state is RequestState.RECEIVED and stripe_stub.calls == 0
    action = db_session.scalars(select(AutomationAction)).one()
    assert action.status is ActionStatus.LEFT_FOR_STAFF and "fraud_signal" in action.outcome


def test_pausing_stops_everything_until_resumed(auto_app, filed, stripe_stub, db_session, frozen):
    runner = auto_app.test_cli_runner()
    assert runner.invoke(args=["automation", "pause"]).exit_code == 0
    frozen.shift(timedelta(minutes=61))
    assert "paused" in run(auto_app)
    assert db_session.scalars(select(AutomationAction)).all() == [] and stripe_stub.calls == 0
    assert runner.invoke(args=["automation", "resume"]).exit_code == 0
    run(auto_app)  # looked at now, due an hour after filing: already due
    assert latest_request(db_session).state is RequestState.REFUNDED


def test_a_request_outside_every_rule_is_left_for_staff_with_the_reasons(auto_app, stripe_stub, db_session):
    import_samples(db_session)
    customer = auto_app.test_client()
    lookup(customer, "ORD-10003", "bob.tanaka@example.org")  # annual, prorated: no rule covers annual plans
    file_request(customer, "ORD-10003")
    run(auto_app)
    action = db_session.scalars(select(AutomationAction)).one()
    assert action.status is ActionStatus.LEFT_FOR_STAFF
    assert "routine-monthly: plan" in action.outcome


def test_the_console_says_outcomes_and_conditions_in_words_and_names_no_server_path(
    auto_app, filed, db_session, frozen
):
    """Staff read what automation did and why in words, in their language; the rules file by its
    name, never the folder it sits in on the server."""
    from portal.refunds.automation.runner import explain
    from tests.conftest import csrf_token

    other = auto_app.test_client()
    lookup(other, "ORD-10003", "bob.tanaka@example.org")  # annual: routine-monthly refuses it by its plan
    file_request(other, "ORD-10003")
    run(auto_app)
    frozen.shift(timedelta(minutes=61))
    run(auto_app)  # ORD-10001 approved by its rule
    make_staff(db_session, "agent@example.com")
    agent = auto_app.test_client()
    sign_in(agent, "agent@example.com")
    page = agent.get("/staff/automation").get_data(as_text=True)
    recent = page[page.index('id="recent-title"') : page.index('id="simulate-title"')]
    assert "Approved by a rule" in recent and "Left for staff" in recent
    assert "<code>routine-monthly</code> Plan" in recent and "<code>billing-error-small</code> Policy outcome" in recent
    for raw in ("left_for_staff", "done", "approved", "routine-monthly: plan", "no rule matched"):
        assert raw not in recent, raw
    rules = page[page.index('id="rules-title"') : page.index('id="recent-title"')]
    assert "<code>default_automation.toml</code>" in rules and "/portal/policy/" not in page
    assert "Full refund, Prorated refund" in rules
    simulated = agent.post(
        "/staff/automation/simulate",
        data={"csrf_token": csrf_token(agent, "/staff/automation"), "since": "2026-11-01"},
    ).get_data(as_text=True)
    assert "Left for staff, by the first condition that failed:" in simulated and "Plan: 1" in simulated
    assert "<code>plan</code>" not in simulated
    # The same in Dutch and Chinese.
    agent.get("/language/nl")
    dutch = agent.get("/staff/automation").get_data(as_text=True)
    assert "Goedgekeurd door een regel" in dutch and "Overgelaten aan medewerkers" in dutch
    agent.get("/language/zh")
    chinese = agent.get("/staff/automation").get_data(as_text=True)
    assert "由规则批准" in chinese
    # What the page reads back from the records, which keep their one line of English.
    assert explain("no rule matched (no rules in force)").misses[0][1].value == "no rules"
    assert explain("not approved: the request is withdrawn").state is RequestState.WITHDRAWN
    assert explain("something new").text == "something new"


def test_the_security_log_names_the_rules_file_without_its_folder(auto_app, filed, db_session):
    run(auto_app)
    [detail] = [d for kind, _actor, d in _security_log(db_session) if kind == "automation_rules_changed"]
    assert detail.startswith("default_automation.toml: 1 version(s)") and "/" not in detail.split(";")[0]


def test_automation_check_names_each_problem(runner, tmp_path):
    from portal.policy.automation import DEFAULT_AUTOMATION

    assert runner.invoke(args=["automation", "check", str(DEFAULT_AUTOMATION)]).exit_code == 0
    bad = tmp_path / "rules.toml"
    bad.write_text(
        'schema = 1\n[[versions]]\nid = "v1"\neffective_from = 2026-01-01T00:00:00Z\n'
        '[[versions.rules]]\nid = "r"\nplans = ["weekly"]\nmax_amount = { ZZZ = "5" }\n'
        'outcomes = ["review"]\n'
    )
    result = runner.invoke(args=["automation", "check", str(bad)])
    assert result.exit_code == 1
    assert "version v1 › rule r › plans › 0" in result.output
    assert "version v1 › rule r › outcomes › 0" in result.output
    assert "'ZZZ' is not a currency code" in result.output


def _decline(session, reference, clause="eligibility"):
    from portal.refunds.models import RefundRequest, StatusEvent  # noqa: F401
    from portal.refunds.states import Action, transition

    request = session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    transition(session, request, Action.DECLINE, actor=Actor.STAFF)
    session.commit()


def test_simulation_counts_money_and_false_positives_by_rule_and_judges_an_unsaved_file(
    auto_app, stripe_stub, db_session, tmp_path
):
    from portal.refunds.models import RefundRequest

    import_samples(db_session)
    references = {}
    for number, email in (("ORD-10001", "alice.m@example.com"), ("ORD-10003", "bob.tanaka@example.org")):
        customer = auto_app.test_client()
        lookup(customer, number, email)
        references[number] = file_request(customer, number).headers["Location"].rsplit("/", 1)[1]
    _decline(db_session, references["ORD-10001"])  # staff said no to what the rule would approve
    runner = auto_app.test_cli_runner()
    result = runner.invoke(args=["automation", "simulate", "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert (
        "over 2 request(s)" in result.output
        and "would have automated 1 (29.00 USD); false positives 1" in result.output
    )
    assert "rule routine-monthly: 1 request(s), 29.00 USD; staff declined 1, reduced 0" in result.output
    assert f"declined: {references['ORD-10001']}" in result.output
    assert "plan 1" in result.output  # the annual request, left for staff by its plan
    # A change before it is saved: a rule for annual plans too, from a file that is not in force.
    wider = tmp_path / "wider.toml"
    wider.write_text(
        'schema = 1\n[[versions]]\nid = "next"\neffective_from = 2027-01-01T00:00:00Z\n'
        '[[versions.rules]]\nid = "any-plan"\nmax_amount = { USD = "600.00" }\n'
    )
    result = runner.invoke(args=["automation", "simulate", "--since", "2026-11-01", "--rules", str(wider)])
    assert "(version next)" in result.output and "rule any-plan: 2 request(s)" in result.output, result.output
    # Reading changed nothing.
    assert db_session.scalars(select(AutomationAction)).all() == []
    assert (
        db_session.scalar(select(RefundRequest.state).where(RefundRequest.reference == references["ORD-10003"]))
        is RequestState.RECEIVED
    )


def test_the_console_shows_the_rules_pauses_and_simulates_a_pasted_file(auto_app, filed, db_session):
    from portal.core.vocabulary import StaffRole
    from tests.conftest import csrf_token

    make_staff(db_session, "agent@example.com")
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    agent, admin, customer = auto_app.test_client(), auto_app.test_client(), auto_app.test_client()
    sign_in(agent, "agent@example.com")
    sign_in(admin, "admin@example.com")
    page = agent.get("/staff/automation").get_data(as_text=True)
    assert "routine-monthly" in page and "Pause all automation" not in page  # agents see, admins switch
    assert customer.get("/staff/automation").status_code in (302, 303)  # never shown to customers
    token = csrf_token(admin, "/staff/automation")
    assert admin.post("/staff/automation/switch", data={"csrf_token": token, "paused": "1"}).status_code == 303
    assert "Start automation again" in admin.get("/staff/automation").get_data(as_text=True)
    from portal.refunds.automation.runner import is_paused

    db_session.expire_all()
    assert is_paused(db_session)
    mine = csrf_token(agent, "/staff/automation")
    assert agent.post("/staff/automation/switch", data={"csrf_token": mine, "paused": "0"}).status_code == 403
    rules = (
        'schema = 1\n[[versions]]\nid = "draft"\neffective_from = 2027-01-01T00:00:00Z\n'
        '[[versions.rules]]\nid = "draft-rule"\nmax_amount = { USD = "100.00" }\n'
    )
    answer = agent.post(
        "/staff/automation/simulate",
        data={"csrf_token": csrf_token(agent, "/staff/automation"), "since": "2026-11-01", "rules": rules},
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "draft-rule" in text and "Would have been automated: 1" in text
    broken = agent.post(
        "/staff/automation/simulate",
        data={"csrf_token": csrf_token(agent, "/staff/automation"), "rules": "schema = 1\n[[versions]]\nid = 'x'\n"},
    )
    assert broken.status_code == 422 and "effective_from" in broken.get_data(as_text=True)


def test_a_stale_pause_click_never_resumes_automation(auto_app, db_session):
    """Two admins open the page while automation runs; one pauses it. The other's "Pause all
    automation" click, from the page shown before, leaves it paused and says so, and logs nothing."""
    from portal.core.vocabulary import StaffRole
    from portal.refunds.automation.runner import is_paused
    from tests.conftest import csrf_token

    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    make_staff(db_session, "other@example.com", StaffRole.ADMIN)
    first, second = auto_app.test_client(), auto_app.test_client()
    sign_in(first, "admin@example.com")
    sign_in(second, "other@example.com")
    stale = second.get("/staff/automation").get_data(as_text=True)
    assert "Pause all automation" in stale and 'name="paused" value="1"' in stale
    stale_token = csrf_token(second, "/staff/automation")
    first.post("/staff/automation/switch", data={"csrf_token": csrf_token(first, "/staff/automation"), "paused": "1"})
    logged = [e for e in _security_log(db_session) if e[0].startswith("automation_")]
    assert logged == [("automation_paused", "admin@example.com", "")]

    answer = second.post(
        "/staff/automation/switch", data={"csrf_token": stale_token, "paused": "1"}, follow_redirects=True
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Automation is already paused." in page
    assert "Start automation again" in page
    db_session.expire_all()
    assert is_paused(db_session)
    assert [e for e in _security_log(db_session) if e[0].startswith("automation_")] == logged  # a no-op: not logged

    # Resuming is asked for by name too, and a second resume is again a no-op.
    token = csrf_token(second, "/staff/automation")
    second.post("/staff/automation/switch", data={"csrf_token": token, "paused": "0"})
    db_session.expire_all()
    assert not is_paused(db_session)
    again = second.post("/staff/automation/switch", data={"csrf_token": token, "paused": "0"}, follow_redirects=True)
    assert "Automation is already running." in again.get_data(as_text=True)
    kinds = [e[0] for e in _security_log(db_session) if e[0].startswith("automation_")]
    assert kinds == ["automation_paused", "automation_resumed"]
    # A form that does not say what it wants is refused, not taken as "flip it".
    assert second.post("/staff/automation/switch", data={"csrf_token": token}).status_code == 400


def test_insights_count_decisions_by_rules_and_by_people_and_rebuild_agrees(auto_app, filed, db_session, frozen):
    from portal.insights.decisions import InsightDecisionDay

    run(auto_app)
    frozen.shift(timedelta(minutes=61))
    run(auto_app)
    db_session.expire_all()
    kept = sorted((r.decision, r.made_by, r.count) for r in db_session.scalars(select(InsightDecisionDay)))
    assert kept == [("approved", "rules", 1)]
    runner = auto_app.test_cli_runner()
    assert runner.invoke(args=["insights", "rebuild"]).exit_code == 0
    db_session.expire_all()
    assert sorted((r.decision, r.made_by, r.count) for r in db_session.scalars(select(InsightDecisionDay))) == kept
    make_staff(db_session, "agent@example.com")
    agent = auto_app.test_client()
    sign_in(agent, "agent@example.com")
    page = agent.get("/staff/insights").get_data(as_text=True)
    assert "Decisions by rules and by people" in page


def _security_log(session):
    from portal.accounts.models import SecurityEvent
    from portal.accounts.sessions import actor_name

    session.expire_all()
    return [
        (e.kind, actor_name(e), e.detail) for e in session.scalars(select(SecurityEvent).order_by(SecurityEvent.id))
    ]


def test_every_automated_action_is_in_the_security_log_with_the_rule_and_policy_version(
    auto_app, filed, db_session, frozen, tmp_path, make_app, stripe_stub
):
    from portal.core.vocabulary import StaffRole
    from tests.conftest import csrf_token

    _customer, reference = filed
    run(auto_app)
    frozen.shift(timedelta(minutes=61))
    run(auto_app)
    version = latest_request(db_session).policy_version
    log = _security_log(db_session)
    assert [(kind, actor) for kind, actor, _ in log] == [
        ("automation_rules_changed", "automation"),  # the first run names the rules file it uses
        ("automation_approved", "automation"),
        ("automation_processed", "automation"),
    ]
    assert "default_automation.toml: 1 version(s), newest 2026-11-01, in force 2026-11-01; sha256 " in log[0][2]
    assert log[1][2] == (
        f"{reference}: 29.00 USD approved by rule routine-monthly (rules version 2026-11-01, policy version {version})"
    )
    assert log[2][2] == (
        f"{reference}: refund 29.00 USD through stripe, succeeded (rule routine-monthly, policy version {version})"
    )
    run(auto_app)
    assert [k for k, *_ in _security_log(db_session)].count("automation_rules_changed") == 1  # same file: not again
    # The admin's switch is logged under the admin's account, the command line's without one.
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    admin = auto_app.test_client()
    sign_in(admin, "admin@example.com")
    admin.post("/staff/automation/switch", data={"csrf_token": csrf_token(admin, "/staff/automation"), "paused": "1"})
    assert auto_app.test_cli_runner().invoke(args=["automation", "resume"]).exit_code == 0
    assert [e for e in _security_log(db_session) if e[0] != "sign_in"][-2:] == [
        ("automation_paused", "admin@example.com", ""),
        ("automation_resumed", "", "from the command line"),
    ]
    # A changed rules file is logged once, when automation first runs with it.
    changed = tmp_path / "rules.toml"
    changed.write_text(
        'schema = 1\n[[versions]]\nid = "v2"\neffective_from = 2026-01-01T00:00:00Z\n'
        '[[versions.rules]]\nid = "small"\nmax_amount = { USD = "10.00" }\n'
    )
    run(make_app(**stripe_stub.portal_settings(), AUTOMATION_FILE=str(changed)))
    [new_rules] = [e for e in _security_log(db_session) if e[0] == "automation_rules_changed"][1:]
    assert new_rules[1] == "automation" and "rules.toml: 1 version(s), newest v2, in force v2" in new_rules[2]
    # The page shows it all to admins, with automation as the actor; the CSV too.
    page = admin.get("/staff/security-log").get_data(as_text=True)
    assert "Approved by an automation rule" in page and "Refund sent by automation" in page
    assert "Automation rules changed" in page and "Automation paused" in page
    assert f"{reference}: 29.00 USD approved by rule routine-monthly" in page
    csv = admin.get("/staff/security-log.csv").get_data(as_text=True)
    assert f',automation,,"{reference}: refund 29.00 USD through stripe, succeeded' in csv


def test_overdue_and_insights_count_automated_and_human_decisions_apart(make_app, stripe_stub, db_session, frozen):
    """A rule's request waiting out a long cooling-off period is not overdue for people; the insights
    show how long each kind of decision took (the time saved); the saved rate counts every request
    however it was decided."""
    from portal.core.database import utcnow
    from portal.insights.figures import compute
    from portal.policy import load_policy
    from portal.refunds.filing import accept_offer
    from portal.refunds.links import Links

    app = make_app(**stripe_stub.portal_settings(), AUTOMATION_DELAY_MINUTES=48 * 60)
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    ruled = file_request(customer, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    other = app.test_client()
    lookup(other, "ORD-10003", "bob.tanaka@example.org")  # annual, prorated: no rule covers it
    by_hand = file_request(other, "ORD-10003").headers["Location"].rsplit("/", 1)[1]
    run(app)
    frozen.shift(timedelta(hours=25))
    make_staff(db_session, "agent@example.com")
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    with app.app_context():
        ins = compute(db_session, utcnow() - timedelta(days=7), utcnow() + timedelta(days=1), now=utcnow())
    assert (ins.overdue, ins.overdue_automation) == (1, 1)
    assert [ref for ref, _ in ins.overdue_oldest] == [by_hand]
    queue = agent.get("/staff/queue").get_data(as_text=True)
    assert "Queued for rule routine-monthly" in queue
    page = agent.get("/staff/insights").get_data(as_text=True)
    assert "Not counted: 1 more queued for an automation rule." in page
    # A person approves the other request now (25 hours after filing); the rule acts at 48 hours.
    _approve_by_hand(db_session, by_hand)
    frozen.shift(timedelta(hours=24))
    assert "approved 1" in run(app)
    assert _state(db_session, ruled) is RequestState.REFUNDED
    sign_in(agent, "agent@example.com")  # a day later: signed out meanwhile
    page = agent.get("/staff/insights").get_data(as_text=True)
    assert "Median wait for the decision" in page and "Time saved" not in page  # the rule waited longer here
    from portal.insights.decisions import waits

    with app.app_context():
        made = waits(db_session, utcnow() - timedelta(days=7), utcnow() + timedelta(days=1))
    assert made["rules"] > made["people"] and 24 * 3600 < made["people"] < 26 * 3600
    # A rebuild from the status events agrees.
    assert app.test_cli_runner().invoke(args=["insights", "rebuild"]).exit_code == 0
    with app.app_context():
        assert waits(db_session, utcnow() - timedelta(days=7), utcnow() + timedelta(days=1)) == made
    # The saved rate counts every request, those the rules decided included: one saved of three.
    from portal.orders.models import Order
    from portal.policy.offers import offers_that_fit

    with app.app_context():
        order = db_session.scalar(select(Order).where(Order.order_number == "ORD-10002"))
        policy = load_policy()
        accept_offer(
            db_session,
            order,
            # An offer that still fits the order two days on (its monthly period may have ended).
            offers_that_fit(policy, order, utcnow())[0].id,
            policy=policy,
            locale="en",
            now=utcnow(),
            links=Links("http://portal.test", "s"),
        )
        db_session.commit()
        ins = compute(db_session, utcnow() - timedelta(days=7), utcnow() + timedelta(days=1), now=utcnow())
    assert sum(total for _, total, _ in ins.saved) == 3 and sum(kept for *_, kept in ins.saved) == 1


def _state(session, reference):
    from portal.refunds.models import RefundRequest

    session.expire_all()
    return session.scalar(select(RefundRequest.state).where(RefundRequest.reference == reference))


def _approve_by_hand(session, reference):
    from portal.refunds.models import RefundRequest
    from portal.refunds.states import Action, transition

    request = session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    transition(session, request, Action.APPROVE, actor=Actor.STAFF, amount_minor=request.amount_requested_minor)
    session.commit()


def test_the_customer_gets_the_usual_emails_and_a_pdf_receipt_from_an_automated_refund(
    make_app, stripe_stub, smtp, db_session, frozen
):
    import io

    from pypdf import PdfReader

    from portal.refunds.models import Receipt
    from portal.web.extensions import db
    from portal.web.mail import deliver

    app = make_app(**stripe_stub.portal_settings(), **smtp.settings)
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    file_request(customer, "ORD-10001")
    run(app)
    frozen.shift(timedelta(minutes=61))
    assert "refunded 1" in run(app)
    with app.app_context():
        assert deliver(db.session).sent == 3
    subjects = [m["Subject"] for m in smtp.inbox.find("alice.m@example.com")]
    assert len(subjects) == 3
    [message] = [m for m in smtp.inbox.find("alice.m@example.com") if list(m.iter_attachments())]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    receipt = db_session.scalar(select(Receipt))
    text = PdfReader(io.BytesIO(attachment.get_content())).pages[0].extract_text()
    assert receipt.number in text and "29.00" in text
