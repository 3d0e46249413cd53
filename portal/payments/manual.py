"""The default gateway: staff reverse the charge in the processor's dashboard and record it here."""

from __future__ import annotations

import structlog

from portal.core import metrics
from portal.core.money import Money
from portal.payments.base import GatewayRefund, RefundDeclined

log = structlog.get_logger(__name__)


class ManualGateway:
    name = "manual"

    def refund(
        self,
        *,
        payment: str,
        amount: Money,
        idempotency_key: str,
        reference: str = "",
        metadata: dict[str, str] | None = None,
    ) -> GatewayRefund:
        reference = reference.strip()
        if not reference:
            # Nothing was sent anywhere: the staff member must say where the money went.
            raise ValueError("a manual refund needs the processor's reference")
        # Nothing is called: the staff member refunded in the processor's dashboard. Logged all the
        # same, so every refund has its line with its idempotency key.
        metrics.GATEWAY_REFUNDS.labels(self.name, "succeeded").inc()
        log.info(
            "gateway refund recorded",
            gateway=self.name,
            idempotency_key=idempotency_key,
            payment=payment,
            amount=str(amount),
            processor_reference=reference,
            outcome="succeeded",
        )
        return GatewayRefund(reference=reference)

    def find_refund(self, *, payment: str, metadata: dict[str, str]) -> GatewayRefund | None:
        return None  # nothing is ever sent, so nothing can be waiting to be found


__all__ = ["ManualGateway", "RefundDeclined"]
