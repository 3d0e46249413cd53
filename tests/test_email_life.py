"""A request's whole life, in each language, as the customer's mailbox sees it (a real SMTP server)."""

import re

import pytest
import time_machine

from portal.web.extensions import db
from portal.web.mail import deliver
from tests.conftest import csrf_token
from tests.journey_helpers import (
    file_request,
    import_samples,
    lookup,
    outbox,
    png_bytes,
    post_multipart,
    process_link_requests,
)
from tests.mail_helpers import body
from tests.staff_helpers import make_staff, sign_in, staff_post

CUSTOMERS = {
    "en": ("ORD-10001", "alice.m@example.com", "$29.00", "12.00"),
    "zh": ("ORD-20001", "zhang.wei@example.cn", "¥199.00", "99.00"),
    "nl": ("ORD-30001", "sanne.devries@example.nl", "€\xa027,00", "13.50"),
}
# A phrase of each message's subject in each language, straight from the catalogs' translations.
SUBJECT_WORDS = {
    "en": {
        "acknowledgement": "We have received your refund request",
        "information_request": "We need a few details",
        "reply_received": "We have received your answer",
        "approval": "has been approved",
        "refunded": "has been sent",
        "decline": "About your refund request",
        "magic_link": "Your link",
    },
    "zh": {
        "acknowledgement": "我们已收到您的退款申请",
        "information_request": "一些信息",
        "reply_received": "我们已收到您的回复",
        "approval": "退款已获批准",
        "refunded": "退款已发出",
        "decline": "关于您的退款申请",
        "magic_link": "您的订单链接",
    },
    "nl": {
        "acknowledgement": "Wij hebben uw terugbetalingsaanvraag",
        "information_request": "enkele gegevens nodig",
        "reply_received": "Wij hebben uw antwoord",
        "approval": "is goedgekeurd",
        "refunded": "is verstuurd",
        "decline": "Over uw terugbetalingsaanvraag",
        "magic_link": "Uw link naar uw bestellingen",
    },
}


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)


def agent_and_customer(app, db_session):
    import_samples(db_session)
    make_staff(db_session)
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    return agent, app.test_client()


@pytest.mark.parametrize("locale", ["en", "zh", "nl"])
def test_every_message_of_a_request_life_arrives_in_the_customers_language(make_app, smtp, db_session, locale):
    app = make_app(**smtp.settings)
    number, email, _paid, partial = CUSTOMERS[locale]
    with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
        agent, customer = agent_and_customer(app, db_session)
        customer.get(f"/language/{locale}")
        customer.post("/access-link", data={"csrf_token": csrf_token(customer, "/"), "email": email})
        process_link_requests(db_session)
        lookup(customer, number, email)
        reference = file_request(customer, number, locale=locale).headers["Location"].rsplit("/", 1)[1]
        act(agent, reference, "ask", questions=["what_went_wrong"], documents=["screenshot"], message="")
        token = csrf_token(customer, f"/requests/{reference}")
        post_multipart(
            customer,
            f"/requests/{reference}/answer",
            {"csrf_token": token, "answer": "It broke."},
            {"item_screenshot": [("shot.png", png_bytes())]},
        )
        act(agent, reference, "approve", amount=partial)
        act(agent, reference, "process", reference="re_life_1")
        with app.app_context():
            report = deliver(db.session)
    # Six messages, the refunded one with lines SMTP would refuse as raw 8-bit (it went quoted-printable).
    assert report.sent == 6 and report.dead == 0

    received = smtp.inbox.find(email)
    kinds = [m.message for m in outbox(db_session)]
    assert kinds == ["magic_link", "acknowledgement", "information_request", "reply_received", "approval", "refunded"]
    assert len(received) == 6 and len({m["Message-ID"] for m in received}) == 6
    by_id = {m["Message-ID"]: m for m in received}
    for stored in outbox(db_session):
        message = by_id[stored.message_id]
        assert message["Content-Language"] == locale
        assert SUBJECT_WORDS[locale][stored.message] in message["Subject"], (stored.message, message["Subject"])
        text, html = body(message, "plain"), body(message, "html")
        links = re.findall(r'href="([^"]+)"', html)
        assert links and all(link.startswith(("http://portal.test/", "https://")) for link in links)
        assert f'<html lang="{ {"en": "en", "zh": "zh-Hans", "nl": "nl"}[locale] }"' in html
        assert "http://portal.test/" in text
    # One thread per request: the acknowledgement is the root, every later email answers it, and
    # every subject starts with the request's reference.
    root = outbox(db_session, "acknowledgement")[0].message_id
    reference = outbox(db_session, "acknowledgement")[0].variables["reference"]
    for stored in outbox(db_session):
        if stored.message in ("magic_link", "acknowledgement"):
            assert by_id[stored.message_id]["In-Reply-To"] is None
            continue
        message = by_id[stored.message_id]
        assert (message["In-Reply-To"], message["References"]) == (root, root), stored.message
        assert message["Subject"].strip().startswith(f"[{reference}] "), message["Subject"]
    refunded = by_id[outbox(db_session, "refunded")[0].message_id]
    assert refunded.get_content_type() == "multipart/mixed"  # the receipt is attached
    assert "\n-- \n" in body(refunded, "plain").replace("\r\n", "\n")  # the signature separator
    amount = {"en": "$12.00", "zh": "¥99.00", "nl": "€\xa013,50"}[locale]
    # The processor's internal reference is left to the attached receipt.
    assert amount in body(refunded, "plain") and "re_life_1" not in body(refunded, "plain")
    # The links lead where they say: the tracking page, and a working single-use link to the orders.
    tracking = outbox(db_session, "acknowledgement")[0].variables["tracking_url"]
    stranger = app.test_client()
    page = stranger.get(tracking.removeprefix("http://portal.test"), follow_redirects=True)
    assert reference in page.get_data(as_text=True)
    magic = outbox(db_session, "magic_link")[0].variables["link"]
    assert app.test_client().get(magic.removeprefix("http://portal.test")).status_code == 303


@pytest.mark.parametrize("locale", ["en", "zh", "nl"])
def test_a_decline_with_its_clause_and_alternative_arrives_in_the_customers_language(
    make_app, smtp, db_session, locale
):
    app = make_app(**smtp.settings)
    number, email, _, _ = CUSTOMERS[locale]
    with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
        agent, customer = agent_and_customer(app, db_session)
        lookup(customer, number, email)
        reference = file_request(customer, number, locale=locale).headers["Location"].rsplit("/", 1)[1]
        # The policy grants these orders a refund: the agent declines with a written reason (not emailed).
        act(agent, reference, "decline", clause="monthly", offer="personal-support", note="", override_reason="Misuse")
        with app.app_context():
            assert deliver(db.session).sent == 2
    decline = next(m for m in smtp.inbox.find(email) if SUBJECT_WORDS[locale]["decline"] in m["Subject"])
    html = body(decline, "html")
    assert 'href="http://portal.test/policy#monthly"' in html
    offer_title = outbox(db_session, "decline")[0].variables["alternative_title"]
    assert offer_title and offer_title in html


def test_long_subjects_arrive_with_every_space_in_every_language(make_app, smtp):
    """Sent through the real transport and read back as the SMTP server received them: a folded
    subject decodes to exactly the subject written, spaces beside the reference included."""
    from portal.outbox.kit import Attachment, Rendered
    from portal.outbox.models import OutboxMessage
    from portal.web.mail import email_kit, transport

    app = make_app(**smtp.settings)
    subjects = []
    with app.app_context():
        kit = email_kit()
        for locale in ("zh", "nl", "en"):
            for message in kit.messages:
                variables = kit.spec(message).samples()
                if "reference" in variables:
                    variables["reference"] = "RF-HG9BC9VW"
                subjects.append((locale, kit.render(message, locale, **variables)))
        # Spaces at every position a fold could fall on, in Chinese, Dutch with accents and ASCII.
        base = subjects[0][1]
        for pad in range(12):
            for text in (
                "测" * pad + "[RF-ABCDEFGHJKLMN] 我们需要您为退款申请 RF-ABCDEFGHJKLMN 的一些信息",
                "é" * pad + "Wij hebben enkele gegevens nodig voor uw terugbetalingsaanvraag RF-ABCDEFGH",
            ):
                subjects.append(("zh", Rendered(text, base.preheader, base.html, base.text)))
        receipt = Attachment("RC-2026-000001.pdf", "application/pdf", b"%PDF-1.7\n")
        subjects.append(
            (
                "zh",
                Rendered("[RF-HG9BC9VW] 您的 ¥199.00 退款已发出，退款凭证已附上", "", base.html, base.text, (receipt,)),
            )
        )
        for number, (locale, rendered) in enumerate(subjects):
            outbox = OutboxMessage(
                message="test",
                recipient=f"r{number}@example.com",
                locale=locale,
                variables={},
                message_id=f"<fold-{number}@example.com>",
                thread_root="",
            )
            transport().send(outbox, rendered)
    for number, (locale, rendered) in enumerate(subjects):
        [received] = smtp.inbox.find(f"r{number}@example.com")
        assert str(received["Subject"]) == rendered.subject, (locale, rendered.subject)
    assert "[RF-HG9BC9VW] 我们需要" in next(
        str(m["Subject"]) for m in smtp.inbox.messages if "我们需要" in str(m["Subject"])
    )
