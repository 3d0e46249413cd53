"""What the staff pages show, put into the reader's words and formats."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select

from portal.accounts.models import StaffUser
from portal.core import formatting
from portal.core.database import utcnow
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Actor, Channel, PaymentStatus, Plan, Reason, RequestState, StaffRole
from portal.inbound.models import InboundMessage
from portal.orders.models import Order
from portal.payments.base import PROGRESS_TITLES, failure_sentence
from portal.policy import Decision
from portal.refunds import alerts, decisions, filing, payouts
from portal.refunds.fraud import fraud_signals
from portal.refunds.models import Refund, RefundRequest
from portal.refunds.questions import LABELS
from portal.refunds.states import Action, allowed
from portal.web.extensions import db
from portal.web.i18n import current_locale, moment, money, system_note, translated
from portal.web.policy import clause_title, current_policy, explain_decision, rendered

ACTORS = {Actor.CUSTOMER: N_("Customer"), Actor.STAFF: N_("Staff"), Actor.SYSTEM: N_("Refund portal")}


def label(item: dict) -> str:
    standard = LABELS.get(item.get("key", ""))
    return _(standard) if standard else item.get("text", "")


# The enums whose members carry a translatable title.
TITLED = (Plan, Channel, PaymentStatus, Reason, RequestState)


def _params(params: dict[str, object]) -> dict[str, object]:
    return {
        k: money(v) if isinstance(v, Money) else (_(v.title) if isinstance(v, TITLED) else v) for k, v in params.items()
    }


@dataclass
class DecisionView:
    title: str
    outcome: str
    amount: str
    sentences: list[str]
    clauses: list[tuple[str, str]]


def decision_view(decision: Decision | None, title: str, locale: str) -> DecisionView | None:
    if decision is None:
        return None
    version = current_policy().version_for(decision.as_of)
    clauses = []
    for clause_id in decision.clauses:
        try:
            clauses.append((clause_id, clause_title(version.clause(clause_id), locale)))
        except KeyError:
            clauses.append((clause_id, clause_id))
    return DecisionView(title, decision.outcome.value, money(decision.amount), explain_decision(decision), clauses)


@dataclass
class RequestPage:
    request: RefundRequest
    order: Order
    other_orders: list[Order]
    refunds: list[Refund]
    at_filing: DecisionView | None
    now: DecisionView | None
    policy_amount: Money
    remaining: Money
    signals: list[str]
    timeline: list[dict]
    notes: list[dict]
    info_requests: list[dict]
    # Bounces marked the customer's address undeliverable: when and what the report said.
    undeliverable: dict | None = None
    actions: set[str] = field(default_factory=set)
    clause_choices: list[tuple[str, str]] = field(default_factory=list)
    offer_choices: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    @property
    def amount_requested(self) -> str:
        return money(self.request.amount_requested)

    @property
    def policy_amount_text(self) -> str:
        return money(self.policy_amount)

    @property
    def approved_text(self) -> str:
        return money(Money.from_minor(self.request.amount_approved_minor or 0, self.request.currency))

    @property
    def remaining_text(self) -> str:
        return money(self.remaining)


def decline_choices(order: Order, locale: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The clauses a decline may cite (all but the process) and the offers it may make."""
    policy = current_policy()
    version = policy.version_for(order.purchased_at)
    clauses = [
        (c.id, formatting.aside(clause_title(c, locale), c.id, locale)) for c in version.clauses if c.kind != "process"
    ]
    offers = [("", _("No alternative"))] + [(o.id, rendered(o, "title", locale)) for o in policy.offers_for(order.plan)]
    return clauses, offers


def _staff_note(event) -> str:
    if event.to_state is RequestState.REFUND_FAILED and event.processor_status:
        words = _(failure_sentence(event.failure_reason or event.processor_status))
        code = event.failure_reason or event.processor_status
        return formatting.aside(words, code, current_locale()) + (f" · {event.note}" if event.note else "")
    return system_note(event)


def refund_line(refund: Refund) -> str:
    """One refund as staff read it: the processor's status word, its reason in words, its last message."""
    parts = [refund.processor_status or refund.status.value]
    if refund.failure_reason:
        parts.append(
            formatting.aside(_(failure_sentence(refund.failure_reason)), refund.failure_reason, current_locale())
        )
    if refund.processor_message:
        parts.append(refund.processor_message)
    return " · ".join(parts)


def request_page(request: RefundRequest, user: StaffUser, locale: str) -> RequestPage:
    session = db.session()
    now = utcnow()
    policy = current_policy()
    order = request.order
    other_orders = list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == order.customer_id, Order.id != order.id)
            .order_by(Order.purchased_at.desc())
        )
    )
    refunds = list(
        session.scalars(
            select(Refund)
            .join(Order, Refund.order_id == Order.id)
            .where(Order.customer_id == order.customer_id)
            .order_by(Refund.id.desc())
        )
    )
    current = filing.decide(session, order, policy, now, request.reason)
    staff_names: dict[int | None, str] = {u.id: u.name or u.email for u in session.scalars(select(StaffUser))}
    timeline = [
        {
            "when": moment(e.created_at),
            "iso": e.created_at.isoformat(),
            "from": _(e.from_state.staff_title) if e.from_state else "",
            "to": _(e.to_state.staff_title),
            "who": staff_names.get(e.staff_user_id) or _(ACTORS[e.actor]),
            "amount": money(Money.from_minor(e.amount_minor, request.currency)) if e.amount_minor else "",
            "note": _staff_note(e),
        }
        for e in request.events
    ]
    for entry, e in zip(timeline, request.events, strict=True):
        if e.processor_status in PROGRESS_TITLES and e.from_state is e.to_state:
            entry["to"] = _(PROGRESS_TITLES[e.processor_status])
    emails = session.scalars(
        select(InboundMessage).where(InboundMessage.refund_request_id == request.id, InboundMessage.kind == "reply")
    ).all()
    timeline += [
        {
            "when": moment(m.received_at),
            "iso": m.received_at.isoformat(),
            "from": "",
            "to": _("Email from the customer"),
            "who": m.sender,
            "amount": "",
            "note": m.text,
            "refused": [
                _(a["problem"], name=a.get("name", ""), **{k: v for k, v in a.items() if k not in ("problem", "name")})
                for a in m.refused_attachments
            ],
        }
        for m in emails
    ]
    timeline.sort(key=lambda entry: entry["iso"])
    customer = order.customer
    undeliverable = (
        {"when": moment(customer.email_undeliverable_at), "reason": customer.email_undeliverable_reason}
        if customer.email_undeliverable_at
        else None
    )
    notes = [
        {"when": moment(n.created_at), "who": staff_names.get(n.staff_user_id, ""), "text": n.text}
        for n in request.notes
    ]
    infos = [
        {
            "when": moment(i.created_at),
            "items": [label(item) for item in i.items],
            "message": i.message,
            "answer": i.answer,
            "answered": moment(i.answered_at) if i.answered_at else "",
            "reminded": moment(i.reminder_sent_at) if i.reminder_sent_at else "",
        }
        for i in request.information_requests
    ]
    signals = [translated(s.message, **_params(s.params)) for s in fraud_signals(session, request, now=now)]
    acting = user.may(StaffRole.AGENT, StaffRole.ADMIN)
    actions = {
        a.value
        for a in Action
        if acting
        and allowed(request.state, a)
        and a in (Action.ASK_INFO, Action.START_REVIEW, Action.APPROVE, Action.DECLINE, Action.RETRY)
    }
    if acting and request.state is RequestState.APPROVED:
        actions.add("process")
    if acting:
        actions.add("note")
    clause_choices, offer_choices = decline_choices(order, locale)
    return RequestPage(
        request=request,
        order=order,
        other_orders=other_orders,
        refunds=refunds,
        at_filing=decision_view(request.decision_at_filing, _("When filed"), locale),
        now=decision_view(current, _("Today"), locale),
        policy_amount=decisions.policy_amount(session, request, policy, now),
        remaining=payouts.remaining(session, order),
        signals=signals,
        timeline=timeline,
        notes=notes,
        info_requests=infos,
        undeliverable=undeliverable,
        actions=actions,
        clause_choices=clause_choices,
        offer_choices=offer_choices,
        alerts=[
            {"when": moment(a.created_at), "kind": a.kind, "message": a.message}
            for a in alerts.open_alerts(session, request=request)
        ],
    )
