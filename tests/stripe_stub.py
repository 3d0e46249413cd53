"""A local HTTP server that answers as Stripe's refunds API does, with Stripe's state and rules.

It keeps charges (and the PaymentIntents that made them) with their refunded amounts, and holds
Stripe's rules as its API reference states them (API version ``STRIPE_API_VERSION``):

- refunds are created for a ``charge`` or a ``payment_intent``; one above what is left answers
  ``amount_too_large``, one of a fully refunded charge ``charge_already_refunded``, one of a
  disputed charge ``charge_disputed``; a key that is not a secret test key answers 401, a
  restricted key 403;
- an idempotency key's first answer is saved, 500s included, and replayed for the same
  parameters; other parameters with the same key are refused; keys are forgotten after 24 hours
  (a reused old key makes a second refund, as at Stripe);
- a refund's status is one of ``pending``, ``requires_action``, ``succeeded``, ``failed`` or
  ``canceled``; a card that was closed does not refuse at once: the refund is accepted and
  fails later with a ``failure_reason`` (``settle``), and a failed or canceled refund gives its
  amount back to the charge;
- refunds are listed by charge or PaymentIntent (``GET /v1/refunds``), with their metadata;
- events (``event``) are in the shapes of the pinned version: a Charge carries no ``refunds``.

It can also fail on demand: answer 500, drop the connection after making the refund (the answer
is lost, the refund exists), or be slow. The official library talks to it over real HTTP;
nothing in the library is patched.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from portal.payments.stripe_gateway import STRIPE_API_VERSION

KEY_LIFETIME = 24 * 3600
STATUSES = ("pending", "requires_action", "succeeded", "failed", "canceled")


class StripeStub:
    def __init__(self):
        self.charges: dict[str, dict] = {}
        self.payment_intents: dict[str, str] = {}  # pi_… → its charge
        self.refunds: list[dict] = []
        self.idempotency: dict[str, tuple[tuple, int, dict, float]] = {}
        # One per coming create call: "server_error", "drop", or a status the refund starts in
        # ("pending", "requires_action"); "closed_card" accepts it as pending, to fail later.
        self.failures: list[str] = []
        self.delay = 0.0
        self.calls = 0
        self.versions: list[str] = []  # the Stripe-Version of every request
        self.events = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _answer(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_{stub.calls}")
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                url = urlsplit(self.path)
                status, body = stub.read(
                    url.path,
                    dict(parse_qsl(url.query)),
                    self.headers.get("Authorization", ""),
                    self.headers.get("Stripe-Version", ""),
                )
                self._answer(status, body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                params = dict(parse_qsl(self.rfile.read(length).decode()))
                status, body, drop = stub.handle(
                    self.path,
                    params,
                    self.headers.get("Idempotency-Key"),
                    self.headers.get("Authorization", ""),
                    self.headers.get("Stripe-Version", ""),
                )
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._answer(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> StripeStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def portal_settings(self, **more) -> dict:
        """The portal's configuration for refunding through this stub: no retries, a short timeout."""
        return {
            "PAYMENT_GATEWAY": "stripe",
            "STRIPE_API_KEY": "sk_test_portal",
            "STRIPE_API_BASE": self.url,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "STRIPE_TIMEOUT": 5,
            **more,
        }

    def add_charge(self, charge_id: str, amount: int, currency: str, *, payment_intent: str | None = None) -> None:
        self.charges[charge_id] = {
            "amount": amount,
            "currency": currency.lower(),
            "refunded": 0,
            "disputed": False,
            "payment_intent": payment_intent,
        }
        if payment_intent:
            self.payment_intents[payment_intent] = charge_id

    def add_payment_intent(self, payment_intent: str, amount: int, currency: str) -> str:
        """A PaymentIntent (what Checkout and Billing make) and the charge it made; returns the charge's id."""
        charge = "ch_" + payment_intent[3:]
        self.add_charge(charge, amount, currency, payment_intent=payment_intent)
        return charge

    def dispute(self, charge_id: str) -> None:
        self.charges[charge_id]["disputed"] = True

    def refunded(self, charge_id: str) -> int:
        return self.charges[charge_id]["refunded"]

    def refund(self, refund_id: str) -> dict:
        return next(r for r in self.refunds if r["id"] == refund_id)

    # -- what Stripe does later, and tells in events ------------------------------------------------

    def settle(self, refund_id: str, status: str, failure_reason: str | None = None) -> dict:
        """Move a refund on as Stripe does after answering, and return the event Stripe sends about it."""
        assert status in STATUSES
        with self.lock:
            refund = self.refund(refund_id)
            if status in ("failed", "canceled") and refund["status"] not in ("failed", "canceled"):
                self.charges[refund["charge"]]["refunded"] -= refund["amount"]  # the money is back with us
            refund["status"] = status
            refund["failure_reason"] = (failure_reason or "unknown") if status == "failed" else None
            refund["next_action"] = _next_action() if status == "requires_action" else None
        return self.event("refund.failed" if status == "failed" else "refund.updated", dict(refund))

    def charge_event(self, kind: str, charge_id: str) -> dict:
        """A Charge as events carry it in the pinned version: no ``refunds`` list (gone since 2022-11-15)."""
        charge = self.charges[charge_id]
        obj = {
            "id": charge_id,
            "object": "charge",
            "amount": charge["amount"],
            "currency": charge["currency"],
            "amount_refunded": charge["refunded"],
            "refunded": charge["refunded"] >= charge["amount"],
            "payment_intent": charge["payment_intent"],
            "disputed": charge["disputed"],
            "status": "succeeded",
        }
        return self.event(kind, obj)

    def event(self, kind: str, obj: dict, *, created: int | None = None) -> dict:
        self.events += 1
        return {
            "id": f"evt_stub{self.events:05d}",
            "object": "event",
            "api_version": STRIPE_API_VERSION,
            "created": created or int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
            "data": {"object": obj},
        }

    # -- Stripe's behaviour -----------------------------------------------------------------------

    def _refused(self, auth: str) -> tuple[int, dict] | None:
        if auth.startswith("Bearer rk_test_"):
            return 403, _error(
                "invalid_request_error",
                "The provided key 'rk_test_***' does not have the required "
                "permissions for this endpoint on account 'acct_stub'.",
                kind_field="permission_error",
            )
        if not auth.startswith("Bearer sk_test_"):
            return 401, _error("invalid_request_error", "Invalid API Key provided.")
        return None

    def read(self, path: str, query: dict, auth: str, version: str) -> tuple[int, dict]:
        time.sleep(self.delay)
        with self.lock:
            self.calls += 1
            self.versions.append(version)
            refused = self._refused(auth)
            if refused:
                return refused
            if path == "/v1/refunds":
                charge = query.get("charge") or self.payment_intents.get(query.get("payment_intent", ""))
                found = [r for r in reversed(self.refunds) if not charge or r["charge"] == charge]
                limit = int(query.get("limit", 10))
                return 200, {
                    "object": "list",
                    "url": "/v1/refunds",
                    "has_more": len(found) > limit,
                    "data": found[:limit],
                }
            if path.startswith("/v1/refunds/"):
                refund_id = path.rsplit("/", 1)[1]
                match = [r for r in self.refunds if r["id"] == refund_id]
                if match:
                    return 200, match[0]
                return 404, _error("invalid_request_error", f"No such refund: '{refund_id}'", code="resource_missing")
            return 404, _error("invalid_request_error", f"Unrecognized request URL (GET: {path}).")

    def handle(self, path: str, params: dict, key: str | None, auth: str, version: str = "") -> tuple[int, dict, bool]:
        time.sleep(self.delay)
        with self.lock:
            self.calls += 1
            self.versions.append(version)
            refused = self._refused(auth)
            if refused:  # before the endpoint runs: nothing is saved under the key
                return *refused, False
            if path != "/v1/refunds":
                return 404, _error("invalid_request_error", f"Unrecognized request URL (POST: {path})."), False
            now = time.time()
            for old in [k for k, saved in self.idempotency.items() if now - saved[3] >= KEY_LIFETIME]:
                del self.idempotency[old]  # pruned: the key would make a new refund
            fingerprint = tuple(sorted(params.items()))
            if key and key in self.idempotency:
                saved, status, body, _at = self.idempotency[key]
                if saved != fingerprint:
                    return (
                        400,
                        _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with.",
                        ),
                        False,
                    )
                return status, body, False
            failure = self.failures.pop(0) if self.failures else None
            if failure == "server_error":
                status, body = 500, _error("api_error", "An unknown error occurred.")
            else:
                status, body = self._refund(params, failure)
            if key:  # Stripe saves the first answer once the endpoint has begun, 500s included
                self.idempotency[key] = (fingerprint, status, body, now)
            return status, body, failure == "drop"

    def _refund(self, params: dict, failure: str | None) -> tuple[int, dict]:
        if "charge" in params and "payment_intent" in params:
            return 400, _error("invalid_request_error", "You cannot pass both charge and payment_intent.")
        if "payment_intent" in params:
            charge_id = self.payment_intents.get(params["payment_intent"])
            if charge_id is None:
                return 400, _error(
                    "invalid_request_error",
                    f"No such payment_intent: '{params['payment_intent']}'",
                    code="resource_missing",
                    param="payment_intent",
                )
        else:
            charge_id = params.get("charge", "")
            if not charge_id.startswith("ch_") or charge_id not in self.charges:
                return 400, _error(
                    "invalid_request_error", f"No such charge: '{charge_id}'", code="resource_missing", param="charge"
                )
        charge = self.charges[charge_id]
        left = charge["amount"] - charge["refunded"]
        amount = int(params.get("amount", left))
        if charge["disputed"]:
            return 400, _error(
                "invalid_request_error",
                f"Charge {charge_id} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        if left <= 0:
            return 400, _error(
                "invalid_request_error",
                f"Charge {charge_id} has already been refunded.",
                code="charge_already_refunded",
            )
        if amount > left:
            return 400, _error(
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
            )
        charge["refunded"] += amount
        status = (
            failure
            if failure in ("pending", "requires_action")
            else "pending"
            if failure == "closed_card"
            else "succeeded"
        )
        refund = {
            "id": f"re_stub{len(self.refunds) + 1:04d}",
            "object": "refund",
            "amount": amount,
            "balance_transaction": f"txn_stub{len(self.refunds) + 1:04d}",
            "charge": charge_id,
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "status": status,
            "failure_reason": None,
            "reason": None,
            "receipt_number": None,
            "next_action": _next_action() if status == "requires_action" else None,
            "pending_reason": "processing" if status == "pending" else None,
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            "created": int(time.time()),
        }
        self.refunds.append(refund)
        return 200, refund


def _next_action() -> dict:
    """Stripe emails the customer to ask where to send the money (payment methods without native refunds)."""
    now = int(time.time())
    return {
        "type": "display_details",
        "display_details": {
            "email_sent": {"email_sent_at": now, "email_sent_to": "customer@example.com"},
            "expires_at": now + 45 * 86400,
        },
    }


def _error(
    message_type: str, message: str, code: str | None = None, param: str | None = None, kind_field: str | None = None
) -> dict:
    error = {"type": kind_field or message_type, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}
