"""SpamAssassin (Debian's package, local rules only) scores every email of the kit at 1.0 or less.

Each message is rendered in every language with its sample values and written by the app's own
file transport, so what is scored is the MIME message exactly as it is sent: headers (From, Reply-To,
Message-ID, In-Reply-To and References of a request's thread, Auto-Submitted,
X-Auto-Response-Suppress), quoted-printable parts, and the PDF receipt attached to "refunded".
``spamassassin -L`` runs no network test, with a throwaway home and an empty user_prefs file, so
nothing of the machine's user (Bayes, whitelists) counts; Debian's site configuration and rules do.
All messages go through one ``spamassassin --mbox`` process (the rules compile once).
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from email import message_from_bytes

import pytest

from portal.core.money import Money
from portal.core.vocabulary import LOCALES, Plan
from portal.outbox.kit import Attachment
from portal.outbox.models import OutboxMessage
from portal.refunds.receipts import ReceiptData
from portal.web.links import links
from portal.web.mail import email_kit, receipt_renderer, transport

MAX_SCORE = 1.0
# What production looks like: HTTPS links and replies by email set up (a Reply-To on request emails).
SETTINGS = {"BASE_URL": "https://refunds.northwind.example", "INBOUND_DOMAIN": "reply.northwind.example"}
# Emails about a request: the acknowledgement is its thread's root, every later one answers it.
THREAD_ROOT = "acknowledgement"
SCORE = re.compile(r"score=(-?\d+(?:\.\d+)?)")
FIRED = re.compile(r"tests=(\S*)")


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        pytest.fail("SpamAssassin is missing: `make test` installs it (Debian package spamassassin)")
    return found


def receipt(locale: str) -> Attachment:
    data = ReceiptData(
        number="RC-2026-000042", issued=date(2026, 11, 25), locale=locale, customer_name="Alice Moreau",
        customer_email="alice.moreau@example.com", order_number="ORD-10001", product="Team Workspace",
        plan=Plan.MONTHLY.title, period=(date(2026, 11, 1), date(2026, 11, 30)), paid=Money.parse("29.00", "USD"),
        payment_reference="pi_3QSampleSample", purchased=date(2026, 11, 1), amount=Money.parse("29.00", "USD"),
        method="Your original payment method", processor_reference="re_3QSampleSample",
        refunded_on=date(2026, 11, 25), request_reference="RF-7Q2M4KX9", clause="Monthly plans",
        clause_id="monthly",
    )  # fmt: skip
    return Attachment(f"{data.number}.pdf", "application/pdf", receipt_renderer().pdf(data))


def sent_messages(app) -> list[tuple[str, str, bytes]]:
    """(message, locale, the .eml the file transport wrote) for every message in every language.

    The outbox rows are built, not stored: the transport reads nothing else of them."""
    sent = []
    with app.app_context():
        kit, outgoing, domain = email_kit(), transport(), links().domain
        root = f"<{THREAD_ROOT}@{domain}>"
        for number, (message, locale) in enumerate(((m, loc) for m in kit.messages for loc in LOCALES), 1):
            rendered = kit.render_sample(message, locale)
            if message == "refunded":  # as the worker sends it: with the request's PDF receipt
                rendered = replace(rendered, attachments=(receipt(locale),))
            reference = kit.spec(message).samples().get("reference")
            outbox = OutboxMessage(
                id=number, message=message, recipient="alice.moreau@example.com", locale=locale, variables={},
                message_id=f"<{number:06d}.{message}.{locale}@{domain}>",
                thread_root=root if reference and message != THREAD_ROOT else "",
            )  # fmt: skip
            outgoing.send(outbox, rendered, reply_to=links().reply_address(str(reference)) if reference else None)
            sent.append((message, locale, outgoing.path_for(outbox).read_bytes()))
    return sent


def scores(executable: str, messages: list[bytes], tmp_path) -> dict[str, tuple[float, str, str]]:
    """(score, the rules that fired, the report with their points) by Message-ID, from one spamassassin
    run (which does not keep the order of its mailbox)."""
    home = tmp_path / "sa-home"
    home.mkdir()
    (home / "user_prefs").write_text("")
    box = mailbox.mbox(tmp_path / "in.mbox")
    for raw in messages:
        box.add(raw)
    box.close()
    with open(tmp_path / "in.mbox", "rb") as stdin:
        result = subprocess.run(
            [executable, "-L", "-t", "--mbox", "-p", str(home / "user_prefs"), "--cf", "use_bayes 0"],
            stdin=stdin, capture_output=True, env={**os.environ, "HOME": str(home)}, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"spamassassin failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
    (tmp_path / "out.mbox").write_bytes(result.stdout)
    found = {}
    scanned_box = mailbox.mbox(tmp_path / "out.mbox")
    for scanned in scanned_box:
        status = re.sub(r",\s+", ",", " ".join((scanned["X-Spam-Status"] or "").split()))  # unfolded
        score = SCORE.search(status)
        assert score, f"spamassassin gave no score: {status!r}"
        raw = scanned.as_bytes().decode("utf-8", "replace")
        report = raw.split("Content analysis details:", 1)[1].strip() if "Content analysis details:" in raw else status
        fired = FIRED.search(status)
        found[scanned["Message-ID"]] = (float(score.group(1)), fired.group(1) if fired else "", report)
    scanned_box.close()
    sent = {message_from_bytes(raw)["Message-ID"] for raw in messages}
    assert set(found) == sent, f"spamassassin returned {len(found)} of the {len(sent)} messages sent"
    return found


def test_spamassassin_scores_every_message_in_every_language_at_most_1(make_app, tmp_path, capsys):
    executable = spamassassin()
    sent = sent_messages(make_app(**SETTINGS))
    results = scores(executable, [raw for _, _, raw in sent], tmp_path)
    highest: dict[str, tuple[float, str, str]] = {}
    failures = []
    for message, locale, raw in sent:
        score, fired, report = results[message_from_bytes(raw)["Message-ID"]]
        if score > highest.get(locale, (float("-inf"), "", ""))[0]:
            highest[locale] = (score, message, fired)
        if score > MAX_SCORE:
            failures.append(f"{message} ({locale}): {score} > {MAX_SCORE}\n{report}")
    with capsys.disabled():
        print("\nSpamAssassin, the highest score per language:")
        for locale, (score, message, fired) in highest.items():
            print(f"  {locale}: {score} ({message}: {fired})")
    assert not failures, "SpamAssassin scores above the limit:\n\n" + "\n\n".join(failures)
