"""Refunds through Stripe with the official library, at one pinned API version.

The refund is created for the order's payment (``payment_intent`` for ``pi_…``, ``charge`` for
``ch_…``), in the currency's minor units, with the idempotency key of the attempt and our
metadata (the request's reference and the attempt), so that a refund whose answer was lost can
be found again by listing the payment's refunds. The library's own network retries are left on:
they resend with the same key, which Stripe answers with the first result.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import stripe
import structlog

from portal.core import metrics
from portal.core.money import Money
from portal.payments.base import GatewayMisconfigured, GatewayRefund, GatewayUnavailable, RefundDeclined

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses  # the TypedDict StripeClient takes; not re-exported

# The API version the portal is written and tested against (PORTAL_STRIPE_API_VERSION overrides
# it only together with a change of code): every request sends it, every event must carry it.
STRIPE_API_VERSION = "2026-10-28.endive"

log = structlog.get_logger(__name__)


def payment_field(payment: str) -> str:
    """The refund parameter that names ``payment``: Checkout and Billing pay with PaymentIntents."""
    return "payment_intent" if payment.startswith("pi_") else "charge"


class StripeGateway:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float = 30.0,
        max_network_retries: int = 2,
        api_version: str = STRIPE_API_VERSION,
    ):
        base: BaseAddresses | None = {"api": api_base} if api_base else None
        self.livemode = api_key.startswith(("sk_live_", "rk_live_"))
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=base,
            max_network_retries=max_network_retries,
            stripe_version=api_version,
            # The library waits 80 s by default; a staff member's click should not.
            http_client=stripe.new_default_http_client(timeout=timeout),
        )

    def refund(
        self,
        *,
        payment: str,
        amount: Money,
        idempotency_key: str,
        reference: str = "",
        metadata: dict[str, str] | None = None,
    ) -> GatewayRefund:
        params: dict[str, Any] = {payment_field(payment): payment, "amount": amount.minor, "metadata": metadata or {}}
        call = log.bind(
            gateway=self.name,
            idempotency_key=idempotency_key,
            payment=payment,
            amount=str(amount),
            reference=reference or None,
        )
        call.info("gateway refund call")
        started = time.perf_counter()

        def outcome(name: str, **fields: Any) -> None:
            metrics.GATEWAY_REFUNDS.labels(self.name, name).inc()
            line = call.info if name in ("succeeded", "pending", "requires_action") else call.warning
            line(
                "gateway refund answer",
                outcome=name,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **fields,
            )

        try:
            refund = self.client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            problem = _sorted(error)
            outcome(_OUTCOMES.get(type(problem), "error"), error=str(problem))
            raise problem from None
        answer = _answer(refund)
        outcome(answer.status, processor_reference=answer.reference)
        return answer

    def find_refund(self, *, payment: str, metadata: dict[str, str]) -> GatewayRefund | None:
        params: dict[str, Any] = {payment_field(payment): payment, "limit": 100}
        try:
            page = self.client.v1.refunds.list(params=params)  # type: ignore[arg-type]
        except stripe.StripeError as error:
            problem = _sorted(error)
            raise problem if not isinstance(problem, RefundDeclined) else GatewayUnavailable(str(problem)) from None
        for refund in page.auto_paging_iter():
            found = _plain(refund.metadata)
            if all(found.get(k) == v for k, v in metadata.items()):
                return _answer(refund)
        return None


def _answer(refund: Any) -> GatewayRefund:
    return GatewayRefund(
        reference=refund.id,
        status=refund.status or "succeeded",
        failure_reason=getattr(refund, "failure_reason", None) or "",
        amount_minor=refund.amount,
        metadata=_plain(refund.metadata),
    )


_OUTCOMES: dict[type[Exception], str] = {
    GatewayUnavailable: "unavailable",
    RefundDeclined: "declined",
    GatewayMisconfigured: "misconfigured",
}


def _sorted(error: stripe.StripeError) -> Exception:
    """Stripe's error as the portal's: whose problem it is decides who hears about it."""
    code = getattr(error, "code", None) or ""
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)):
        return GatewayUnavailable(_message(error))  # no answer: the outcome is unknown
    if isinstance(error, stripe.APIError):  # a 5xx: unknown too, and Stripe replays it for the key
        return GatewayUnavailable(_message(error), server_error=True)
    if isinstance(error, stripe.CardError):
        return RefundDeclined(_message(error), code)  # the customer's card: the attempt is over
    # 401, 403, an idempotency mismatch, a charge already refunded or disputed, an amount above what is
    # left: Stripe refused the portal's request. Ours to fix; the customer did nothing wrong.
    return GatewayMisconfigured(_message(error), code or type(error).__name__)


def _message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or type(error).__name__


def _plain(metadata: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (metadata.to_dict() if metadata is not None else {}).items()}
