"""The staff desk: ownership, views by due time, saved views, search, presence and stale forms,
and the same through the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import select, update

from portal.accounts.models import StaffUser
from portal.accounts.staff import create_api_token
from portal.core.vocabulary import Actor, RequestState, StaffRole
from portal.orders.models import Customer
from portal.refunds.models import RefundRequest
from portal.refunds.queue import due_at, sla_clock
from portal.refunds.states import Action, transition
from tests.staff_console_helpers import act, filed
from tests.staff_helpers import make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


@pytest.fixture
def agent(app, orders):
    make_staff(orders, "ada@example.com", StaffRole.AGENT, "Ada Agent")
    client = app.test_client()
    assert sign_in(client, "ada@example.com").status_code == 302
    return client


@pytest.fixture
def bob(app, orders):
    make_staff(orders, "bob@example.com", StaffRole.AGENT, "Bob Builder")
    client = app.test_client()
    assert sign_in(client, "bob@example.com").status_code == 302
    return client


def page_text(response) -> str:
    """What a reader sees: the page without its tags, spaces collapsed."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", response.get_data(as_text=True), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split()).replace(" .", ".")


def request_of(session, reference) -> RefundRequest:
    session.expire_all()
    return session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))


def staff_id(session, email) -> int:
    return session.scalar(select(StaffUser.id).where(StaffUser.email == email))


def queue_references(html: str) -> list[str]:
    return re.findall(r'class="queue-link nowrap" href="[^"]*">(RF-[0-9A-Z]+)<', html)


def filed_hours_ago(app, session, hours: float, number: str, email: str) -> str:
    """A request filed now, its service clock set back: as if it had been filed ``hours`` ago."""
    reference = filed(app, number, email)
    back = datetime.now(UTC) - timedelta(hours=hours)
    session.execute(update(RefundRequest).where(RefundRequest.reference == reference).values(sla_clock_at=back))
    session.commit()
    return reference


# -- the service clock ----------------------------------------------------------------------------


def test_the_due_clock_stands_still_while_we_wait_on_the_customer():
    filed_at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    sla = timedelta(hours=24)
    clock, paused = filed_at, None
    assert due_at(RequestState.RECEIVED, clock, paused, sla, filed_at) == filed_at + sla
    # Asked after 2 hours; the customer answers 30 hours later: the due time moves by those 30 hours.
    clock, paused = sla_clock(RequestState.AWAITING_CUSTOMER, clock, paused, filed_at + timedelta(hours=2))
    while_waiting = filed_at + timedelta(hours=20)
    assert due_at(RequestState.AWAITING_CUSTOMER, clock, paused, sla, while_waiting) == filed_at + sla + timedelta(
        hours=18
    )
    clock, paused = sla_clock(RequestState.IN_REVIEW, clock, paused, filed_at + timedelta(hours=32))
    assert paused is None and clock == filed_at + timedelta(hours=30)
    assert due_at(RequestState.IN_REVIEW, clock, paused, sla, filed_at + timedelta(hours=40)) == filed_at + timedelta(
        hours=54
    )
    assert due_at(RequestState.REFUNDED, clock, paused, sla, filed_at) is None


def test_asking_and_the_answer_move_the_request_out_of_needs_action_and_back_with_its_clock_paused(
    app, agent, orders, frozen
):
    reference = filed(app)
    filed_clock = request_of(orders, reference).sla_clock_at
    assert act(agent, reference, "ask", questions="what_went_wrong").status_code == 303
    waiting = request_of(orders, reference)
    assert waiting.state is RequestState.AWAITING_CUSTOMER and waiting.sla_paused_at is not None
    assert reference not in queue_references(agent.get("/staff/queue").get_data(as_text=True))
    assert reference in queue_references(agent.get("/staff/queue?view=waiting").get_data(as_text=True))
    frozen.shift(timedelta(minutes=20))  # (the staff session ends after 30 idle minutes)
    transition(orders, waiting, Action.ANSWER, actor=Actor.CUSTOMER)
    orders.commit()
    answered = request_of(orders, reference)
    assert answered.sla_paused_at is None
    assert answered.sla_clock_at - filed_clock >= timedelta(minutes=20)
    assert reference in queue_references(agent.get("/staff/queue").get_data(as_text=True))


# -- views ----------------------------------------------------------------------------------------


def test_the_queue_opens_on_needs_action_by_due_time_with_the_due_time_and_a_count_per_view(app, agent, orders):
    late = filed_hours_ago(app, orders, 26, "ORD-10005", "dave@example.com")
    fresh = filed(app, "ORD-10001", "alice.m@example.com")
    older = filed_hours_ago(app, orders, 21, "ORD-10003", "bob.tanaka@example.org")
    asked = filed(app, "ORD-20001", "zhang.wei@example.cn")
    assert act(agent, asked, "ask", questions="what_went_wrong").status_code == 303

    html = agent.get("/staff/queue").get_data(as_text=True)
    assert queue_references(html) == [late, older, fresh]  # the closest due first; the waiting one left out
    text = page_text(agent.get("/staff/queue"))
    assert "overdue by 2 h" in text and "due in 3 h" in text and "due in 24 h" in text
    assert re.search(r"Needs action <strong>3</strong>", html)
    assert re.search(r"Waiting on the customer <strong>1</strong>", html)
    assert re.search(r"All open <strong>4</strong>", html)
    assert re.search(r"Unassigned <strong>4</strong>", html)
    assert re.search(r"Mine <strong>0</strong>", html)
    assert queue_references(agent.get("/staff/queue?view=waiting").get_data(as_text=True)) == [asked]
    assert queue_references(agent.get("/staff/queue?view=closed").get_data(as_text=True)) == []
    assert len(queue_references(agent.get("/staff/queue?view=all").get_data(as_text=True))) == 4


def test_the_due_time_is_shown_in_the_agents_language(app, agent, orders):
    filed_hours_ago(app, orders, 26, "ORD-10005", "dave@example.com")
    assert "已逾期 2 小时" in page_text(agent.get("/staff/queue", headers={"Accept-Language": "zh"}))
    assert "2 u. te laat" in page_text(agent.get("/staff/queue", headers={"Accept-Language": "nl"}))


def test_saved_views_are_kept_per_agent_with_their_count(app, agent, bob, orders):
    filed(app, "ORD-10001", "alice.m@example.com")
    filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    response = staff_post(agent, "/staff/queue/views", "/staff/queue", name="Chinese", query="view=open&locale=zh")
    assert response.status_code == 303
    html = agent.get("/staff/queue").get_data(as_text=True)
    assert re.search(r'href="/staff/queue\?view=open&amp;locale=zh">Chinese <strong>1</strong>', html)
    assert len(queue_references(agent.get("/staff/queue?view=open&locale=zh").get_data(as_text=True))) == 1
    assert "Chinese" not in bob.get("/staff/queue").get_data(as_text=True)  # an agent's own
    view_id = re.search(r"/staff/queue/views/(\d+)/delete", html).group(1)
    assert bob.post(f"/staff/queue/views/{view_id}/delete", data={"csrf_token": "x"}).status_code in (400, 404)
    assert staff_post(agent, f"/staff/queue/views/{view_id}/delete", "/staff/queue").status_code == 303
    assert "Chinese <strong>" not in agent.get("/staff/queue").get_data(as_text=True)


# -- ownership ------------------------------------------------------------------------------------


def test_an_agent_takes_a_request_gives_it_to_another_and_lets_it_go_each_step_in_the_timeline(app, agent, bob, orders):
    reference = filed(app)
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, f"{page}/assign", page, me="1").status_code == 303
    assert request_of(orders, reference).assignee_id == staff_id(orders, "ada@example.com")
    text = page_text(agent.get(page))
    assert "Assignee: Ada Agent" in text and "Assigned to Ada Agent by Ada Agent" in text
    assert queue_references(agent.get("/staff/queue?view=mine").get_data(as_text=True)) == [reference]
    assert queue_references(agent.get("/staff/queue?view=unassigned").get_data(as_text=True)) == []
    assert "Ada Agent" in page_text(agent.get("/staff/queue"))  # the queue names the owner

    bob_id = staff_id(orders, "bob@example.com")
    assert staff_post(agent, f"{page}/assign", page, assignee=str(bob_id)).status_code == 303
    assert queue_references(bob.get("/staff/queue?view=mine").get_data(as_text=True)) == [reference]
    assert staff_post(bob, f"{page}/assign", page, assignee="").status_code == 303
    assert request_of(orders, reference).assignee_id is None
    text = page_text(agent.get(page))
    assert "Assigned to Bob Builder by Ada Agent" in text and "Unassigned by Bob Builder" in text
    assert queue_references(agent.get("/staff/queue?view=unassigned").get_data(as_text=True)) == [reference]


def test_a_request_cannot_be_given_to_marketing_or_a_stranger(app, agent, orders):
    reference = filed(app)
    marketing = make_staff(orders, "mia@example.com", StaffRole.MARKETING, "Mia Marketing")
    page = f"/staff/requests/{reference}"
    assert f'value="{marketing.id}"' not in agent.get(page).get_data(as_text=True)
    assert staff_post(agent, f"{page}/assign", page, assignee=str(marketing.id)).status_code == 400
    assert staff_post(agent, f"{page}/assign", page, assignee="99999").status_code == 400
    assert request_of(orders, reference).assignee_id is None


def test_deactivating_an_agent_returns_their_open_requests_to_unassigned(app, agent, orders):
    open_one = filed(app, "ORD-10001", "alice.m@example.com")
    closed_one = filed(app, "ORD-10005", "dave@example.com")
    for reference in (open_one, closed_one):
        page = f"/staff/requests/{reference}"
        assert staff_post(agent, f"{page}/assign", page, me="1").status_code == 303
    transition(orders, request_of(orders, closed_one), Action.WITHDRAW, actor=Actor.CUSTOMER)
    orders.commit()
    make_staff(orders, "boss@example.com", StaffRole.ADMIN, "Boss")
    admin = app.test_client()
    assert sign_in(admin, "boss@example.com").status_code == 302
    ada = staff_id(orders, "ada@example.com")
    response = staff_post(admin, f"/staff/users/{ada}/active", "/staff/users")
    assert response.status_code == 303
    assert "1 open request of ada@example.com is unassigned again." in page_text(admin.get("/staff/users"))
    assert request_of(orders, open_one).assignee_id is None
    text = page_text(admin.get(f"/staff/requests/{open_one}"))
    assert "Returned to unassigned: the account of Ada Agent was deactivated" in text
    assert request_of(orders, closed_one).assignee_id == ada  # a closed request keeps its owner


def test_round_robin_gives_new_requests_to_the_active_agents_in_turn(app, orders):
    app.config["ROUND_ROBIN"] = True  # PORTAL_ROUND_ROBIN=true
    first = make_staff(orders, "ada@example.com", StaffRole.AGENT, "Ada")
    second = make_staff(orders, "bob@example.com", StaffRole.AGENT, "Bob")
    make_staff(orders, "boss@example.com", StaffRole.ADMIN, "Boss")  # admins assign by hand
    references = [
        filed(app, "ORD-10001", "alice.m@example.com"),
        filed(app, "ORD-10005", "dave@example.com"),
        filed(app, "ORD-10003", "bob.tanaka@example.org"),
    ]
    assert [request_of(orders, r).assignee_id for r in references] == [first.id, second.id, first.id]


def test_without_round_robin_new_requests_are_unassigned(app, agent, orders):
    assert request_of(orders, filed(app)).assignee_id is None


# -- search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term, numbers",
    [
        ("alice", {"ORD-10001"}),  # part of a name, any case
        ("ALICE.M", {"ORD-10001"}),  # part of an email address
        ("example.org", {"ORD-10003"}),
        ("10003", {"ORD-10003"}),  # part of an order number
        ("analytics", {"ORD-10003"}),  # the product
        ("张伟", {"ORD-20001"}),  # a Chinese name of two characters
        ("团队工作", {"ORD-20001"}),  # a Chinese product
        ("nobody-at-all", set()),
    ],
)
def test_search_finds_part_of_a_name_email_order_number_or_product_in_any_case(app, agent, orders, term, numbers):
    filed(app, "ORD-10001", "alice.m@example.com")
    filed(app, "ORD-10003", "bob.tanaka@example.org")
    filed(app, "ORD-20001", "zhang.wei@example.cn")
    html = agent.get("/staff/queue", query_string={"q": term}).get_data(as_text=True)
    found = set(re.findall(r"(ORD-\d+)(?:</span>)? · ", html))
    assert found == numbers


def test_search_finds_part_of_a_reference_and_follows_a_customers_new_name(app, agent, orders):
    reference = filed(app)
    html = agent.get("/staff/queue", query_string={"q": reference[3:8].lower()}).get_data(as_text=True)
    assert queue_references(html) == [reference]
    orders.execute(update(Customer).where(Customer.email == "alice.m@example.com").values(name="Alicia Liu-Yang"))
    orders.commit()
    assert queue_references(agent.get("/staff/queue?q=liu-yang").get_data(as_text=True)) == [reference]
    assert queue_references(agent.get("/staff/queue?q=moreau").get_data(as_text=True)) == []


# -- presence and stale forms ---------------------------------------------------------------------


def test_another_agent_with_the_request_open_is_named_on_the_page(app, agent, bob, orders):
    reference = filed(app)
    assert "Also open by" not in page_text(agent.get(f"/staff/requests/{reference}"))
    bob.get(f"/staff/requests/{reference}")
    assert "Also open by Bob Builder." in page_text(agent.get(f"/staff/requests/{reference}"))
    answer = agent.get(f"/staff/requests/{reference}/presence").get_json()
    assert answer["others"] == ["Bob Builder"] and answer["changed"] is False


def test_a_decision_from_a_page_older_than_the_requests_last_change_is_refused_with_409(app, agent, bob, orders):
    reference = filed(app)
    page = agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    assert act(bob, reference, "review").status_code == 303  # Bob moves it on meanwhile
    answer = agent.get(f"/staff/requests/{reference}/presence", query_string={"version": version}).get_json()
    assert answer["changed"] is True
    response = staff_post(
        agent, f"/staff/requests/{reference}/approve", f"/staff/requests/{reference}", amount="29.00", version=version
    )
    assert response.status_code == 409
    assert "Someone changed this request after you opened it, so nothing was done." in page_text(response)
    found = request_of(orders, reference)
    assert found.state is RequestState.IN_REVIEW and found.amount_approved_minor is None
    fresh = re.search(
        r'name="version" value="([^"]+)"', agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    )
    response = staff_post(
        agent,
        f"/staff/requests/{reference}/approve",
        f"/staff/requests/{reference}",
        amount="29.00",
        version=fresh.group(1),
    )
    assert response.status_code == 303 and request_of(orders, reference).state is RequestState.APPROVED


def test_the_request_page_has_the_action_bar_and_the_shortcuts_help_before_anything_else(app, agent, orders):
    first = filed(app, "ORD-10001", "alice.m@example.com")
    second = filed(app, "ORD-10005", "dave@example.com")
    html = agent.get(f"/staff/requests/{first}").get_data(as_text=True)
    bar = html.index('id="action-bar"')
    assert bar < html.index('id="req-title"')
    for key in ("j", "a", "r", "p", "d"):
        assert f'data-key="{key}"' in html
    assert f'rel="next" data-key="j" href="/staff/requests/{second}"' in html
    assert 'src="/static/staff-keys.js"' in html and "<script>" not in html
    assert "Keyboard shortcuts" in html


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
def api(app, orders):
    make_staff(orders, "ada@example.com", StaffRole.AGENT, "Ada Agent")
    make_staff(orders, "bob@example.com", StaffRole.AGENT, "Bob Builder")
    _record, token = create_api_token(orders, "ada@example.com", "desk", now=datetime.now(UTC))
    orders.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def call(method, url, **kwargs):
        return client.open(url, method=method, headers=headers, **kwargs)

    return call


def test_the_api_assigns_filters_by_assignee_and_searches(app, orders, api):
    first = filed(app, "ORD-10001", "alice.m@example.com")
    second = filed(app, "ORD-10003", "bob.tanaka@example.org")
    response = api("POST", f"/api/v1/requests/{first}/assign", json={"assignee": "Bob@Example.com"})
    assert response.status_code == 200 and response.get_json()["assignee"] == "bob@example.com"
    assert response.get_json()["due_at"] is not None

    def references(**query):
        answer = api("GET", "/api/v1/requests", query_string=query)
        assert answer.status_code == 200, answer.get_json()
        return [item["reference"] for item in answer.get_json()["items"]]

    assert references(assignee="bob@example.com") == [first]
    assert references(assignee="none") == [second]
    assert references(assignee="me") == []
    assert api("GET", "/api/v1/requests").get_json()["items"][0]["assignee"] == "bob@example.com"
    assert references(q="TANAKA") == [second]
    assert references(q="alice.m", view="needs_action") == [first]

    response = api("POST", f"/api/v1/requests/{second}/assign", json={"assignee": "ada@example.com"})
    assert references(assignee="me") == [second] == references(view="mine")
    response = api("POST", f"/api/v1/requests/{first}/assign", json={"assignee": None})
    assert response.status_code == 200 and response.get_json()["assignee"] is None

    unknown = api("POST", f"/api/v1/requests/{first}/assign", json={"assignee": "who@example.com"})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "assignee"
    make_staff(orders, "mia@example.com", StaffRole.MARKETING, "Mia")
    marketing = api("POST", f"/api/v1/requests/{first}/assign", json={"assignee": "mia@example.com"})
    assert marketing.status_code == 422
    assert api("GET", "/api/v1/requests", query_string={"assignee": "who@example.com"}).status_code == 422
    assert request_of(orders, first).assignee_id is None


def test_a_view_in_due_order_pages_by_its_own_keyset(app, agent, orders):
    from portal.refunds.queue import QueueFilter, View, queue_page

    references = [
        filed_hours_ago(app, orders, hours, number, email)
        for hours, number, email in (
            (5, "ORD-10001", "alice.m@example.com"),
            (20, "ORD-10005", "dave@example.com"),
            (10, "ORD-10003", "bob.tanaka@example.org"),
        )
    ]
    now = datetime.now(UTC)
    first = queue_page(orders, QueueFilter(view=View.NEEDS_ACTION), now=now, size=2)
    rest = queue_page(orders, QueueFilter(view=View.NEEDS_ACTION), now=now, cursor=first.next_cursor, size=2)
    assert [r.reference for r in first.rows + rest.rows] == [references[1], references[2], references[0]]
    assert rest.next_cursor is None
