"""Feedback after a refund, and the insights the team reads."""

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.insights.figures import compute
from portal.refunds.models import Feedback
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.conftest import csrf_token
from tests.journey_helpers import file_request, import_samples, lookup, outbox
from tests.staff_helpers import make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


@pytest.fixture
def agent(app, db_session):
    import_samples(db_session)
    make_staff(db_session)
    client = app.test_client()
    sign_in(client, "agent@example.com")
    return client


def file(app, number, email, **fields):
    customer = app.test_client()
    lookup(customer, number, email)
    return file_request(customer, number, **fields).headers["Location"].rsplit("/", 1)[1]


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)


def refunded(app, agent, number="ORD-20001", email="zhang.wei@example.cn", locale="zh"):
    reference = file(app, number, email, locale=locale)
    act(agent, reference, "approve", amount="10.00")
    act(agent, reference, "process", reference="re_fb")
    return reference


FEEDBACK = {
    "en": (
        "ORD-10001",
        "alice.m@example.com",
        "How would you rate the way we handled your refund?",
        "Your feedback has reached our team.",
        "We already have your feedback on this request.",
    ),
    "zh": (
        "ORD-20001",
        "zhang.wei@example.cn",
        "您如何评价我们处理您退款的方式？",
        "感谢",
        "我们已收到您对此申请的反馈",
    ),
    "nl": (
        "ORD-30001",
        "sanne.devries@example.nl",
        "Hoe beoordeelt u de manier waarop wij uw terugbetaling",
        "Uw feedback is bij ons team aangekomen.",
        "Wij hebben uw feedback over deze aanvraag al.",
    ),
}


@pytest.mark.parametrize("locale", FEEDBACK)
def test_feedback_is_left_once_in_the_customers_language(app, agent, db_session, locale):
    number, email, question, thanks, already = FEEDBACK[locale]
    refunded(app, agent, number, email, locale)
    link = outbox(db_session, "refunded")[0].variables["feedback_url"].removeprefix("http://portal.test")
    visitor = app.test_client()  # no lookup needed: the signed link is enough
    page = visitor.get(link).get_data(as_text=True)
    assert f'<html lang="{ {"en": "en", "zh": "zh-Hans", "nl": "nl"}[locale] }"' in page and question in page
    token = csrf_token(visitor, link)
    missing = visitor.post(link, data={"csrf_token": token, "comment": "Fast <b>and</b> kind", "come_back": "yes"})
    assert missing.status_code == 422 and "Fast &lt;b&gt;and&lt;/b&gt; kind" in missing.get_data(as_text=True)
    done = visitor.post(
        link, data={"csrf_token": token, "rating": "4", "comment": "Fast and kind", "come_back": "maybe"}
    )
    assert done.status_code == 200 and thanks in done.get_data(as_text=True)
    again = visitor.post(link, data={"csrf_token": token, "rating": "1", "comment": "changed", "come_back": "no"})
    assert already in again.get_data(as_text=True)
    [feedback] = db_session.scalars(select(Feedback)).all()
    assert (feedback.rating, feedback.comment, feedback.come_back, feedback.locale) == (
        4,
        "Fast and kind",
        "maybe",
        locale,
    )


def test_a_feedback_link_expires_after_30_days_with_a_friendly_page(app, agent, db_session, frozen):
    refunded(app, agent, "ORD-30001", "sanne.devries@example.nl", "nl")
    link = outbox(db_session, "refunded")[0].variables["feedback_url"].removeprefix("http://portal.test")
    assert app.test_client().get(link[:-3] + "abc").status_code == 404  # a forged signature
    frozen.shift(timedelta(days=31))
    expired = app.test_client().get(link)
    assert expired.status_code == 410 and "Deze link is verlopen" in expired.get_data(as_text=True)


def test_only_a_refunded_request_takes_feedback(app, agent, db_session):
    from portal.refunds.links import Links

    reference = file(app, "ORD-10001", "alice.m@example.com")
    token = Links("http://portal.test", app.config["SECRET_KEY"]).feedback_token(reference)
    assert app.test_client().get(f"/feedback/{token}").status_code == 404


def test_the_insights_show_every_figure_and_the_csv_matches_the_page(app, agent, db_session, frozen):
    billing = file(app, "ORD-10001", "alice.m@example.com", reason="billing_error")
    frozen.shift(timedelta(hours=2))
    sign_in(agent, "agent@example.com")  # each shift of the clock outlasts the idle limit of a staff session
    declined = file(app, "ORD-20001", "zhang.wei@example.cn", locale="zh", reason="not_as_expected")
    act(agent, declined, "decline", clause="monthly", offer="", override_reason="Misuse")  # the policy grants it
    done = file(app, "ORD-30001", "sanne.devries@example.nl", locale="nl")
    act(agent, done, "approve", amount="27.00")
    frozen.shift(timedelta(hours=3))
    sign_in(agent, "agent@example.com")
    act(agent, done, "process", reference="re_ins")
    with app.app_context():
        deliver(db.session)
    link = outbox(db_session, "refunded")[0].variables["feedback_url"].removeprefix("http://portal.test")
    visitor = app.test_client()
    visitor.post(
        link, data={"csrf_token": csrf_token(visitor, link), "rating": "5", "comment": "Top", "come_back": "yes"}
    )
    frozen.shift(timedelta(days=2))
    sign_in(agent, "agent@example.com")

    with app.app_context():
        now = utcnow()
        ins = compute(db.session, now - timedelta(days=30), now, now=now)
    assert ins.decisions == {"approved": 1, "declined": 1, "open": 1}
    assert ins.approval_rate == 0.5 and ins.billing_errors == 1 and ins.overdue == 1
    assert [(c, n, str(m.amount)) for c, n, m in ins.refunded] == [("EUR", 1, "27.00")]
    assert ins.timings["acknowledge"] is not None and ins.timings["acknowledge"] < 60 * 60 * 6
    # The middle of 0 h (the decline) and 3 h (the refund), to the 15-minute buckets of the histogram.
    assert ins.timings["resolution"] == pytest.approx(1.5 * 3600, abs=900)
    assert ins.feedback_average == 5.0 and ins.comments[0][2] == "Top"
    assert sum(n for _, _, n in ins.reasons_weekly) == 3

    page = agent.get("/staff/insights").get_data(as_text=True)
    assert "Billing errors: 1 in this period" in page and billing in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page and '<desc id="chart-desc">' in page
    assert "5.0 / 5" in page and "50.0%" in page
    for name in (
        "reasons",
        "decisions",
        "refunded",
        "timings",
        "billing_errors",
        "feedback",
        "saved",
        "signals",
        "refund_rate",
        "overdue",
    ):
        response = agent.get(f"/staff/insights.csv?table={name}")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        body = response.get_data(as_text=True)
        assert body.startswith("\ufeff")
        rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
        section = re.search(rf'<section class="card" aria-labelledby="t-{name}">(.*?)</section>', page, re.S).group(1)
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", section, re.S)]
        import html as html_module

        assert [html_module.unescape(c) for c in cells] == [c for row in rows for c in row], name
    assert agent.get("/staff/insights.csv?table=nope").status_code == 404
    assert db_session.scalar(select(func.count()).select_from(Feedback)) == 1
    make_staff(db_session, "m@example.com", StaffRole.MARKETING)
    marketing = app.test_client()
    sign_in(marketing, "m@example.com")
    assert marketing.get("/staff/insights").status_code == 403


def test_the_rollups_equal_a_rebuild_from_the_requests(app, agent, db_session, frozen):
    """What every change keeps in step must be what recounting everything gives."""
    from portal.insights import rollups

    first = file(app, "ORD-10001", "alice.m@example.com", reason="billing_error")
    second = refunded(app, agent, "ORD-30001", "sanne.devries@example.nl", "nl")
    act(agent, first, "decline", clause="monthly", offer="")
    with app.app_context():
        deliver(db.session)

    kept = rollup_snapshot(db_session)
    rollups.rebuild(db_session)
    db_session.commit()
    assert rollup_snapshot(db_session) == kept and second


def rollup_snapshot(session) -> dict:
    """Every non-empty rollup row, comparable between the incremental counts and a rebuild."""
    from portal.insights.models import InsightDay, InsightDuration, InsightOrderDay, InsightRefundDay

    session.expire_all()
    return {
        model.__tablename__: sorted(
            tuple(getattr(row, c.key) for c in model.__table__.columns)
            for row in session.scalars(select(model))
            if getattr(row, "count", 1) or getattr(row, "orders", 0) or getattr(row, "refunded", 0)
        )
        for model in (InsightDay, InsightDuration, InsightOrderDay, InsightRefundDay)
    }


def test_median_of_a_histogram():
    from portal.insights.rollups import bucket, bucket_middle, median_of

    assert [bucket(s) for s in (0, 59, 60, 3599, 3600, 172_799, 172_800)] == [0, 11, 12, 70, 71, 258, 259]
    assert median_of({}) is None
    assert median_of({bucket(30): 3}) == bucket_middle(bucket(30))
    assert median_of({bucket(10): 1, bucket(7200): 1}) == (bucket_middle(bucket(10)) + bucket_middle(bucket(7200))) / 2


@pytest.mark.parametrize(
    "locale,promise",
    [
        ("en", "Three short questions, about a minute"),
        ("zh", "三个简短的问题，约需一分钟"),
        ("nl", "Drie korte vragen, ongeveer een minuut"),
    ],
)
def test_the_feedback_page_and_its_email_promise_the_same_time(app, agent, db_session, locale, promise):
    number, email, *_ = FEEDBACK[locale]
    refunded(app, agent, number, email, locale)
    link = outbox(db_session, "refunded")[0].variables["feedback_url"].removeprefix("http://portal.test")
    page = app.test_client().get(link).get_data(as_text=True)
    assert promise in page
    # Three questions, as promised: the rating, what could be better, and whether they would come back.
    assert len(set(re.findall(r'name="(rating|comment|come_back)"', page))) == 3
    from portal.web.mail import email_kit

    with app.app_context():
        rendered = email_kit().render_sample("refunded", locale)
    assert promise in rendered.text and promise in rendered.html


@pytest.mark.parametrize(
    "locale,week_label",
    [("en", r"Nov 2\b"), ("zh", r"11月2日"), ("nl", r"2 nov\.?")],
)
def test_the_reasons_chart_names_every_reason_inside_it_with_dates_in_the_readers_language(
    app, agent, locale, week_label
):
    from portal.insights.charts import text_width

    agent.get(f"/language/{locale}?next=/staff/queue")
    page = agent.get("/staff/insights").get_data(as_text=True)
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    width, height = map(float, re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())
    legend = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" font-size="12" fill="currentColor">([^<]+)</text>', svg)
    assert len(legend) == 5, legend  # one per reason, the fifth included
    for x, y, name in legend:
        # Each name ends inside the picture (widths estimated generously) and above its bottom.
        assert float(x) + text_width(name) <= width and float(y) <= height - 4, (name, x, y)
    axis = re.findall(r'font-size="11" fill="currentColor">([^<]+)</text>', svg)
    dates = [label for label in axis if not label.isdigit()]
    assert dates and not [d for d in dates if re.fullmatch(r"\d\d-\d\d", d)], dates
    assert any(re.search(week_label, d) for d in dates), dates


def test_a_long_legend_wraps_into_rows_instead_of_running_off_the_chart():
    from portal.insights.charts import stacked_bars, text_width

    names = [
        "Facturatiefout of dubbele afschrijving",
        "Niet wat ik verwachtte",
        "Een technisch probleem",
        "Niet meer nodig",
        "Iets anders, met een heel lange omschrijving",
    ]
    svg = str(stacked_bars("t", "d", ["2026-11-02"], [(n, [1]) for n in names], width=420))
    height = float(re.search(r'viewBox="0 0 420 ([\d.]+)"', svg).group(1))
    legend = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" font-size="12" fill="currentColor">([^<]+)</text>', svg)
    assert [n for _, _, n in legend] == names
    assert all(float(x) + text_width(n) <= 420 and float(y) <= height for x, y, n in legend)
    assert len({y for _, y, _ in legend}) >= 3 and height > 300  # rows added, and room made for them


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01&to=9999-12-31",
        "from=1900-01-01&to=2999-01-01",
        "from=2026-11-30&to=2026-11-01",
        "from=nonsense",
    ],
)
def test_a_period_that_cannot_be_shown_is_refused_on_the_page_with_what_was_typed(agent, query):
    response = agent.get(f"/staff/insights?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Choose a start on or before the end, at most ten years apart." in page
    assert 'aria-invalid="true"' in page and len(page) < 200_000  # the last 90 days shown, not centuries
    assert agent.get(f"/staff/insights.csv?table=reasons&{query}").status_code == 422
