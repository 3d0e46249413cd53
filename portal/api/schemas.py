"""The JSON API's shapes: pydantic models that validate what comes in and describe what goes out.

The OpenAPI document is generated from these same classes (``portal.api.spec``), so the
reference can never drift from what the API accepts. Amounts travel as decimal strings in the
currency's major unit ("12.50", "1500" for yen), never as floats.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason, RefundStatus, RequestState
from portal.refunds.questions import DOCUMENTS, QUESTIONS
from portal.refunds.queue import View

Amount = Annotated[
    str,
    Field(
        pattern=r"^\d{1,15}(\.\d{1,4})?$",
        examples=["12.50"],
        description="An amount in the currency's major unit, as a decimal string.",
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
if TYPE_CHECKING:
    # The keys are only known at run time, where pydantic checks them; to mypy they are strings.
    QuestionKey = str
    DocumentKey = str
else:
    QuestionKey = Literal[tuple(QUESTIONS)]
    DocumentKey = Literal[tuple(DOCUMENTS)]


class Input(BaseModel):
    # An unknown field is a typo the caller wants to hear about, not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- errors ---------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="Where the fault is, such as `amount` or `orders.3.currency`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


# -- requests -------------------------------------------------------------------------------------


class RequestListQuery(Query):
    state: RequestState | None = None
    reason: Reason | None = None
    locale: Literal["en", "zh", "nl"] | None = None
    channel: Channel | None = None
    overdue: bool = Field(False, description="Only requests nobody on staff has acted on for 24 hours.")
    q: Annotated[str, Field(max_length=320)] = Field(
        "",
        description="Part of a reference, order number, product, customer name or email address; "
        "case-insensitive (`liu.yang`, `Liu`, `10001`).",
    )
    assignee: Annotated[str, Field(max_length=320)] | None = Field(
        None,
        description="Only the requests of this staff member (their email address), `me` (the token's "
        "owner) or `none` (unassigned).",
    )
    view: View | None = Field(
        None,
        description="One of the console's views: `needs_action` (open and waiting on staff, by due "
        "time), `mine`, `unassigned`, `waiting`, `open`, `closed` or `all` (the default, oldest first).",
    )
    cursor: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="The `next_cursor` of the previous page."
    )
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class RequestSummary(BaseModel):
    reference: str
    state: RequestState
    reason: Reason
    locale: str
    channel: Channel | None
    order_number: str
    customer_name: str
    customer_email: str
    amount_requested: Amount
    currency: Currency
    created_at: datetime
    overdue: bool
    assignee: str | None = Field(description="The email address of the staff member who owns it; null: nobody.")
    due_at: datetime | None = Field(
        description="When staff owe the next step (PORTAL_SLA_HOURS after filing, not counting waits on "
        "the customer); null once closed."
    )


class RequestPage(BaseModel):
    items: list[RequestSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    counts: dict[str, int] = Field(description="Requests per state, over all requests.")


class OrderOut(BaseModel):
    order_number: str
    customer_email: str
    customer_name: str
    customer_locale: str
    product: str
    plan: Plan
    amount: Amount
    currency: Currency
    purchased_at: datetime
    period_start: date | None
    period_end: date | None
    payment_reference: str
    payment_status: PaymentStatus
    channel: Channel


class ClauseOut(BaseModel):
    id: str
    title: str


class DecisionOut(BaseModel):
    outcome: str = Field(description="What the policy grants: full, prorated, review or refused.")
    basis: str
    amount: Amount
    documents_required: bool
    policy_version: str | None
    clauses: list[ClauseOut]


class EventOut(BaseModel):
    at: datetime
    actor: str
    from_state: RequestState | None
    to_state: RequestState
    amount: Amount | None
    note: str


class InformationRequestOut(BaseModel):
    asked_at: datetime
    items: list[dict[str, str]]
    message: str
    answered_at: datetime | None
    answer: str


class RefundOut(BaseModel):
    status: RefundStatus
    amount: Amount
    currency: Currency
    gateway: str
    processor_reference: str
    attempt: int
    created_at: datetime
    completed_at: datetime | None


class NoteOut(BaseModel):
    at: datetime
    author: str
    text: str


class SavedReplyOut(BaseModel):
    id: int
    title: str
    bodies: dict[str, str] = Field(description="The text per language (en, zh, nl); empty where not yet written.")
    missing: list[str] = Field(description="The languages without a text yet.")


class SavedReplyList(BaseModel):
    replies: list[SavedReplyOut]
    variables: list[str] = Field(description="The variables a body may name in braces, such as {customer_name}.")


class DocumentOut(BaseModel):
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    created_at: datetime


class RequestDetail(RequestSummary):
    details: str
    review_requested: bool
    amount_approved: Amount | None
    decline_clause: str | None
    alternative_offer_id: str | None
    offer_id: str | None
    offer_set_up_at: datetime | None = Field(
        description="When staff set up the offer the customer took (offer_id); null while it waits on them."
    )
    updated_at: datetime
    order: OrderOut
    decision_at_filing: DecisionOut | None
    decision_now: DecisionOut
    allowed_actions: list[str] = Field(description="What staff may do next from this state.")
    timeline: list[EventOut]
    information_requests: list[InformationRequestOut]
    refunds: list[RefundOut]
    documents: list[DocumentOut]
    notes: list[NoteOut]


# -- actions --------------------------------------------------------------------------------------


class AskInput(Input):
    questions: list[QuestionKey] = Field(default_factory=list)
    documents: list[DocumentKey] = Field(default_factory=list)
    custom: Annotated[str, Field(max_length=2000)] = ""
    message: Annotated[str, Field(max_length=4000)] = ""


class ApproveInput(Input):
    amount: Amount
    note: Annotated[str, Field(max_length=2000)] = ""
    override_reason: Annotated[str, Field(max_length=2000)] = Field(
        "", description="Required (and only allowed for admins) above what the policy grants."
    )


class DeclineInput(Input):
    clause_id: Annotated[str, Field(min_length=1, max_length=64)]
    offer_id: Annotated[str, Field(max_length=64)] = ""
    note: Annotated[str, Field(max_length=2000)] = ""
    override_reason: Annotated[str, Field(max_length=2000)] = Field(
        "", description="Required of agents (not admins) to decline a request the policy grants."
    )


class ProcessInput(Input):
    processor_reference: Annotated[str, Field(max_length=128)] = Field(
        "", description="With the manual gateway: the reference of the refund made in the processor."
    )


class NoteInput(Input):
    text: Annotated[str, Field(min_length=1, max_length=4000)]


class Empty(Input):
    pass


class AssignInput(Input):
    assignee: Annotated[str, Field(max_length=320)] | None = Field(
        description="The email address of an active agent or admin, or null to unassign."
    )


# -- orders ---------------------------------------------------------------------------------------

Text = Annotated[str, Field(max_length=2000)]


class OrderInput(Input):
    """One order, with the columns and rules of the CSV import."""

    order_number: Text
    customer_email: Text
    customer_name: Text
    locale: Text
    product: Text
    plan: Text
    amount: Text
    currency: Text
    purchased_at: Text = Field(description="ISO 8601 with a time zone, such as 2026-10-01T09:30:00Z.")
    period_start: Text = ""
    period_end: Text = ""
    payment_reference: Text
    channel: Text
    affiliate: Text = ""
    affiliate_commission: Text = ""
    invoice_number: Text = Field("", description="The billing system's invoice number; the credit note names it.")
    tax_amount: Text = Field("", description="The tax included in amount, in the same currency.")
    tax_rate: Text = Field("", description="The tax rate as a percentage, such as 21; needs tax_amount.")


class OrdersInput(Input):
    orders: Annotated[list[OrderInput], Field(min_length=1, max_length=1000)]


class OrdersResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    customers_created: int


# -- insights -------------------------------------------------------------------------------------


class InsightsQuery(Query):
    start: date | None = Field(None, description="First day, inclusive (default: 90 days ago).")
    end: date | None = Field(None, description="Last day, inclusive (default: today).")


class MoneyTotal(BaseModel):
    currency: Currency
    count: int
    amount: Amount


class ReasonWeek(BaseModel):
    week: date
    reason: Reason
    count: int


class SavedByReason(BaseModel):
    reason: Reason
    requests: int
    saved: int


class InsightsOut(BaseModel):
    start: date
    end: date
    decisions: dict[str, int]
    approval_rate: float | None
    decline_rate: float | None
    reasons_weekly: list[ReasonWeek]
    refunded: list[MoneyTotal]
    median_seconds: dict[str, float | None] = Field(
        description="Median time to acknowledge, to the first staff action and to resolution."
    )
    overdue: int
    saved: list[SavedByReason]
    feedback_count: int
    feedback_average: float | None
    signals: dict[str, int]
    billing_errors: int


# -- portal sessions ------------------------------------------------------------------------------


class PortalSessionInput(Input):
    order_number: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The order whose page opens, signed in as its customer."
    )
    locale: Literal["en", "zh", "nl"] | None = Field(None, description="The page's language; the customer's otherwise.")
    return_url: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Where the page's “back” link leads: an https:// address (or the portal's own)."
    )


class PortalSessionOut(BaseModel):
    url: str = Field(description="Open once, within `expires_at`; it signs the browser in to the order's page.")
    expires_at: datetime
    order_number: str
