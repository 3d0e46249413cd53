"""Refunds through Stripe with the official library.

The refund is created for the order's charge, in the currency's minor units, with the
idempotency key of the attempt. The library's own network retries are left on: they resend
with the same key, which Stripe answers with the first result.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import stripe
import structlog

from portal.core import metrics
from portal.core.money import Money
from portal.payments.base import GatewayRefund, GatewayUnavailable, RefundDeclined

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses  # the TypedDict StripeClient takes; not re-exported

log = structlog.get_logger(__name__)


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
        call = log.bind(gateway=self.name, idempotency_key=idempotency_key, charge=charge, amount=str(amount),
                        reference=reference or None)
        call.info("gateway refund call")
        started = time.perf_counter()

        def outcome(name: str, **fields: Any) -> None:
            metrics.GATEWAY_REFUNDS.labels(self.name, name).inc()
            line = call.info if name in ("succeeded", "pending") else call.warning
            line("gateway refund answer", outcome=name, duration_ms=round((time.perf_counter() - started) * 1000, 1),
                 **fields)

        try:
            refund = self.client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            outcome("unavailable", error=_message(error))
            raise GatewayUnavailable(_message(error)) from None
        except stripe.APIError as error:  # Stripe's 5xx: the outcome is unknown
            outcome("unavailable", error=_message(error))
            raise GatewayUnavailable(_message(error)) from None
        except stripe.StripeError as error:  # the processor answered no (card, request, idempotency errors)
            outcome("declined", error=_message(error))
            raise RefundDeclined(_message(error)) from None
        if refund.status == "failed":
            reason = getattr(refund, "failure_reason", None) or "the refund failed at Stripe"
            outcome("declined", error=reason, processor_reference=refund.id)
            raise RefundDeclined(reason)
        outcome(str(refund.status), processor_reference=refund.id)
        return GatewayRefund(reference=refund.id, status=refund.status)


def _message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or type(error).__name__

