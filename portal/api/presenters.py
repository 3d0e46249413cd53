"""Domain objects into the API's shapes (``portal.api.schemas``). No Flask here."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import StaffUser
from portal.api import schemas as s
from portal.core.money import Money
from portal.core.vocabulary import RequestState
from portal.insights.figures import Insights
from portal.orders.models import Order
from portal.policy import Decision, Policy
from portal.refunds import filing
from portal.refunds.models import RefundRequest
from portal.refunds.queue import OVERDUE_AFTER, QueuePage, due_at
from portal.refunds.states import Action, allowed


@overload
def amount(minor: int, currency: str) -> str: ...
@overload
def amount(minor: int | None, currency: str) -> str | None: ...
def amount(minor: int | None, currency: str) -> str | None:
    return None if minor is None else str(Money.from_minor(minor, currency).amount)


def request_page(page: QueuePage, now: datetime, sla: timedelta) -> s.RequestPage:
    return s.RequestPage(
        items=[
            s.RequestSummary(
                reference=row.reference,
                state=row.state,
                reason=row.reason,
                locale=row.locale,
                channel=row.channel,
                order_number=row.order_number,
                customer_name=row.customer_name,
                customer_email=row.customer_email,
                amount_requested=amount(row.amount_requested_minor, row.currency),
                currency=row.currency,
                created_at=row.created_at,
                overdue=row.overdue(now),
                assignee=row.assignee_email or None,
                due_at=row.due_at(sla, now),
            )
            for row in page.rows
        ],
        next_cursor=page.next_cursor,
        counts={state.value: count for state, count in page.counts.items()},
    )


def order(o: Order) -> s.OrderOut:
    return s.OrderOut(
        order_number=o.order_number,
        customer_email=o.customer.email,
        customer_name=o.customer.name,
        customer_locale=o.customer.locale,
        product=o.product,
        plan=o.plan,
        amount=amount(o.amount_minor, o.currency),
        currency=o.currency,
        purchased_at=o.purchased_at,
        period_start=o.period_start,
        period_end=o.period_end,
        payment_reference=o.payment_reference,
        payment_status=o.payment_status,
        channel=o.channel,
    )


def decision(d: Decision, policy: Policy, purchased_at: datetime) -> s.DecisionOut:
    version = policy.version_for(purchased_at)
    clauses = []
    for clause_id in d.clauses:
        try:
            title = version.clause(clause_id).render("title", "en", str)
        except KeyError:  # a clause of a version no longer in the file
            title = clause_id
        clauses.append(s.ClauseOut(id=clause_id, title=title))
    return s.DecisionOut(
        outcome=d.outcome.value,
        basis=d.basis.value,
        amount=str(d.amount.amount),
        documents_required=d.documents_required,
        policy_version=d.policy_version,
        clauses=clauses,
    )


def _actions(state: RequestState) -> list[str]:
    actions = [
        a.value
        for a in (Action.ASK_INFO, Action.START_REVIEW, Action.APPROVE, Action.DECLINE, Action.RETRY)
        if allowed(state, a)
    ]
    if state is RequestState.APPROVED:
        actions.append("process")
    return [*actions, "note"]


def request_detail(
    session: Session, r: RefundRequest, policy: Policy, now: datetime, sla: timedelta
) -> s.RequestDetail:
    names: dict[int | None, str] = {u.id: u.name or u.email for u in session.scalars(select(StaffUser))}
    at_filing = r.decision_at_filing
    return s.RequestDetail(
        reference=r.reference,
        state=r.state,
        reason=r.reason,
        locale=r.locale,
        channel=r.channel,
        order_number=r.order.order_number,
        customer_name=r.order.customer.name,
        customer_email=r.order.customer.email,
        amount_requested=amount(r.amount_requested_minor, r.currency),
        currency=r.currency,
        created_at=r.created_at,
        overdue=bool(r.awaiting_staff_since and r.awaiting_staff_since <= now - OVERDUE_AFTER),
        assignee=r.assignee.email if r.assignee else None,
        due_at=due_at(r.state, r.sla_clock_at, r.sla_paused_at, sla, now, r.awaiting_staff_since),
        details=r.details,
        review_requested=r.review_requested,
        amount_approved=amount(r.amount_approved_minor, r.currency),
        decline_clause=r.decline_clause,
        alternative_offer_id=r.alternative_offer_id,
        offer_id=r.offer_id,
        offer_set_up_at=r.offer_set_up_at,
        updated_at=r.updated_at,
        order=order(r.order),
        decision_at_filing=decision(at_filing, policy, r.order.purchased_at) if at_filing else None,
        decision_now=decision(filing.decide(session, r.order, policy, now, r.reason), policy, r.order.purchased_at),
        allowed_actions=_actions(r.state),
        timeline=[
            s.EventOut(
                at=e.created_at,
                actor=names.get(e.staff_user_id) or e.actor.value,
                from_state=e.from_state,
                to_state=e.to_state,
                amount=amount(e.amount_minor, r.currency),
                note=e.note,
            )
            for e in r.events
        ],
        information_requests=[
            s.InformationRequestOut(
                asked_at=i.created_at,
                items=[{k: str(v) for k, v in item.items()} for item in i.items],
                message=i.message,
                answered_at=i.answered_at,
                answer=i.answer,
            )
            for i in r.information_requests
        ],
        refunds=[
            s.RefundOut(
                status=f.status,
                amount=amount(f.amount_minor, f.currency),
                currency=f.currency,
                gateway=f.gateway,
                processor_reference=f.processor_reference,
                attempt=f.attempt,
                created_at=f.created_at,
                completed_at=f.completed_at,
            )
            for f in r.refunds
        ],
        documents=[
            s.DocumentOut(
                name=d.original_name,
                content_type=d.content_type,
                size=d.size,
                sha256=d.sha256,
                uploaded_by=d.uploaded_by.value,
                created_at=d.created_at,
            )
            for d in r.documents
        ],
        notes=[s.NoteOut(at=n.created_at, author=names.get(n.staff_user_id, ""), text=n.text) for n in r.notes],
    )


def insights(i: Insights, start: date, end: date) -> s.InsightsOut:
    return s.InsightsOut(
        start=start,
        end=end,
        decisions=i.decisions,
        approval_rate=i.approval_rate,
        decline_rate=i.decline_rate,
        reasons_weekly=[
            s.ReasonWeek(week=date.fromisoformat(week), reason=reason, count=count)
            for week, reason, count in i.reasons_weekly
        ],
        refunded=[
            s.MoneyTotal(currency=currency, count=count, amount=str(total.amount))
            for currency, count, total in i.refunded
        ],
        median_seconds=i.timings,
        overdue=i.overdue,
        saved=[s.SavedByReason(reason=reason, requests=total, saved=kept) for reason, total, kept in i.saved],
        feedback_count=i.feedback_count,
        feedback_average=i.feedback_average,
        signals=i.signals,
        billing_errors=i.billing_errors,
    )
