"""The JSON API driven end to end, the way a helpdesk integration uses it."""

import json
import re

import pytest
import time_machine
from sqlalchemy import func, select

from portal.accounts.models import ApiToken
from portal.core.idempotency import IdempotencyRecord
from portal.core.vocabulary import RequestState, StaffRole
from portal.orders.models import Order
from portal.refunds.models import Refund, StatusEvent
from tests.journey_helpers import file_request, import_samples, latest_request, lookup, outbox, pdf_bytes
from tests.staff_helpers import make_staff

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


def new_token(runner, email: str, name: str = "helpdesk") -> str:
    result = runner.invoke(args=["staff", "token", email, "--name", name])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def api(app, runner, db_session):
    """An agent's token and a client that sends it, with the sample orders imported."""
    import_samples(db_session)
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    token = new_token(runner, "agent@example.com")
    return Api(app.test_client(), token)


class Api:
    def __init__(self, client, token):
        self.client = client
        self.token = token

    def headers(self, **extra):
        return {"Authorization": f"Bearer {self.token}", **extra}

    def get(self, path, **params):
        return self.client.get(f"/api/v1{path}", query_string=params, headers=self.headers())

    def post(self, path, body=None, **headers):
        return self.client.post(
            f"/api/v1{path}",
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self.headers(**headers),
        )


def filed(app, number="ORD-10001", email="alice.m@example.com") -> str:
    customer = app.test_client()
    lookup(customer, number, email)
    answer = file_request(customer, number, files=[("invoice.pdf", pdf_bytes())])
    return answer.headers["Location"].rsplit("/", 1)[1]


def test_a_helpdesk_script_takes_a_request_from_received_to_refunded(app, api, db_session):
    reference = filed(app)

    page = api.get("/requests", state="received")
    assert page.status_code == 200 and page.mimetype == "application/json"
    assert [item["reference"] for item in page.json["items"]] == [reference]
    assert page.json["counts"]["received"] == 1

    detail = api.get(f"/requests/{reference}").json
    assert detail["state"] == "received" and detail["order"]["order_number"] == "ORD-10001"
    assert detail["decision_now"]["amount"] == "29.00" and detail["decision_now"]["clauses"]
    assert detail["decision_at_filing"]["outcome"] == detail["decision_now"]["outcome"]
    assert detail["allowed_actions"][:3] == ["ask_info", "start_review", "approve"]

    assert api.post(f"/requests/{reference}/review").json["state"] == "in_review"
    approved = api.post(f"/requests/{reference}/approve", {"amount": "29.00", "note": "As the policy says."})
    assert approved.status_code == 200 and approved.json["amount_approved"] == "29.00"
    noted = api.post(f"/requests/{reference}/notes", {"text": "Customer called too."})
    assert noted.status_code == 201 and noted.json["notes"][0]["text"] == "Customer called too."
    refunded = api.post(f"/requests/{reference}/process", {"processor_reference": "re_manual_42"})
    assert refunded.status_code == 200, refunded.json
    assert refunded.json["state"] == "refunded"
    assert [r["processor_reference"] for r in refunded.json["refunds"]] == ["re_manual_42"]
    assert [e["to_state"] for e in refunded.json["timeline"]] == ["received", "in_review", "approved", "refunded"]
    # The same workflow as the console: the customer hears of each step.
    assert {m.message for m in outbox(db_session)} >= {"acknowledgement", "approval", "refunded"}


def test_an_invalid_transition_answers_409_and_changes_nothing(app, api, db_session):
    reference = filed(app)
    events = db_session.scalar(select(func.count(StatusEvent.id)))
    answer = api.post(f"/requests/{reference}/process", {"processor_reference": "re_1"})
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
    assert answer.json["status"] == 409 and "received" in answer.json["detail"].lower()
    assert db_session.scalar(select(func.count(StatusEvent.id))) == events
    assert db_session.scalar(select(func.count(Refund.id))) == 0
    assert latest_request(db_session).state is RequestState.RECEIVED


def test_problems_name_what_is_wrong(app, api, runner, db_session):
    reference = filed(app)
    missing = api.get("/requests/RF-NOPE2345")
    assert missing.status_code == 404 and missing.json["title"] == "Not found"
    in_chinese = api.client.get("/api/v1/requests/RF-NOPE2345", headers=api.headers(**{"Accept-Language": "zh-CN"}))
    assert in_chinese.json["title"] == "未找到" and "RF-NOPE2345" in in_chinese.json["detail"]

    bad_json = api.client.post(
        f"/api/v1/requests/{reference}/approve",
        data="{not json",
        content_type="application/json",
        headers=api.headers(),
    )
    assert bad_json.status_code == 400

    typo = api.post(f"/requests/{reference}/approve", {"amount": "29.00", "amonut": "1"})
    assert typo.status_code == 422 and [e["field"] for e in typo.json["errors"]] == ["amonut"]

    too_much = api.post(f"/requests/{reference}/approve", {"amount": "40.00"})
    assert too_much.status_code == 422
    assert too_much.json["errors"][0]["field"] in ("amount", "override_reason")

    yen_cents = api.post(f"/requests/{reference}/approve", {"amount": "1.234"})
    assert yen_cents.status_code == 422 and yen_cents.json["errors"][0]["field"] == "amount"
    assert latest_request(db_session).state is RequestState.RECEIVED


def test_tokens_authenticate_and_their_role_decides(app, api, runner, db_session):
    reference = filed(app)
    for headers in ({}, {"Authorization": "Bearer rpt_not-a-token"}, {"Authorization": f"Basic {api.token}"}):
        answer = api.client.get("/api/v1/requests", headers=headers)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json["title"] == "Not authenticated"

    make_staff(db_session, "marketing@example.com", StaffRole.MARKETING)
    marketing = new_token(runner, "marketing@example.com")
    assert api.client.get("/api/v1/requests", headers={"Authorization": f"Bearer {marketing}"}).status_code == 403
    # Orders come in through admins only; an agent's token reads and acts on requests.
    assert api.post("/orders", {"orders": []}).status_code == 403

    # Only a hash is stored, and a revoked token stops working at once.
    stored = db_session.scalar(select(ApiToken).where(ApiToken.staff_user.has(email="agent@example.com")))
    assert api.token not in stored.token_hash and stored.prefix == api.token[:12]
    assert runner.invoke(args=["staff", "revoke-token", str(stored.id)]).exit_code == 0
    assert api.get(f"/requests/{reference}").status_code == 401


def test_a_repeated_idempotency_key_replays_the_first_answer(app, api, db_session):
    reference = filed(app)
    first = api.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "k-1"})
    again = api.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert db_session.scalar(select(func.count(StatusEvent.id)).where(StatusEvent.to_state == "approved")) == 1

    other = api.post(f"/requests/{reference}/approve", {"amount": "10.00"}, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and "different request" in other.json["detail"]

    # Without a key, a repeat is a second action, which the state machine refuses.
    assert api.post(f"/requests/{reference}/approve", {"amount": "29.00"}).status_code == 409
    # A refusal is an answer too: replayed, not re-run.
    refused = api.post(f"/requests/{reference}/review", **{"Idempotency-Key": "k-2"})
    assert refused.status_code == 409
    assert api.post(f"/requests/{reference}/review", **{"Idempotency-Key": "k-2"}).headers["Idempotent-Replayed"]
    assert db_session.scalar(select(func.count(IdempotencyRecord.id))) == 2


def test_requests_page_with_a_cursor(app, api):
    references = [
        filed(app, number, email)
        for number, email in (
            ("ORD-10001", "alice.m@example.com"),
            ("ORD-10003", "bob.tanaka@example.org"),
            ("ORD-10004", "carol@example.net"),
        )
    ]
    first = api.get("/requests", limit=2).json
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = api.get("/requests", limit=2, cursor=first["next_cursor"]).json
    assert second["next_cursor"] is None
    assert [i["reference"] for i in first["items"] + second["items"]] == references
    assert api.get("/requests", limit=500).status_code == 422
    assert api.get("/requests", q="bob.tanaka@example.org").json["items"][0]["reference"] == references[1]


def test_orders_upsert_uses_the_import_rules_and_is_all_or_nothing(app, runner, db_session):
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    admin = Api(app.test_client(), new_token(runner, "admin@example.com"))
    order = {
        "order_number": "API-1",
        "customer_email": "Dana@Example.com",
        "customer_name": "Dana",
        "locale": "nl",
        "product": "Pro",
        "plan": "monthly",
        "amount": "19.99",
        "currency": "EUR",
        "purchased_at": "2026-11-20T10:00:00Z",
        "period_start": "2026-11-20",
        "period_end": "2026-12-19",
        "payment_reference": "ch_api_1",
        "channel": "web",
    }
    bad = {**order, "order_number": "API-2", "currency": "EURO", "amount": "1.999"}
    refused = admin.post("/orders", {"orders": [order, bad]})
    assert refused.status_code == 422
    fields = {e["field"] for e in refused.json["errors"]}
    assert "orders.1.currency" in fields
    assert db_session.scalar(select(func.count(Order.id))) == 0

    created = admin.post("/orders", {"orders": [order]})
    assert created.json == {"created": 1, "updated": 0, "unchanged": 0, "customers_created": 1}
    again = admin.post("/orders", {"orders": [{**order, "amount": "29.99"}]})
    assert again.json["updated"] == 1
    assert db_session.scalar(select(Order.amount_minor).where(Order.order_number == "API-1")) == 2999


def test_insights_figures(app, api):
    filed(app)
    figures = api.get("/insights").json
    assert figures["decisions"] == {"open": 1}
    assert figures["reasons_weekly"][0]["reason"] == "no_longer_needed"
    assert api.get("/insights", start="2026-12-01", end="2026-11-01").status_code == 422


def test_the_api_is_rate_limited_per_token(make_app, runner, db_session):
    app = make_app(API_RATE_LIMIT="3 per minute")
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    api = Api(app.test_client(), new_token(app.test_cli_runner(), "agent@example.com"))
    answers = [api.get("/requests").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = api.get("/requests")
    assert limited.mimetype == "application/problem+json" and limited.json["status"] == 429


def test_one_rate_limit_budget_per_token_across_all_endpoints(make_app, db_session):
    app = make_app(API_RATE_LIMIT="5 per minute")
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    make_staff(db_session, "lead@example.com", StaffRole.AGENT)
    runner = app.test_cli_runner()
    api = Api(app.test_client(), new_token(runner, "agent@example.com"))
    other = Api(app.test_client(), new_token(runner, "lead@example.com"))
    answers = [api.get("/requests").status_code for _ in range(3)]
    answers += [api.get("/saved-replies").status_code for _ in range(2)]
    assert answers == [200] * 5
    limited = api.get("/insights")  # a third endpoint: the token's budget is spent, not the route's
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json" and limited.json["status"] == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert other.get("/insights").status_code == 200  # another token has a budget of its own


def test_the_openapi_document_and_its_reference_page(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    approve = spec["paths"]["/requests/{reference}/approve"]["post"]
    assert approve["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApproveInput")
    assert "409" in approve["responses"] and "Idempotency-Key" in [p["name"] for p in approve["parameters"]]
    assert spec["components"]["schemas"]["ApproveInput"]["additionalProperties"] is False
    page = client.get("/api/v1/reference")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "POST /requests/{reference}/approve" in html
    # Nothing from elsewhere and no inline script: only the portal's own files (forms.js).
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all(re.search(r'src="/static/[a-z-]+\.js"', attrs) for attrs in scripts) and "cdn" not in html.lower()
    # Unknown API addresses answer in JSON, not with the customer's HTML error page.
    assert client.get("/api/v1/nothing-here").mimetype == "application/problem+json"


def test_the_outbox_worker_forgets_idempotency_keys_after_a_day(app, api, runner, db_session):
    reference = filed(app)
    api.post(f"/requests/{reference}/review", **{"Idempotency-Key": "old"})
    with time_machine.travel("2026-11-23T13:00:00Z"):
        assert runner.invoke(args=["outbox", "send"]).exit_code == 0
    assert db_session.scalar(select(func.count(IdempotencyRecord.id))) == 0


def test_concurrent_repeats_of_one_key_act_once(app, api, db_session):
    import threading

    reference = filed(app)
    start = threading.Barrier(10)
    answers = []

    def caller():
        client = Api(app.test_client(), api.token)
        start.wait()
        answer = client.post(f"/requests/{reference}/approve", {"amount": "29.00"}, **{"Idempotency-Key": "same"})
        answers.append((answer.status_code, answer.headers.get("Idempotent-Replayed"), answer.json))

    threads = [threading.Thread(target=caller) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    fresh = [a for a in answers if a[0] == 200 and not a[1]]
    assert len(answers) == 10 and len(fresh) == 1
    # The others were told the first was still running, or got its answer again.
    assert all(
        (status == 409 and "still being processed" in body["detail"]) or (status == 200 and body == fresh[0][2])
        for status, _replayed, body in answers
    )
    assert db_session.scalar(select(func.count(StatusEvent.id)).where(StatusEvent.to_state == "approved")) == 1


def test_a_processor_outage_answers_503_and_the_retry_refunds_once(make_app, stripe_stub, db_session):
    stub = stripe_stub
    app = make_app(**stub.portal_settings())
    import_samples(db_session)
    stub.add_charge("ch_3QaB10001", 2900, "USD")
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    api = Api(app.test_client(), new_token(app.test_cli_runner(), "agent@example.com"))
    reference = filed(app)
    api.post(f"/requests/{reference}/approve", {"amount": "29.00"})
    stub.failures.append("server_error")
    down = api.post(f"/requests/{reference}/process")
    assert down.status_code == 503 and down.mimetype == "application/problem+json"
    assert latest_request(db_session).state is RequestState.APPROVED
    again = api.post(f"/requests/{reference}/process")
    assert again.status_code == 200 and again.json["state"] == "refunded"
    # Stripe replays the 500 for its key, so the retry found nothing there and sent a new attempt.
    assert stub.refunded("ch_3QaB10001") == 2900 and len(stub.refunds) == 1
    assert sorted((r["attempt"], r["status"]) for r in again.json["refunds"]) == [(1, "failed"), (2, "succeeded")]


def test_nul_characters_are_refused_with_a_reason(app, api, db_session):
    # PostgreSQL cannot store NUL in text; the portal answers before any query is made.
    reference = filed(app)
    assert api.get("/requests/RF-AB\x00CD").status_code == 404
    assert api.get("/requests", q="bob\x00@example.org").status_code == 400
    note = api.post(f"/requests/{reference}/notes", {"text": "fine\u0000not"})
    assert note.status_code == 422 and note.json["errors"][0]["field"] == "text"
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    # A page's form gives the text back without the NUL and says why, instead of a bare 400.
    customer = app.test_client()
    page = lookup(customer, "ORD-10001\x00", "alice.m@example.com")
    assert page.status_code == 200
    assert "invisible control character (NUL)" in page.text
    assert 'value="ORD-10001"' in page.text and 'value="alice.m@example.com"' in page.text


def test_ask_and_decline_through_the_api(app, api, db_session):
    first = filed(app)
    asked = api.post(
        f"/requests/{first}/information-requests",
        {"questions": ["what_went_wrong"], "documents": ["screenshot"], "custom": "Which browser?"},
    )
    assert asked.status_code == 200 and asked.json["state"] == "awaiting_customer"
    items = asked.json["information_requests"][0]["items"]
    assert [i["key"] for i in items] == ["what_went_wrong", "custom", "screenshot"]
    assert outbox(db_session, "information_request")
    assert api.post(f"/requests/{first}/information-requests", {"questions": ["favourite_colour"]}).status_code == 422

    second = filed(app, "ORD-10003", "bob.tanaka@example.org")
    granted = api.post(f"/requests/{second}/decline", {"clause_id": "annual", "offer_id": "extended-trial"})
    assert granted.status_code == 422 and granted.json["errors"][0]["field"] == "override_reason"
    declined = api.post(
        f"/requests/{second}/decline",
        {"clause_id": "annual", "offer_id": "extended-trial", "override_reason": "Used all year"},
    )
    assert declined.status_code == 200, declined.json
    assert (declined.json["state"], declined.json["decline_clause"], declined.json["alternative_offer_id"]) == (
        "declined",
        "annual",
        "extended-trial",
    )
    assert outbox(db_session, "decline")
    unknown = api.post(f"/requests/{first}/decline", {"clause_id": "no-such-clause"})
    assert unknown.status_code == 422 and unknown.json["errors"][0]["field"] == "clause_id"
    manual = api.post(f"/requests/{first}/process", {})  # the manual gateway needs the processor's reference
    assert manual.status_code == 422 and manual.json["errors"][0]["field"] == "processor_reference"
