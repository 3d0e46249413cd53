"""Refunds through Stripe with the official library.

The refund is created for the order's charge, in the currency's minor units, with the
idempotency key of the attempt. The library's own network retries are left on: they resend
with the same key, which Stripe answers with the first result.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import stripe

from portal.core.money import Money
from portal.payments.base import GatewayRefund, GatewayUnavailable, RefundDeclined

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses  # the TypedDict StripeClient takes; not re-exported


class StripeGateway:
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: float = 30.0,
                 max_network_retries: int = 2):
        base: BaseAddresses | None = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(
            api_key, base_addresses=base, max_network_retries=max_network_retries,
            # The library waits 80 s by default; a staff member's click should not.
            http_client=stripe.new_default_http_client(timeout=timeout))

    def refund(self, *, charge: str, amount: Money, idempotency_key: str, reference: str = "",
               metadata: dict[str, str] | None = None) -> GatewayRefund:
        params: stripe.params.RefundCreateParams = {
            "charge": charge, "amount": amount.minor, "metadata": metadata or {}}
        try:
            refund = self.client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            raise GatewayUnavailable(_message(error)) from None
        except stripe.APIError as error:  # Stripe's 5xx: the outcome is unknown
            raise GatewayUnavailable(_message(error)) from None
        except stripe.StripeError as error:  # the processor answered no (card, request, idempotency errors)
            raise RefundDeclined(_message(error)) from None
        if refund.status == "failed":
            raise RefundDeclined(getattr(refund, "failure_reason", None) or "the refund failed at Stripe")
        return GatewayRefund(reference=refund.id, status=refund.status)


def _message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or type(error).__name__

