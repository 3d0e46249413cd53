"""What a customer reads before filing and while following a request: the verdict for their reason,
times in their own zone (named, never with seconds), pages in their language without it being
forced on the next visitor, and a tracking page that shows progress and asks before withdrawing."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select

from portal.core import formatting
from portal.orders.models import Customer
from tests.conftest import csrf_token
from tests.journey_helpers import file_request, latest_request, lookup, outbox

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW, 2026-11-22T12:00Z

SECONDS = re.compile(r"\d{1,2}:\d{2}:\d{2}")


def text(response) -> str:
    return text_of(response.get_data(as_text=True))


# --- formatting: the one stack pages, emails and receipts share ---------------------------------


@pytest.mark.parametrize(
    "zone,locale,expected",
    [
        ("UTC", "en", "Nov 26, 2026, 1:47 PM UTC"),
        ("Asia/Shanghai", "zh", "2026年11月26日 21:47 中国标准时间"),
        ("Europe/Amsterdam", "nl", "26 nov 2026, 14:47 CET"),
        ("America/New_York", "en", "Nov 26, 2026, 8:47 AM EST"),
    ],
)
def test_a_moment_is_written_in_the_readers_zone_with_the_zone_named_and_no_seconds(zone, locale, expected):
    moment = datetime(2026, 11, 26, 13, 47, 12, tzinfo=UTC)
    assert formatting.moment(moment, locale, zone).replace("\u202f", " ") == expected
    assert not SECONDS.search(formatting.instant(moment, locale, zone))


def test_summer_time_is_named_for_the_date_it_falls_on():
    assert formatting.moment(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "nl", "Europe/Amsterdam").endswith("14:00 CEST")


def test_only_real_zone_names_are_taken_from_a_browser():
    assert formatting.valid_zone("Asia/Shanghai") == "Asia/Shanghai"
    for bad in ("", "Mars/Olympus", "../../etc/passwd", "x" * 100, None, 7):
        assert formatting.valid_zone(bad) is None


def test_the_day_is_the_customers_day():
    late = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)  # half past one the next morning in Beijing
    assert formatting.local_day(late, "Asia/Shanghai").isoformat() == "2026-11-27"
    assert formatting.local_day(late).isoformat() == "2026-11-26"


# --- the order page: a headline, the verdict per reason, no clause ids ---------------------------


def test_the_order_page_leads_with_the_verdict_and_names_the_reasons_that_change_it(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")  # monthly, window ended 2026-10-26 09:14 UTC
    page = text(client.get("/orders/ORD-10002"))
    assert "No refund for a change of mind: the 14-day window ended on October 26, 2026, 9:14 AM UTC" in page
    assert "Billing error or duplicate charge: we review those whatever the date" in page
    assert "A technical problem: we review those even after the window has ended" in page
    assert "(monthly)" not in page and "(billing-error)" not in page  # no clause ids in customer text
    html = client.get("/orders/ORD-10002").get_data(as_text=True)
    assert 'href="/orders/ORD-10002/refund?reason=billing_error"' in html


def test_a_window_closing_within_days_counts_down(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")  # full refund until 2026-11-26 09:14 UTC
    page = text(client.get("/orders/ORD-10001"))
    assert "Full refund of $29.00 — closes in 4 days" in page


def test_a_prorated_refund_says_it_falls_each_day(client, orders):
    lookup(client, "ORD-10003", "bob.tanaka@example.org")
    page = text(client.get("/orders/ORD-10003"))
    assert "Refund of $454.29 today — it falls by about $1.61 each day" in page
    assert "Prorated refunds for this order end on November 30, 2026, 4:40 PM UTC." in page
    with time_machine.travel(datetime(2026, 11, 28, 12, 0, tzinfo=UTC), tick=False):
        soon = text(client.get("/orders/ORD-10003"))
    assert "Prorated refunds for this order end in 2 days, on November 30, 2026, 4:40 PM UTC." in soon


def test_proof_of_purchase_is_said_once(client, orders):
    lookup(client, "ORD-10004", "carol@example.net")
    assert text(client.get("/orders/ORD-10004")).lower().count("proof of purchase") == 1


def test_an_open_request_shows_its_own_decision_not_a_newer_verdict(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    with time_machine.travel(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False):  # the window has closed
        page = text(client.get("/orders/ORD-10001"))
    assert f"Follow your request {reference}" in page
    assert "can be refunded in full: $29.00" in page
    assert "window ended" not in page and "does not allow" not in page


def test_an_expired_monthly_plan_is_not_offered_more_days_on_it(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")
    page = text(client.get("/orders/ORD-10002"))
    assert "30 more days, free" not in page and "A one-to-one session with support" in page
    lookup(client, "ORD-10001", "alice.m@example.com")
    assert "30 more days, free" in text(client.get("/orders/ORD-10001"))


# --- the form follows the chosen reason ---------------------------------------------------------


def test_a_billing_error_is_not_asked_to_acknowledge_a_refusal(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")
    billing = client.get("/orders/ORD-10002/refund?reason=billing_error").get_data(as_text=True)
    assert 'value="billing_error" checked' in billing or "checked" in re.search(
        r'<input[^>]*value="billing_error"[^>]*>', billing
    ).group(0)
    assert "I understand the policy does not grant this refund" not in billing
    assert "Requests for this reason go to our staff, who may refund up to $29.00." in billing
    change_of_mind = client.get("/orders/ORD-10002/refund").get_data(as_text=True)
    assert "I understand the policy does not grant this refund" in change_of_mind

    filed = file_request(client, "ORD-10002", reason="billing_error")
    assert filed.status_code == 303
    assert latest_request(orders).review_requested


def test_changing_to_a_refused_reason_asks_for_the_acknowledgement_then(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")
    refused = file_request(client, "ORD-10002", reason="no_longer_needed")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "I understand the policy does not grant this refund" in html and "Tick" in html


# --- local times: the browser's zone, remembered for the customer and the request ----------------


def test_the_browsers_zone_is_used_remembered_and_recorded_on_the_request(app, client, orders):
    client.set_cookie("tz", "Asia/Shanghai")
    lookup(client, "ORD-20001", "zhang.wei@example.cn")  # bought 2026-11-15 03:20 UTC
    customer = orders.scalar(select(Customer).where(Customer.email == "zhang.wei@example.cn"))
    assert customer.time_zone == "Asia/Shanghai"
    page = client.get("/orders/ORD-20001").get_data(as_text=True)
    assert "2026年11月15日 11:20 中国标准时间" in page and not SECONDS.search(text_of(page))

    file_request(client, "ORD-20001")
    assert latest_request(orders).time_zone == "Asia/Shanghai"

    # The same customer in a browser that sends no zone (no JavaScript) still gets theirs once known.
    other = app.test_client()
    lookup(other, "ORD-20001", "zhang.wei@example.cn")
    assert "11:20 中国标准时间" in other.get("/orders/ORD-20001").get_data(as_text=True)


def test_without_a_zone_times_are_in_utc_and_say_so(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    html = client.get("/orders/ORD-10001").get_data(as_text=True)
    assert "Nov 12, 2026, 9:14 AM UTC" in text_of(html)
    assert "data-zone-unknown" in html  # the script draws the page once more when it has the zone
    assert '<script src="/static/zone.js" defer></script>' in html


def test_a_nonsense_zone_cookie_is_ignored(client, orders):
    client.set_cookie("tz", "Nowhere/Special")
    lookup(client, "ORD-10001", "alice.m@example.com")
    assert "9:14 AM UTC" in text(client.get("/orders/ORD-10001"))


def test_the_acknowledgement_promises_a_decision_by_the_customers_day(client, orders):
    # 2026-11-22 12:00 UTC is Sunday 20:00 in Beijing but already Monday 01:00 in Auckland.
    client.set_cookie("tz", "Pacific/Auckland")
    lookup(client, "ORD-10001", "alice.m@example.com")
    file_request(client, "ORD-10001")
    message = outbox(orders, "acknowledgement")[-1]
    assert message.variables["decision_due"] == "2026-11-25"  # Monday + 2 business days, there


def text_of(html: str) -> str:
    # CLDR puts a narrow no-break space before AM/PM; the assertions read it as a space.
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("\u202f", " ").split())


# --- language: only an explicit choice is remembered --------------------------------------------


def test_opening_an_order_does_not_choose_the_language_of_the_next_pages(client, orders):
    lookup(client, "ORD-20001", "zhang.wei@example.cn")
    assert 'lang="zh-Hans"' in client.get("/orders/ORD-20001").get_data(as_text=True)  # the owner's language
    # The home page afterwards (another customer at the same computer) is in the browser's language.
    home = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert 'lang="en"' in home.get_data(as_text=True)
    lookup(client, "ORD-10001", "alice.m@example.com")
    assert 'lang="en"' in client.get("/orders/ORD-10001").get_data(as_text=True)


def test_a_chosen_language_is_kept_on_every_page(client, orders):
    lookup(client, "ORD-20001", "zhang.wei@example.cn")
    client.get("/language/nl?next=/orders/ORD-20001")
    assert 'lang="nl"' in client.get("/orders/ORD-20001").get_data(as_text=True)
    assert 'lang="nl"' in client.get("/").get_data(as_text=True)


# --- the tracking page -------------------------------------------------------------------------


def test_the_tracking_page_shows_progress_what_was_written_and_a_reference_that_does_not_break(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001", details="It never synced my calendar.").headers["Location"]
    reference = reference.rsplit("/", 1)[1]
    html = client.get(f"/requests/{reference}").get_data(as_text=True)
    assert f'<h1>Refund request <span class="nowrap">{reference}</span></h1>' in html
    page = text_of(html)
    assert "Request filed Nov 22, 2026, 12:00 PM UTC" in page
    assert "Decided expected by Tuesday, November 24, 2026" in page
    assert "Refunded expected by Thursday, December 3, 2026" in page  # + 7 business days at most
    assert "What you wrote Reason No longer needed Details It never synced my calendar." in page


def test_withdrawing_asks_for_confirmation_first(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    page = client.get(f"/requests/{reference}").get_data(as_text=True)
    assert f'href="/requests/{reference}/withdraw"' in page and '/withdraw" method' not in page
    confirm = client.get(f"/requests/{reference}/withdraw")
    assert confirm.status_code == 200 and "Yes, withdraw this request" in confirm.get_data(as_text=True)
    assert latest_request(orders).state.value == "received"  # looking at the question changes nothing
    token = csrf_token(client, f"/requests/{reference}/withdraw")
    assert client.post(f"/requests/{reference}/withdraw", data={"csrf_token": token}).status_code == 303
    assert latest_request(orders).state.value == "withdrawn"
    # Once withdrawn, the question is not asked again.
    assert client.get(f"/requests/{reference}/withdraw").status_code == 303


def test_a_lapsed_session_is_offered_a_way_back_in(app, client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    stranger = app.test_client()
    pages = []
    for url in (f"/requests/{reference}", "/orders/ORD-10001", "/requests/RF-NOSUCH00"):
        answer = stranger.get(url)
        assert answer.status_code == 404
        html = answer.get_data(as_text=True)
        assert "Open your order again" in html and 'action="/lookup"' in html
        # The same but for the return address and the form's CSRF token (signed when it is made).
        pages.append(re.sub(r'next=[^"]+|name="csrf_token" type="hidden" value="[^"]+"', "", html))
    assert pages[0] == pages[2]  # the same page whether or not the request exists


def test_a_refunded_request_labels_the_processor_reference_and_says_refunded_once(app, client, orders):
    from tests.staff_helpers import make_staff, sign_in, staff_post

    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    make_staff(orders, "agent@example.com")
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    for action, fields in (("approve", {"amount": "29.00"}), ("process", {"reference": "re_3QaB10001"})):
        response = staff_post(agent, f"/staff/requests/{reference}/{action}", f"/staff/requests/{reference}", **fields)
        assert response.status_code == 303
    page = text(client.get(f"/requests/{reference}"))
    assert "Payment processor's reference re_3QaB10001" in page
    assert "Refunded Nov 22, 2026" in page  # the last step, done, with its time
    client.get("/language/zh")
    page = text(client.get(f"/requests/{reference}"))
    assert "US$29.00 已退回至您的原支付方式。" in page and "已退款：" not in page


def test_an_offer_that_no_longer_fits_cannot_be_taken_by_posting_it(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")  # its monthly period ended on 2026-11-12
    token = csrf_token(client, "/orders/ORD-10002")
    taken = client.post("/orders/ORD-10002/offer", data={"csrf_token": token, "offer_id": "extended-trial"})
    assert taken.status_code == 404 and latest_request(orders) is None
    support = client.post("/orders/ORD-10002/offer", data={"csrf_token": token, "offer_id": "personal-support"})
    assert support.status_code == 303 and latest_request(orders).offer_id == "personal-support"


def test_no_clause_ids_in_what_customers_read(client, orders):
    policy = text(client.get("/policy"))
    assert "Clause monthly" not in policy and "Link to this section" in policy
    lookup(client, "ORD-10003", "bob.tanaka@example.org")
    page = text(client.get("/orders/ORD-10003"))
    assert "(annual)" not in page and "Annual plans" in page
