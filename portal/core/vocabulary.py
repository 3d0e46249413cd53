"""The vocabulary of the portal: one name per concept, used in code, templates and catalogs.

Plain enums with translatable titles; nothing here imports Flask.
"""

from __future__ import annotations

from enum import StrEnum

from portal.core.markers import N_

LOCALES = ("en", "zh", "nl")
# The tag written into <html lang> of pages, emails and receipts: the script matters for Chinese
# fonts (SC, not JP glyphs).
HTML_LANG = {"en": "en", "zh": "zh-Hans", "nl": "nl"}


class Plan(StrEnum):
    MONTHLY = "monthly"
    ANNUAL = "annual"
    ONE_TIME = "one-time"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            Plan.MONTHLY: N_("Monthly plan"),
            Plan.ANNUAL: N_("Annual plan"),
            Plan.ONE_TIME: N_("One-time purchase"),
        }[self]


class Channel(StrEnum):
    WEB = "web"
    RESELLER = "reseller"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {Channel.WEB: N_("Bought online"), Channel.RESELLER: N_("Bought through a reseller")}[self]


class PaymentStatus(StrEnum):
    PAID = "paid"
    CHARGED_BACK = "charged_back"
    REFUNDED = "refunded"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            PaymentStatus.PAID: N_("Paid"),
            PaymentStatus.CHARGED_BACK: N_("Charged back"),
            PaymentStatus.REFUNDED: N_("Refunded"),
        }[self]


class Reason(StrEnum):
    TECHNICAL_PROBLEM = "technical_problem"
    NOT_AS_EXPECTED = "not_as_expected"
    BILLING_ERROR = "billing_error"
    NO_LONGER_NEEDED = "no_longer_needed"
    OTHER = "other"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            Reason.TECHNICAL_PROBLEM: N_("A technical problem"),
            Reason.NOT_AS_EXPECTED: N_("Not what I expected"),
            Reason.BILLING_ERROR: N_("Billing error or duplicate charge"),
            Reason.NO_LONGER_NEEDED: N_("No longer needed"),
            Reason.OTHER: N_("Something else"),
        }[self]

    @property
    def staff_title(self) -> str:
        """The reason as staff name it: the customer's own words ("Not what I expected") are in the first person."""
        return {Reason.NOT_AS_EXPECTED: N_("Not as expected")}.get(self, self.title)


class RequestState(StrEnum):
    RECEIVED = "received"
    AWAITING_CUSTOMER = "awaiting_customer"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REFUND_FAILED = "refund_failed"
    REFUNDED = "refunded"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    RESOLVED_WITH_OFFER = "resolved_with_offer"
    CLOSED_UNANSWERED = "closed_unanswered"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            RequestState.RECEIVED: N_("Received"),
            RequestState.AWAITING_CUSTOMER: N_("Waiting for your reply"),
            RequestState.IN_REVIEW: N_("In review"),
            RequestState.APPROVED: N_("Approved"),
            RequestState.REFUND_FAILED: N_("Refund delayed"),
            RequestState.REFUNDED: N_("Refunded"),
            RequestState.DECLINED: N_("Declined"),
            RequestState.WITHDRAWN: N_("Withdrawn"),
            RequestState.RESOLVED_WITH_OFFER: N_("Resolved with an offer"),
            RequestState.CLOSED_UNANSWERED: N_("Closed without an answer"),
        }[self]

    @property
    def staff_title(self) -> str:
        """The state as the staff console names it: the customer's titles speak to the customer
        ("Waiting for your reply") or soften what staff must act on ("Refund delayed")."""
        return {
            RequestState.AWAITING_CUSTOMER: N_("Waiting on customer"),
            RequestState.REFUND_FAILED: N_("Refund failed"),
        }.get(self, self.title)

    @property
    def is_open(self) -> bool:
        return self not in CLOSED_STATES


CLOSED_STATES = frozenset(
    {
        RequestState.REFUNDED,
        RequestState.DECLINED,
        RequestState.WITHDRAWN,
        RequestState.RESOLVED_WITH_OFFER,
        RequestState.CLOSED_UNANSWERED,
    }
)


class StaffRole(StrEnum):
    AGENT = "agent"
    ADMIN = "admin"
    MARKETING = "marketing"


class Actor(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"


class RefundStatus(StrEnum):
    """Where one attempt to move money stands at the payment processor."""

    PENDING = "pending"  # sent, or about to be; the processor has not answered for sure
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
