"""What every payment gateway promises.

``refund`` moves ``amount`` of the order's payment back, sending ``idempotency_key`` so that a
repeated call for the same attempt can never refund twice. It answers with the processor's
refund (its reference, its status word and, when it failed, its reason code), or raises:

- ``RefundDeclined``: the processor answered and said no because of the customer's payment method
  (a closed card): the attempt is over, the customer is told, a retry is a new attempt with a new key;
- ``GatewayMisconfigured``: the processor refused *our* request (a rejected or under-privileged
  key, a charge already refunded or disputed, an amount above what is left): the attempt is over
  but the customer did nothing wrong, so staff are alerted and the customer is not told;
- ``GatewayUnavailable``: no reliable answer (network error, timeout, 5xx). The refund may or
  may not exist at the processor: before trying again, ``find_refund`` looks for it.

``find_refund`` lists the refunds of a payment and returns the one whose metadata holds every
given item, or None; it raises ``GatewayUnavailable`` when it cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from portal.core.markers import N_
from portal.core.money import Money

# Stripe's words for a refund (the Refund object's ``status``): the first two keep a refund in
# progress, the last two end it without money moving.
IN_PROGRESS = ("pending", "requires_action")
SUCCEEDED = "succeeded"
UNSUCCESSFUL = ("failed", "canceled")


# Stripe's ``failure_reason`` codes (and Paddle's refusals), each as a sentence the customer and staff read in their language.
FAILURE_REASONS = {
    "lost_or_stolen_card": N_(
        "The card you paid with has been reported lost or stolen, so it cannot receive the refund."
    ),
    "expired_or_canceled_card": N_(
        "The card you paid with has expired or been closed, so it cannot receive the refund."
    ),
    "charge_for_pending_refund_disputed": N_(
        "The payment is disputed with your bank, so it cannot be refunded while the dispute is open."
    ),
    "insufficient_funds": N_("The refund could not be sent yet because of a balance problem on our side."),
    "declined": N_("Your bank or card issuer declined the refund."),
    "merchant_request": N_("The refund was stopped on our side."),
    "canceled": N_("The refund was canceled before it was completed."),
    "unknown": N_("The payment processor could not complete the refund and gave no reason."),
    # Paddle's adjustment statuses: a refund its reviewers turned down, or undid after approving it.
    "rejected": N_("The payment processor reviewed the refund and did not approve it."),
    "reversed": N_("The payment processor reversed the refund."),
}


# The processor's news about a refund still in progress, as a timeline title.
PROGRESS_TITLES = {
    "pending": N_("Refund in progress"),
    "requires_action": N_("Refund in progress: your action is needed"),
}


def failure_sentence(code: str) -> str:
    """The msgid explaining a failure code (unknown codes read as Stripe's own ``unknown``)."""
    return FAILURE_REASONS.get(code, FAILURE_REASONS["unknown"])


class RefundDeclined(Exception):
    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class GatewayMisconfigured(Exception):
    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class GatewayUnavailable(Exception):
    def __init__(self, message: str, *, server_error: bool = False):
        super().__init__(message)
        # True for a 5xx, which Stripe stores under the key and replays: the key can never tell more.
        self.server_error = server_error


@dataclass(frozen=True)
class GatewayRefund:
    reference: str
    # The processor's word for it: pending, requires_action, succeeded, failed or canceled.
    status: str = SUCCEEDED
    failure_reason: str = ""
    amount_minor: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Gateway(Protocol):
    name: str

    def refund(
        self,
        *,
        payment: str,
        amount: Money,
        idempotency_key: str,
        reference: str = "",
        metadata: dict[str, str] | None = None,
    ) -> GatewayRefund: ...

    def find_refund(self, *, payment: str, metadata: dict[str, str]) -> GatewayRefund | None: ...
