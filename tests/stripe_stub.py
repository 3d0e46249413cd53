"""A local HTTP server that answers as Stripe's refunds endpoint does, with Stripe's state.

It keeps charges and their refunded amounts, refuses a refund above what is left of a charge,
replays the saved answer for a repeated idempotency key, rejects a reused key with other
parameters, and can fail on demand: decline, answer 500, drop the connection after making the
refund (the answer is lost, the refund exists), or be slow. The official library talks to it
over real HTTP; nothing in the library is patched.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class StripeStub:
    def __init__(self):
        self.charges: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.idempotency: dict[str, tuple[tuple, int, dict]] = {}
        self.failures: list[str] = []  # "decline", "server_error", "drop", one per coming request
        self.delay = 0.0
        self.calls = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                params = dict(parse_qsl(self.rfile.read(length).decode()))
                status, body, drop = stub.handle(self.path, params, self.headers.get("Idempotency-Key"),
                                                 self.headers.get("Authorization", ""))
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_{stub.calls}")
                self.end_headers()
                self.wfile.write(payload)

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
        return {"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "sk_test_portal", "STRIPE_API_BASE": self.url,
                "STRIPE_MAX_NETWORK_RETRIES": 0, "STRIPE_TIMEOUT": 5, **more}

    def add_charge(self, charge_id: str, amount: int, currency: str) -> None:
        self.charges[charge_id] = {"amount": amount, "currency": currency.lower(), "refunded": 0}

    def refunded(self, charge_id: str) -> int:
        return self.charges[charge_id]["refunded"]

    # -- Stripe's behaviour -----------------------------------------------------------------------

    def handle(self, path: str, params: dict, key: str | None, auth: str) -> tuple[int, dict, bool]:
        time.sleep(self.delay)
        with self.lock:
            self.calls += 1
            if not auth.startswith("Bearer sk_test_"):
                return 401, _error("invalid_request_error", "Invalid API Key provided."), False
            if path != "/v1/refunds":
                return 404, _error("invalid_request_error", f"Unrecognized request URL (POST: {path})."), False
            fingerprint = tuple(sorted(params.items()))
            if key and key in self.idempotency:
                saved, status, body = self.idempotency[key]
                if saved != fingerprint:
                    return 400, _error("idempotency_error", "Keys for idempotent requests can only be used with "
                                                            "the same parameters they were first used with."), False
                return status, body, False
            failure = self.failures.pop(0) if self.failures else None
            if failure == "server_error":
                return 500, _error("api_error", "An unknown error occurred."), False
            status, body = self._refund(params, failure)
            if key:
                self.idempotency[key] = (fingerprint, status, body)
            return status, body, failure == "drop"

    def _refund(self, params: dict, failure: str | None) -> tuple[int, dict]:
        charge = self.charges.get(params.get("charge", ""))
        if charge is None:
            return 400, _error("invalid_request_error", f"No such charge: '{params.get('charge')}'",
                               code="resource_missing", param="charge")
        amount = int(params.get("amount", charge["amount"] - charge["refunded"]))
        if failure == "decline":
            return 402, _error("card_error", "The card used for this charge has been closed; the refund cannot be "
                                             "sent to it.", code="expired_or_canceled_card")
        if amount > charge["amount"] - charge["refunded"]:
            return 400, _error("invalid_request_error",
                               f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                               f"({charge['amount'] - charge['refunded']})", code="amount_too_large", param="amount")
        charge["refunded"] += amount
        refund = {"id": f"re_stub{len(self.refunds) + 1:04d}", "object": "refund", "amount": amount,
                  "charge": params["charge"], "currency": charge["currency"],
                  "status": "pending" if failure == "pending" else "succeeded",
                  "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
                  "created": int(time.time())}
        self.refunds.append(refund)
        return 200, refund


def _error(kind: str, message: str, code: str | None = None, param: str | None = None) -> dict:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}
