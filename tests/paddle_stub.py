"""A local HTTP server that answers as Paddle Billing's API does for refunds, with Paddle's state.

It keeps completed transactions with their line items and the adjustments made against them, and
follows Paddle's documented behaviour: ``GET /transactions/{id}``, ``GET /adjustments`` filtered by
``transaction_id`` and ``action``, ``POST /adjustments`` for ``action: refund`` (``type: full`` for
what is left of the grand total, or partial items of at most what is left of each line item);
refunds are created ``pending_approval`` and then approved or rejected (as Paddle's reviewers
do, here by the test); a second adjustment while a refund is pending is refused
(``adjustment_pending_refund_request``), and so is more than is left
(``adjustment_total_amount_above_remaining_allowed``) or a transaction that is not completed.
Errors are Paddle's envelope (``error.type``, ``code``, ``detail``, ``documentation_url``). It can fail
on demand: answer 500 before doing anything, drop the connection after making the adjustment (the
answer is lost, the refund exists), or be slow. It also writes the webhook notifications Paddle
would send (``adjustment.created``/``updated``, ``transaction.completed``) and signs them with
``Paddle-Signature: ts=…;h1=…``. The official SDK talks to it over real HTTP; nothing is patched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

DOCS = "https://developer.paddle.com/errors/"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class PaddleStub:
    def __init__(self, auto_approve: bool = False):
        self.transactions: dict[str, dict] = {}
        self.adjustments: list[dict] = []
        self.failures: list[str] = []  # "server_error", "drop", one per coming POST
        self.auto_approve = auto_approve
        self.delay = 0.0
        self.calls = 0  # POST /adjustments received
        self.lock = threading.Lock()
        self.events = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict, drop: bool = False) -> None:
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._answer(*stub.get(self.path, self.headers.get("Authorization", "")))

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                self._answer(*stub.post(self.path, body, self.headers.get("Authorization", "")))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> PaddleStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def portal_settings(self, **more) -> dict:
        return {
            "PAYMENT_GATEWAY": "paddle",
            "PADDLE_API_KEY": "pdl_sdbx_apikey_portal",
            "PADDLE_API_BASE": self.url,
            "PADDLE_TIMEOUT": 5,
            "PADDLE_WEBHOOK_SECRET": "pdl_ntfset_secret",
            **more,
        }

    # -- the seller's data ----------------------------------------------------------------------

    def add_transaction(
        self,
        transaction_id: str,
        items: list[int],
        currency: str,
        *,
        status: str = "completed",
        customer_id: str = "ctm_01stub",
        email: str = "",
        custom_data: dict | None = None,
    ) -> dict:
        line_items = [
            {
                "id": f"txnitm_{transaction_id[4:]}{n:02d}",
                "price_id": f"pri_stub{n:02d}",
                "quantity": 1,
                "totals": {"subtotal": str(amount), "tax": "0", "discount": "0", "total": str(amount)},
                "product": {"id": f"pro_stub{n:02d}", "name": f"Product {n}"},
            }
            for n, amount in enumerate(items, 1)
        ]
        total = sum(items)
        transaction = {
            "id": transaction_id,
            "status": status,
            "customer_id": customer_id,
            "currency_code": currency,
            "origin": "web",
            "subscription_id": None,
            "invoice_number": None,
            "collection_mode": "automatic",
            "custom_data": custom_data,
            "billed_at": _now(),
            "created_at": _now(),
            "updated_at": _now(),
            "customer": {"id": customer_id, "email": email},
            "details": {
                "totals": {
                    "subtotal": str(total),
                    "tax": "0",
                    "discount": "0",
                    "total": str(total),
                    "grand_total": str(total),
                    "currency_code": currency,
                },
                "line_items": line_items,
            },
        }
        self.transactions[transaction_id] = transaction
        return transaction

    def refunded(self, transaction_id: str, statuses=("approved", "pending_approval")) -> int:
        return sum(
            int(a["totals"]["total"])
            for a in self.adjustments
            if a["transaction_id"] == transaction_id and a["status"] in statuses
        )

    # -- Paddle's behaviour ---------------------------------------------------------------------

    def get(self, path: str, auth: str) -> tuple[int, dict]:
        time.sleep(self.delay)
        if not auth.startswith("Bearer pdl_"):
            return _error(403, "authentication_malformed", "Authentication header included, but incorrectly formatted")
        url = urlparse(path)
        with self.lock:
            if url.path.startswith("/transactions/"):
                transaction = self.transactions.get(url.path.rsplit("/", 1)[1])
                if transaction is None:
                    return _error(404, "not_found", "Entity not found", kind="request_error")
                return 200, {"data": transaction, "meta": {"request_id": "stub"}}
            if url.path == "/adjustments":
                query = parse_qs(url.query)
                found = [
                    a
                    for a in self.adjustments
                    if ("transaction_id" not in query or a["transaction_id"] in query["transaction_id"][0].split(","))
                    and ("action" not in query or a["action"] == query["action"][0])
                ]
                return 200, {
                    "data": found,
                    "meta": {
                        "request_id": "stub",
                        "pagination": {
                            "per_page": 50,
                            "next": f"{self.url}/adjustments?after=end",
                            "has_more": False,
                            "estimated_total": len(found),
                        },
                    },
                }
        return _error(404, "not_found", "Entity not found", kind="request_error")

    def post(self, path: str, body: dict, auth: str) -> tuple[int, dict, bool]:
        time.sleep(self.delay)
        with self.lock:
            if not auth.startswith("Bearer pdl_"):
                return (
                    *_error(
                        403, "authentication_malformed", "Authentication header included, but incorrectly formatted"
                    ),
                    False,
                )
            if path != "/adjustments":
                return (*_error(404, "not_found", "Entity not found"), False)
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
            if failure == "server_error":
                return (*_error(500, "internal_error", "An internal error occurred", kind="api_error"), False)
            status, answer = self._create(body)
            return status, answer, failure == "drop" and status == 201

    def _create(self, body: dict) -> tuple[int, dict]:
        transaction = self.transactions.get(body.get("transaction_id", ""))
        if body.get("action") != "refund":
            return _error(400, "bad_request", "Only refunds are simulated by this double")
        if transaction is None:
            return _error(400, "adjustment_transaction_missing", "The transaction was not found")
        if transaction["status"] != "completed":
            return _error(
                400,
                "adjustment_transaction_invalid_status_for_refund",
                f"The transaction being adjusted (refund) has a non supported status. ID: {transaction['id']}",
            )
        mine = [a for a in self.adjustments if a["transaction_id"] == transaction["id"] and a["action"] == "refund"]
        if any(a["status"] == "pending_approval" for a in mine):
            return _error(
                400,
                "adjustment_pending_refund_request",
                "You are unable to create further adjustments "
                "against this transaction as there is a pending refund request",
            )
        taken: dict[str, int] = {}
        for adjustment in mine:
            if adjustment["status"] in ("approved", "pending_approval"):
                for item in adjustment["items"]:
                    taken[item["item_id"]] = taken.get(item["item_id"], 0) + int(item["totals"]["total"])
        lines = {line["id"]: int(line["totals"]["total"]) for line in transaction["details"]["line_items"]}
        if body.get("type") == "full":
            if body.get("items"):
                return _error(400, "bad_request", "items are not allowed when the adjustment type is full")
            wanted = [(item_id, "full", total - taken.get(item_id, 0)) for item_id, total in lines.items()]
        else:
            wanted = []
            for item in body.get("items") or []:
                if item.get("item_id") not in lines:
                    return _error(400, "adjustment_invalid_transaction_item", "The transaction item was not found")
                amount = int(item.get("amount") or 0) if item.get("type") == "partial" else lines[item["item_id"]]
                wanted.append((item["item_id"], item.get("type", "partial"), amount))
            if not wanted:
                return _error(400, "bad_request", "items must not be empty for a partial adjustment")
        asked = sum(amount for _, _, amount in wanted)
        left = sum(lines.values()) - sum(taken.values())
        if asked <= 0 or asked > left or any(amount > lines[i] - taken.get(i, 0) for i, _, amount in wanted):
            return _error(
                400,
                "adjustment_total_amount_above_remaining_allowed",
                "The adjustment amount exceeds the "
                f"total amount left to adjust. Amount to Adjust: {asked}, Amount Left: {left}",
            )
        number = len(self.adjustments) + 1
        currency = transaction["currency_code"]
        fee = round(asked * 0.05)
        adjustment = {
            "id": f"adj_stub{number:022d}",
            "action": "refund",
            "type": body.get("type", "partial"),
            "transaction_id": transaction["id"],
            "subscription_id": None,
            "customer_id": transaction["customer_id"],
            "reason": body.get("reason", ""),
            "credit_applied_to_balance": None,
            "currency_code": currency,
            "status": "approved" if self.auto_approve else "pending_approval",
            "items": [
                {
                    "id": f"adjitm_stub{number:04d}{n:02d}",
                    "item_id": item_id,
                    "type": kind,
                    "amount": str(amount),
                    "proration": None,
                    "totals": {"subtotal": str(amount), "tax": "0", "total": str(amount)},
                }
                for n, (item_id, kind, amount) in enumerate(wanted, 1)
            ],
            "totals": {
                "subtotal": str(asked),
                "tax": "0",
                "total": str(asked),
                "fee": str(fee),
                "retained_fee": "0",
                "earnings": str(asked - fee),
                "currency_code": currency,
            },
            "payout_totals": None,
            "tax_rates_used": [],
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.adjustments.append(adjustment)
        return 201, {"data": adjustment, "meta": {"request_id": "stub"}}

    # -- Paddle's reviewers and notifications ---------------------------------------------------

    def review(self, adjustment_id: str, status: str) -> dict:
        """Approve or reject a pending refund, as Paddle does; answers the adjustment.updated event."""
        with self.lock:
            adjustment = next(a for a in self.adjustments if a["id"] == adjustment_id)
            adjustment["status"] = status
            adjustment["updated_at"] = _now()
            return self.event("adjustment.updated", adjustment)

    def event(self, event_type: str, data: dict) -> dict:
        self.events += 1
        return {
            "event_id": f"evt_stub{self.events:022d}",
            "event_type": event_type,
            "occurred_at": _now(),
            "notification_id": f"ntf_stub{self.events:022d}",
            "data": json.loads(json.dumps(data)),
        }

    @staticmethod
    def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
        ts = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return f"ts={ts};h1={digest}"


def _error(status: int, code: str, detail: str, kind: str = "request_error") -> tuple[int, dict]:
    return status, {
        "error": {"type": kind, "code": code, "detail": detail, "documentation_url": DOCS + code},
        "meta": {"request_id": "stub"},
    }
