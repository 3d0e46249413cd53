"""What the staff pages show, put into the reader's words and formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import failed as outbox_failed
from portal.payments.base import PROGRESS_TITLES, failure_sentence
from portal.policy import Decision
from portal.refunds import alerts, assignment, decisions, filing, payouts, replies
from portal.refunds.fraud import fraud_signals
from portal.refunds.models import AssignmentEvent, Refund, RefundRequest
from portal.refunds.questions import LABELS
from portal.refunds.states import Action, allowed
from portal.web.extensions import db
from portal.web.i18n import NATIVE_NAMES, current_locale, moment, money, system_note, translated
from portal.web.policy import clause_title, current_policy, explain_decision, offer_label, rendered

# The outbox's states as staff read them (a failed message is one still pending after an attempt).
OUTBOX_STATES = {
    "sent": N_("Sent"),
    "pending": N_("Waiting to send"),
    "failed": N_("Failed, will retry"),
    "dead": N_("Gave up"),
}

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
    # The offer the customer took ("Extended trial: 30 more days, free"), and whether staff still owe its set-up.
    offer: str = ""
    offer_waiting: bool = False
    offer_set_up: str = ""  # "Set up by NAME on DATE" once done

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


def due_text(due: datetime | None, now: datetime) -> str:
    """A due time relative to now, in the reader's words: "due in 3 h", "overdue by 2 h"."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    # Rounded to the nearest unit: 2 h 59 min reads "3 h", as a person would say it.
    if seconds < 3600 - 30:
        n = max(1, round(seconds / 60))
        return _("overdue by %(n)s min", n=n) if late else _("due in %(n)s min", n=n)
    if seconds < 48 * 3600:
        n = round(seconds / 3600)
        return _("overdue by %(n)s h", n=n) if late else _("due in %(n)s h", n=n)
    n = round(seconds / 86400)
    return _("overdue by %(n)s d", n=n) if late else _("due in %(n)s d", n=n)


def assignment_line(a: AssignmentEvent, names: dict[int | None, str]) -> str:
    """One change of owner as the timeline says it."""
    to, by, was = names.get(a.assignee_id, ""), names.get(a.by_id, ""), names.get(a.previous_id, "")
    if a.cause == assignment.DEACTIVATED:
        return _("Returned to unassigned: the account of %(name)s was deactivated", name=was)
    if a.cause == assignment.ROUND_ROBIN:
        return _("Assigned to %(name)s in turn (round-robin)", name=to)
    if a.assignee_id is None:
        return _("Unassigned by %(by)s", by=by)
    return _("Assigned to %(name)s by %(by)s", name=to, by=by)


def staff_name(user: StaffUser | None) -> str:
    return (user.name or user.email) if user else ""


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
    if event.to_state is RequestState.RESOLVED_WITH_OFFER and event.actor is Actor.CUSTOMER:
        return offer_label(event.note, current_locale())  # the note is the offer's id
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
    timeline += [
        {
            "when": moment(u.created_at),
            "iso": u.created_at.isoformat(),
            "from": "",
            "to": _("Saved reply used"),
            "who": staff_names.get(u.staff_user_id, ""),
            "amount": "",
            "note": _(
                "“%(title)s” %(where)s, in %(language)s",
                title=u.saved_reply.title,
                where=_(replies.USES.get(u.used_in, u.used_in)),
                language=NATIVE_NAMES.get(u.locale, u.locale),
            ),
        }
        for u in replies.uses(session, request)
    ]
    for a in session.scalars(select(AssignmentEvent).where(AssignmentEvent.refund_request_id == request.id)):
        timeline.append(
            {
                "when": moment(a.created_at),
                "iso": a.created_at.isoformat(),
                "from": "",
                "to": assignment_line(a, staff_names),
                "who": "",
                "amount": "",
                "note": "",
            }
        )
    if request.offer_set_up_at is not None:
        timeline.append(
            {
                "when": moment(request.offer_set_up_at),
                "iso": request.offer_set_up_at.isoformat(),
                "from": "",
                "to": _("Offer set up by %(name)s", name=staff_names.get(request.offer_set_up_by_id, "")),
                "who": "",
                "amount": "",
                "note": offer_label(request.offer_id, locale),
            }
        )
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
    if acting and request.offer_waiting:
        actions.add("offer_set_up")
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
        offer=offer_label(request.offer_id, locale) if request.offer_id else "",
        offer_waiting=request.offer_waiting,
        offer_set_up=(
            _(
                "Set up by %(name)s on %(when)s",
                name=staff_names.get(request.offer_set_up_by_id, ""),
                when=moment(request.offer_set_up_at),
            )
            if request.offer_set_up_at
            else ""
        ),
    )


def reply_choices(for_locale: str | None = None) -> list[tuple[str, str]]:
    """The saved replies for a form's select, each flagged where a translation is missing: for a
    customer's language (``for_locale``), what is sent instead; otherwise which languages lack one."""
    choices = [("", _("No saved reply"))]
    for reply in replies.listed(db.session()):
        missing = reply.missing
        label = reply.title
        if for_locale and for_locale in missing:
            label += " — " + _(
                "⚠ no %(language)s text yet: another language is sent", language=NATIVE_NAMES[for_locale]
            )
        elif not for_locale and missing:
            label += " — " + _("⚠ missing: %(languages)s", languages=", ".join(NATIVE_NAMES[m] for m in missing))
        choices.append((str(reply.id), label))
    return choices


def preselected_clause(request: RefundRequest, clause_choices: list[tuple[str, str]]) -> str:
    """The clause today's decision rests on, when a decline may cite it; else the first choice."""
    current = filing.decide(db.session(), request.order, current_policy(), utcnow(), request.reason)
    citable = [value for value, _label in clause_choices]
    for clause_id in current.clauses:
        if clause_id in citable:
            return clause_id
    return citable[0] if citable else ""


def outbox_state(message: OutboxMessage) -> str:
    """The message's state in words (marked for translation; the template translates it)."""
    key = "failed" if outbox_failed(message) else message.status.value
    return OUTBOX_STATES[key]


# What each message of the email kit is, for the kit page (the ids are for the code).
EMAIL_TITLES = {
    "acknowledgement": N_("Request received"),
    "information_request": N_("Questions for the customer, and the reminder"),
    "reply_received": N_("Answer received"),
    "approval": N_("Refund approved"),
    "decline": N_("Refund declined"),
    "offer_accepted": N_("Offer chosen instead of a refund"),
    "offer_set_up": N_("Offer set up"),
    "refunded": N_("Refund sent, with the credit note"),
    "refund_failed": N_("Refund failed or delayed"),
    "magic_link": N_("Link to all orders"),
    "staff_password_reset": N_("Staff password reset"),
    "closed_unanswered": N_("Request closed without an answer"),
    "erasure_confirmed": N_("Personal data erased"),
}


def email_title(message: str) -> str:
    """The message's title in the reader's language; a message added to the kit later shows its
    name in words until it has a title here."""
    title = EMAIL_TITLES.get(message)
    return _(title) if title else message.replace("_", " ").capitalize()
