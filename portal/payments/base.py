"""What every payment gateway promises.

``refund`` moves ``amount`` of the order's charge back, sending ``idempotency_key`` so that a
repeated call for the same attempt can never refund twice. It answers with the processor's
reference, or raises:

- ``RefundDeclined``: the processor answered and said no (the attempt is over; a retry is a
  new attempt with a new key);
- ``GatewayUnavailable``: no reliable answer (network error, timeout, 5xx). The refund may or
  may not exist at the processor, so a retry must reuse the same key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from portal.core.money import Money


class RefundDeclined(Exception):
    pass


class GatewayUnavailable(Exception):
    pass


@dataclass(frozen=True)
class GatewayRefund:
    reference: str
    # The processor's word for it; Stripe's types allow none, which is read as done like "succeeded".
    status: str | None = "succeeded"


class Gateway(Protocol):
    name: str

    def refund(self, *, charge: str, amount: Money, idempotency_key: str, reference: str = "",
               metadata: dict[str, str] | None = None) -> GatewayRefund: ...
