"""Plain views of orders and requests for templates: everything formatted for the reader's locale."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

from babel.lists import format_list
from babel.numbers import get_decimal_symbol
from sqlalchemy import select

from portal.core import formatting
from portal.core.database import utcnow
from portal.core.formatting import local_day
from portal.core.markers import N_
from portal.core.money import Money, MoneyError
from portal.core.vocabulary import Actor, Reason, RefundStatus, RequestState
from portal.inbound.models import InboundMessage
from portal.orders.models import Order
from portal.payments.base import IN_PROGRESS, PROGRESS_TITLES, failure_sentence
from portal.policy import Decision, Outcome, explain, verdicts_by_reason
from portal.policy.engine import GENERAL_REASON
from portal.policy.offers import offers_that_fit
from portal.refunds import filing
from portal.refunds.models import RefundRequest, StatusEvent
from portal.refunds.questions import LABELS
from portal.refunds.states import Action, allowed
from portal.refunds.summary import OrderSummary, RequestSummary
from portal.refunds.timing import add_business_days
from portal.web.extensions import db
from portal.web.i18n import current_locale, day, moment, money, number, reader_zone, system_note
from portal.web.i18n import gettext as _
from portal.web.policy import Wording, current_policy, explain_decision, offer_title


@dataclass
class OfferView:
    id: str
    title: str
    text: str


@dataclass
class ReasonLine:
    """One verdict on the order page with the reasons it holds for ("No longer needed: …")."""

    reasons: tuple[Reason, ...]
    text: str
    decision: Decision

    @property
    def first_reason(self) -> str:
        return self.reasons[0].value

    @property
    def general(self) -> bool:
        """The change-of-mind group, whose verdict the order page's headline already says."""
        return GENERAL_REASON in self.reasons


@dataclass
class OrderView:
    order: Order | OrderSummary
    decision: Decision  # for a change of mind, or the open request's own when filed
    headline: list[str]
    sentences: list[str]
    clause_links: list[tuple[str, str]]
    open_request: RefundRequest | RequestSummary | None
    past_requests: list[RefundRequest | RequestSummary]
    offers: list[OfferView] = field(default_factory=list)
    locale: str = "en"  # the reader's, asked for once
    by_reason: list[ReasonLine] = field(default_factory=list)  # empty when every reason gets the same
    offer_taken: bool = False  # an alternative was taken instead of a refund: no refund is asked for here

    @cached_property
    def amount(self) -> str:
        return formatting.money(self.order.amount, self.locale)

    @cached_property
    def refundable(self) -> str:
        return formatting.money(self.decision.amount, self.locale)

    @cached_property
    def requestable(self) -> str:
        return formatting.money(filing.most_requestable(self.decision), self.locale)

    @cached_property
    def purchased(self) -> str:
        return moment(self.order.purchased_at, self.locale)

    @cached_property
    def period(self) -> str | None:
        first, last = self.order.period_start, self.order.period_end
        if not first or not last:  # both or neither: the import checks it
            return None
        start, end = (day(d, locale=self.locale) for d in (first, last))
        return f"{start} – {end}"

    @cached_property
    def outside_policy(self) -> bool:
        return self.decision.outcome is Outcome.REFUSED

    @cached_property
    def can_request(self) -> bool:
        return (
            self.open_request is None
            and not self.offer_taken
            and self.decision.facts.remaining.minor > 0
            and self.decision.basis.value != "charged_back"
        )

    @cached_property
    def filed(self) -> str:
        return moment(self.open_request.created_at, self.locale) if self.open_request is not None else ""

    @cached_property
    def asked_for(self) -> str:
        r = self.open_request
        return (
            formatting.money(Money.from_minor(r.amount_requested_minor, self.order.currency), self.locale) if r else ""
        )

    def for_reason(self, reason: str | None) -> Decision:
        """The decision for the reason the customer chose (the page's own when none or unknown)."""
        for line in self.by_reason:
            if any(r.value == reason for r in line.reasons):
                return line.decision
        return self.decision

    def format(self, params: dict) -> dict:
        return {k: formatting.money(v, self.locale) if isinstance(v, Money) else v for k, v in params.items()}


def reasons_label(reasons: tuple[Reason, ...], locale: str) -> str:
    """The reasons as a reader lists them: "No longer needed, not what I expected, or something else"."""
    label = _REASON_LABELS.get((reasons, locale))
    if label is None:  # a handful per language: worded once, not on every order page
        label = _REASON_LABELS[(reasons, locale)] = _reasons_label(reasons, locale)
    return label


_REASON_LABELS: dict[tuple[tuple[Reason, ...], str], str] = {}


def _reasons_label(reasons: tuple[Reason, ...], locale: str) -> str:
    titles = [_(r.title) for r in reasons]
    if locale != "zh":  # titles are sentence-cased; inside a list only the first keeps its capital
        titles = [titles[0], *(t[:1].lower() + t[1:] for t in titles[1:])]
    return format_list(titles, style="or", locale=formatting.babel_locale(locale))


def order_view(order: Order | OrderSummary) -> OrderView:
    policy = current_policy()
    now = utcnow()
    wording = Wording()  # the reader's language and zone, asked for once
    locale = wording.locale
    version = policy.version_for(order.purchased_at)
    requests: list[RefundRequest | RequestSummary] = list(order.refund_requests)
    open_request = next((r for r in requests if r.state.is_open), None)
    prior = filing.refunded_so_far(order)
    filed_decision = open_request.decision_at_filing if open_request is not None else None
    by_reason: list[ReasonLine] = []
    if filed_decision is not None:
        # While a request is open the page says what it was filed under, never a newer verdict
        # (a window that has since closed would contradict the request being followed).
        decision = filed_decision
        headline: list[str] = []
        sentences = [wording.say(s) for s in explain.explain(decision)]
    else:
        verdicts = verdicts_by_reason(order, policy, now, prior)
        decision = verdicts[0].decision
        headline = [wording.say(s) for s in explain.headline(decision)]
        sentences = [wording.say(s) for s in explain.details(decision)]
        if len(verdicts) > 1:
            for verdict in verdicts:
                line = explain.by_reason(verdict.decision)
                if line is not None:
                    text = _(
                        "%(reasons)s: %(verdict)s",
                        reasons=reasons_label(verdict.reasons, locale),
                        verdict=wording.say(line),
                    )
                    by_reason.append(ReasonLine(verdict.reasons, text, verdict.decision))
    links = []
    clause_ids = dict.fromkeys(c for line in by_reason for c in line.decision.clauses) or decision.clauses
    for clause_id in clause_ids:
        try:
            links.append((clause_id, wording.rendered(version.clause(clause_id), "title")))
        except KeyError:
            continue
    taken = next((r for r in requests if r.state is RequestState.RESOLVED_WITH_OFFER), None)  # one per order
    if taken is not None and open_request is None:
        # The customer chose an alternative "instead of a refund": the page says that, not a verdict.
        try:
            chosen = wording.rendered(policy.offer(taken.offer_id or ""), "title")
        except KeyError:
            chosen = ""
        headline = [
            _("You chose an alternative instead of a refund: %(offer)s.", offer=chosen)
            if chosen
            else _("You chose an alternative instead of a refund.")
        ]
        sentences, by_reason, links = [], [], []
    offers = (
        []
        if taken
        else [
            OfferView(o.id, wording.rendered(o, "title"), wording.rendered(o, "text"))
            for o in offers_that_fit(policy, order, now)
        ]
    )
    return OrderView(
        order,
        decision,
        headline,
        sentences,
        links,
        open_request,
        [r for r in requests if r is not open_request],
        offers,
        locale,
        by_reason,
        offer_taken=taken is not None,
    )


def filing_input(form, order: Order, documents, submission_key: str = "", time_zone: str = "UTC") -> filing.Filing:
    amount = None
    if form.amount_choice.data == "partial":
        text = (form.partial_amount.data or "").strip().replace(",", ".")
        if not text:
            raise ValueError(_("Enter the amount you are asking for."))
        try:
            amount = Money.parse(text, order.currency)
        except MoneyError:
            # Written with the reader's decimal sign ("12,50" in Dutch); both signs are accepted.
            example = str(Money.from_minor(1250, order.currency).amount).replace(
                ".", get_decimal_symbol(formatting.babel_locale(current_locale()))
            )
            raise ValueError(_("Enter the amount as a number, such as %(example)s.", example=example)) from None
    return filing.Filing(
        reason=Reason(form.reason.data),
        details=form.details.data or "",
        locale=form.locale.data,
        submission_key=submission_key,
        amount=amount,
        review_requested=bool(form.review_requested.data),
        documents=documents,
        time_zone=time_zone,
    )


NEXT_STEPS = {
    RequestState.RECEIVED: N_("We have your request and will decide by %(due)s. We will email you as soon as we do."),
    RequestState.IN_REVIEW: N_("Our team is reviewing your request and will decide by %(due)s."),
    RequestState.AWAITING_CUSTOMER: N_("We need a little more information before we can decide. Please answer below."),
    RequestState.APPROVED: N_(
        "Approved: %(amount)s will reach your original payment method within %(min)s–%(max)s business days."
    ),
    RequestState.REFUND_FAILED: N_(
        "Your refund was approved but could not be completed yet. We are working on it and will email you."
    ),
    RequestState.REFUNDED: N_("Refunded: %(amount)s was sent to your original payment method."),
    RequestState.DECLINED: N_("We could not approve this request. The reason is in the timeline below."),
    RequestState.WITHDRAWN: N_("You withdrew this request. You can file a new one from the order page."),
    RequestState.RESOLVED_WITH_OFFER: N_("You chose an alternative to a refund. Our team will set it up for you."),
    RequestState.CLOSED_UNANSWERED: N_(
        "We closed this request because we did not hear back from you. You can file a new one from the order page."
    ),
}
IN_PROGRESS_STEPS = {
    "pending": N_(
        "Refund in progress: %(amount)s is with our payment processor, which is completing it. We will "
        "email you with your receipt as soon as it is done; you do not need to do anything."
    ),
    "requires_action": N_(
        "Refund in progress: to receive %(amount)s, the payment processor needs something from "
        "you first (usually where to send the money). Please follow the instructions it has "
        "emailed to %(email)s."
    ),
}


def _timeline_title(event: StatusEvent) -> str:
    if event.processor_status in PROGRESS_TITLES and event.from_state is event.to_state:
        return _(PROGRESS_TITLES[event.processor_status])
    return _(event.to_state.title)


def _timeline_note(event: StatusEvent) -> str:
    """What the customer reads beside an event: the processor's reason in their words, never its raw text."""
    if event.to_state is RequestState.REFUND_FAILED and event.processor_status:
        return _(failure_sentence(event.failure_reason or event.processor_status))
    if event.to_state is RequestState.RESOLVED_WITH_OFFER:
        return ""
    return system_note(event)


ACTORS = {Actor.CUSTOMER: N_("You"), Actor.STAFF: N_("Support team"), Actor.SYSTEM: N_("Refund portal")}


@dataclass
class TimelineEntry:
    when: str
    iso: str
    title: str
    actor: str
    note: str
    amount: str | None


@dataclass
class Step:
    title: str
    status: str  # "done", "current" or "upcoming"
    when: str  # when it happened, or when we expect it ("by Friday, 27 November 2026")


@dataclass
class Answer:
    asked: list[str]
    text: str
    when: str
    documents: list[str]


@dataclass
class RequestView:
    request: RefundRequest
    state_title: str
    next_step: str
    timeline: list[TimelineEntry]
    questions: list[dict]
    information_message: str
    decision_sentences: list[str]
    can_withdraw: bool
    can_answer: bool
    steps: list[Step] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    processor_reference: str = ""

    @property
    def amount_requested(self) -> str:
        return money(self.request.amount_requested)

    @property
    def filed(self) -> str:
        return moment(self.request.created_at)


def request_view(request: RefundRequest) -> RequestView:
    policy = current_policy()
    order = request.order
    version = policy.version_for(order.purchased_at)
    process = next(iter(version.of_kind("process")), None)
    approved = Money.from_minor(request.amount_approved_minor or request.amount_requested_minor, request.currency)
    payout_min, payout_max = (process.payout_business_days_min, process.payout_business_days_max) if process else (5, 7)
    state_title = _(request.state.title)
    due = filing.decision_due(policy, order, decision_clock(request), reader_zone())  # one promised day per page
    next_step = _(
        NEXT_STEPS[request.state],
        due=day(due, "full"),
        amount=money(approved),
        min=number(payout_min),
        max=number(payout_max),
    )
    if request.state is RequestState.RESOLVED_WITH_OFFER and request.offer_id:
        chosen = offer_title(request.offer_id, current_locale())
        if request.offer_set_up_at is not None:
            next_step = _(
                "“%(offer)s” has been set up for you on %(date)s.",
                offer=chosen,
                date=day(local_day(request.offer_set_up_at, reader_zone()), "full"),
            )
        else:
            next_step = _(
                "You chose “%(offer)s” instead of a refund. Our team will set it up by %(date)s.",
                offer=chosen,
                date=day(due, "full"),
            )
    latest = max(request.refunds, key=lambda r: r.id, default=None)
    if (
        request.state is RequestState.APPROVED
        and latest is not None
        and latest.status is RefundStatus.PENDING
        and latest.processor_status in IN_PROGRESS
    ):
        state_title = _(PROGRESS_TITLES["pending"])
        next_step = _(
            IN_PROGRESS_STEPS[latest.processor_status], amount=money(latest.amount), email=order.customer.email
        )
    elif request.state is RequestState.REFUND_FAILED and latest is not None and latest.processor_status:
        next_step = " ".join((_(failure_sentence(latest.failure_reason or latest.processor_status)), next_step))
    timeline = [
        TimelineEntry(
            moment(e.created_at),
            e.created_at.isoformat(),
            _timeline_title(e),
            _(ACTORS[e.actor]),
            _timeline_note(e),
            money(Money.from_minor(e.amount_minor, request.currency)) if e.amount_minor else None,
        )
        for e in request.events
    ]
    emails = db.session.scalars(
        select(InboundMessage).where(InboundMessage.refund_request_id == request.id, InboundMessage.kind == "reply")
    ).all()
    timeline += [
        TimelineEntry(
            moment(m.received_at), m.received_at.isoformat(), _("Your email"), _(ACTORS[Actor.CUSTOMER]), m.text, None
        )
        for m in emails
    ]
    if request.offer_set_up_at is not None:
        timeline.append(
            TimelineEntry(
                moment(request.offer_set_up_at),
                request.offer_set_up_at.isoformat(),
                _("Offer set up"),
                _(ACTORS[Actor.STAFF]),
                "",
                None,
            )
        )
    timeline.sort(key=lambda entry: entry.iso)
    info = next((i for i in reversed(request.information_requests) if i.answered_at is None), None)
    questions = []
    if info is not None and request.state is RequestState.AWAITING_CUSTOMER:
        for item in info.items:
            standard = LABELS.get(item.get("key", ""))
            label = _(standard) if standard else item.get("text", "")
            questions.append({"kind": item["kind"], "key": item.get("key", ""), "label": label})
    snapshot = request.decision_at_filing
    answers = [
        Answer(
            [_(LABELS[i["key"]]) if i.get("key") in LABELS else i.get("text", "") for i in asked.items],
            asked.answer,
            moment(asked.answered_at),
            [d.original_name for d in asked.documents],
        )
        for asked in request.information_requests
        if asked.answered_at is not None
    ]
    succeeded = [r for r in request.refunds if r.status is RefundStatus.SUCCEEDED and r.processor_reference]
    return RequestView(
        request=request,
        state_title=state_title,
        next_step=next_step,
        timeline=timeline,
        questions=questions,
        information_message=info.message if info is not None else "",
        decision_sentences=explain_decision(snapshot) if snapshot else [],
        can_withdraw=allowed(request.state, Action.WITHDRAW),
        can_answer=request.state is RequestState.AWAITING_CUSTOMER,
        steps=steps(request, due, payout_max),
        answers=answers,
        processor_reference=succeeded[-1].processor_reference if succeeded else "",
    )


STEP_TITLES = (N_("Request filed"), N_("Under review"), N_("Decided"), N_("Refunded"))
REVIEWING = frozenset({RequestState.IN_REVIEW, RequestState.AWAITING_CUSTOMER})
DECIDED = frozenset(
    {RequestState.APPROVED, RequestState.REFUND_FAILED, RequestState.REFUNDED, RequestState.DECLINED}
    | {RequestState.RESOLVED_WITH_OFFER, RequestState.WITHDRAWN, RequestState.CLOSED_UNANSWERED}
)


def decision_clock(request: RefundRequest) -> datetime:
    """Where the promised decision day is counted from: the filing, moved later by the time we waited
    on the customer (the clock staff's due times run on), so an answer never meets a date already past."""
    clock = request.sla_clock_at or request.created_at
    if request.sla_paused_at is not None:
        clock += utcnow() - request.sla_paused_at
    return clock


def steps(request: RefundRequest, due: date, payout_max: int) -> list[Step]:
    """Filed → under review → decided → refunded, each with when it happened or when we expect it."""
    reached: dict[str, datetime] = {}
    for event in request.events:
        to = event.to_state
        for name, states in (("review", REVIEWING), ("decided", DECIDED), ("refunded", {RequestState.REFUNDED})):
            if to in states or (name == "review" and to in DECIDED):
                reached.setdefault(name, event.created_at)
    state = request.state

    def expected(day_: date) -> str:
        return _("expected by %(day)s", day=day(day_, "full"))

    decided_title = _(STEP_TITLES[2])
    if state in DECIDED and state not in (RequestState.APPROVED, RequestState.REFUND_FAILED, RequestState.REFUNDED):
        decided_title = _(state.title)  # declined, withdrawn, an offer, closed: where the request ended
    result = [Step(_(STEP_TITLES[0]), "done", moment(request.created_at))]
    review_at = reached.get("review")
    result.append(
        Step(
            _(STEP_TITLES[1]),
            "done" if "decided" in reached else ("current" if review_at else "upcoming"),
            moment(review_at) if review_at else "",
        )
    )
    decided_at = reached.get("decided")
    result.append(
        Step(
            decided_title,
            "done" if decided_at else "upcoming",
            moment(decided_at) if decided_at else expected(due),
        )
    )
    if decided_at is None or state in (RequestState.APPROVED, RequestState.REFUND_FAILED, RequestState.REFUNDED):
        refunded_at = reached.get("refunded")
        from_day = local_day(decided_at, reader_zone()) if decided_at else due
        result.append(
            Step(
                _(STEP_TITLES[3]),
                "done" if refunded_at else ("current" if decided_at else "upcoming"),
                moment(refunded_at) if refunded_at else expected(add_business_days(from_day, payout_max)),
            )
        )
    return result
