"""Refunds through Paddle Billing (a merchant of record) with the official ``paddle-python-sdk``.

A refund is an adjustment with ``action: refund`` on the order's transaction (its
``payment_reference``, ``txn_…``): ``type: full`` when the whole grand total goes back and
nothing was adjusted before, otherwise a partial adjustment spread over the transaction's line
items (each at most what is left of it). Paddle has no idempotency keys, so the attempt's key is
written into the adjustment's ``reason`` and every call first lists the transaction's refund
adjustments: a retry after a lost answer or a 5xx finds the adjustment it made and returns it
instead of refunding twice. Most refunds are created ``pending_approval`` and are approved or
rejected later (``adjustment.updated``, ``portal/refunds/paddle_events.py``).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import requests
from paddle_billing import Client, Options
from paddle_billing.Entities.Adjustment import Adjustment
from paddle_billing.Entities.Shared import Action, AdjustmentStatus, AdjustmentType
from paddle_billing.Environment import Environment
from paddle_billing.Exceptions.ApiError import ApiError
from paddle_billing.Resources.Adjustments.Operations import CreateAdjustment, ListAdjustments
from paddle_billing.Resources.Adjustments.Operations.Create.AdjustmentItem import AdjustmentItem

from portal.core.money import Money
from portal.payments.base import GatewayMisconfigured, GatewayRefund, GatewayUnavailable, RefundDeclined

# Paddle's adjustment statuses in the gateway interface's words.
STATUSES = {"pending_approval": "pending", "approved": "succeeded"}


def key_marker(idempotency_key: str) -> str:
    return f"[{idempotency_key}]"


class PaddleGateway:
    name = "paddle"

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: float = 30.0):
        # The SDK knows Paddle's two addresses by name; any other (a local double) is given as an
        # environment that answers with that base URL, the one attribute the client reads.
        if api_base in (None, "", Environment.PRODUCTION.base_url):
            environment: Any = Environment.PRODUCTION
        elif api_base == Environment.SANDBOX.base_url:
            environment = Environment.SANDBOX
        else:
            environment = SimpleNamespace(base_url=api_base)
        # The SDK retries 429 and 5xx itself on https:// (urllib3 Retry); the attempt's marker in
        # the reason keeps a retried creation from refunding twice only when we list first, so
        # its own retries are left to it and ours go through refund() again.
        self.client = Client(api_key, options=Options(environment=environment), timeout=timeout)

    def refund(
        self,
        *,
        payment: str,
        amount: Money,
        idempotency_key: str,
        reference: str = "",
        metadata: dict[str, str] | None = None,
    ) -> GatewayRefund:
        marker = key_marker(idempotency_key)
        request_reference = (metadata or {}).get("refund_request", "")
        try:
            earlier = self._refunds_of(payment)
            for adjustment in earlier:
                if adjustment.reason.endswith(marker):
                    return _answer(adjustment)  # made by this attempt before; its answer was lost
            transaction = self._transaction(payment)
            operation = _operation(
                transaction, earlier, amount, f"Refund request {request_reference} {marker}".strip(), payment
            )
            return _answer(self.client.adjustments.create(operation))
        except ApiError as error:
            raise _sorted(error) from None
        except requests.RequestException as error:
            raise GatewayUnavailable(f"Paddle did not answer: {type(error).__name__}") from None

    def find_refund(self, *, payment: str, metadata: dict[str, str]) -> GatewayRefund | None:
        """The refund this attempt made before, recognised by the key at the end of its reason."""
        marker = key_marker(f"refund-{metadata.get('refund_request', '')}-attempt-{metadata.get('attempt', '')}")
        try:
            for adjustment in self._refunds_of(payment):
                if adjustment.reason.endswith(marker):
                    return _answer(adjustment)
        except ApiError as error:
            problem = _sorted(error)
            raise (problem if isinstance(problem, GatewayUnavailable) else GatewayUnavailable(str(problem))) from None
        except requests.RequestException as error:
            raise GatewayUnavailable(f"Paddle did not answer: {type(error).__name__}") from None
        return None

    def _refunds_of(self, transaction_id: str) -> list[Adjustment]:
        return list(
            self.client.adjustments.list(ListAdjustments(transaction_ids=[transaction_id], action=Action.Refund))
        )

    def _transaction(self, transaction_id: str) -> dict[str, Any]:
        response = self.client.get_raw(f"/transactions/{transaction_id}")
        data: dict[str, Any] = json.loads(response.text)["data"]
        return data


def _answer(adjustment: Adjustment) -> GatewayRefund:
    status = str(adjustment.status.value)
    if status in ("rejected", "reversed"):
        raise RefundDeclined(f"Paddle {status} the refund (adjustment {adjustment.id})", status)
    return GatewayRefund(reference=adjustment.id, status=STATUSES.get(status, "pending"))


def _sorted(error: ApiError) -> Exception:
    """Paddle's error as the portal's: no reliable answer, or a refusal of the portal's own request."""
    status = error.response.status_code if error.response is not None else 0
    if status >= 500 or status == 429:
        return GatewayUnavailable(f"Paddle answered {status}: {error.detail}", server_error=status >= 500)
    # A merchant of record refunds from its own balance: no customer's card can refuse an adjustment.
    # Paddle refusing the request itself (a key, an amount above what is left, an unknown transaction)
    # is the portal's to fix; a rejection comes later, as the adjustment's own status.
    return GatewayMisconfigured(f"{error.detail} ({error.error_code})", error.error_code or str(status))


def _operation(
    transaction: dict[str, Any], earlier: list[Adjustment], amount: Money, reason: str, transaction_id: str
) -> CreateAdjustment:
    details = transaction.get("details") or {}
    grand_total = int(
        (details.get("totals") or {}).get("grand_total") or (details.get("totals") or {}).get("total") or 0
    )
    live = [a for a in earlier if a.status not in (AdjustmentStatus.Rejected, AdjustmentStatus.Reversed)]
    if not live and amount.minor == grand_total:
        return CreateAdjustment.full(Action.Refund, reason, transaction_id)
    taken: dict[str, int] = {}
    for adjustment in live:
        for item in adjustment.items:
            taken[item.item_id] = taken.get(item.item_id, 0) + int(item.totals.total)
    items, left = [], amount.minor
    for line in details.get("line_items") or []:
        if left <= 0:
            break
        room = int((line.get("totals") or {}).get("total") or 0) - taken.get(line["id"], 0)
        share = min(room, left)
        if share > 0:
            items.append(AdjustmentItem(item_id=line["id"], type=AdjustmentType.Partial, amount=str(share)))
            left -= share
    if left > 0 or not items:
        raise GatewayMisconfigured(
            f"only {amount.minor - left} of the transaction is left to refund at Paddle", "amount_too_large"
        )
    return CreateAdjustment.partial(Action.Refund, items, reason, transaction_id)
