"""Demo data relative to today: customers in every language, orders inside and outside each window."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.accounts import sessions
from portal.accounts.models import StaffUser
from portal.accounts.passwords import hash_password
from portal.core.money import Money
from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason, StaffRole
from portal.documents.storage import LocalStorage, Storage
from portal.orders.importing import upsert_orders
from portal.orders.models import Order
from portal.orders.validation import OrderData
from portal.payments import ManualGateway
from portal.policy import Policy
from portal.refunds import acting, decisions, filing, payouts, replies
from portal.refunds.links import Links

DEMO_ADMIN_EMAIL = "admin@demo.example"
DEMO_STAFF = (
    ("admin@demo.example", "Demo Admin", StaffRole.ADMIN),
    ("agent@demo.example", "Demo Agent", StaffRole.AGENT),
    ("marketing@demo.example", "Demo Marketing", StaffRole.MARKETING),
)

# (number, email, name, locale, product, plan, amount, currency, days ago, channel, affiliate, commission)
_ORDERS = [
    (
        "DEMO-1001",
        "emily.clark@example.com",
        "Emily Clark",
        "en",
        "Team Workspace",
        "monthly",
        "29.00",
        "USD",
        3,
        "web",
        None,
        None,
    ),
    (
        "DEMO-1002",
        "emily.clark@example.com",
        "Emily Clark",
        "en",
        "Team Workspace",
        "monthly",
        "29.00",
        "USD",
        33,
        "web",
        None,
        None,
    ),
    (
        "DEMO-1003",
        "raj.patel@example.com",
        "Raj Patel",
        "en",
        "Analytics Pro",
        "annual",
        "588.00",
        "USD",
        45,
        "web",
        "partnerhub",
        "58.80",
    ),
    (
        "DEMO-1004",
        "raj.patel@example.com",
        "Raj Patel",
        "en",
        "Storage Add-on",
        "one-time",
        "15.00",
        "USD",
        2,
        "web",
        None,
        None,
    ),
    (
        "DEMO-1005",
        "mia.wong@example.co.uk",
        "Mia Wong",
        "en",
        "Analytics Pro",
        "monthly",
        "49.00",
        "GBP",
        13,
        "web",
        None,
        None,
    ),
    ("DEMO-2001", "liu.yang@example.cn", "刘洋", "zh", "团队工作区", "monthly", "199.00", "CNY", 5, "web", None, None),
    (
        "DEMO-2002",
        "liu.yang@example.cn",
        "刘洋",
        "zh",
        "Analytics Pro",
        "annual",
        "3999.00",
        "CNY",
        60,
        "web",
        None,
        None,
    ),
    (
        "DEMO-2003",
        "zhao.min@example.cn",
        "赵敏",
        "zh",
        "Analytics Pro",
        "annual",
        "3999.00",
        "CNY",
        4,
        "reseller",
        "channelasia",
        "399.90",
    ),
    (
        "DEMO-2004",
        "zhao.min@example.cn",
        "赵敏",
        "zh",
        "Storage Add-on",
        "one-time",
        "99.00",
        "CNY",
        12,
        "web",
        None,
        None,
    ),
    (
        "DEMO-3001",
        "daan.jansen@example.nl",
        "Daan Jansen",
        "nl",
        "Team Workspace",
        "monthly",
        "27.00",
        "EUR",
        1,
        "web",
        None,
        None,
    ),
    (
        "DEMO-3002",
        "daan.jansen@example.nl",
        "Daan Jansen",
        "nl",
        "Analytics Pro",
        "annual",
        "540.00",
        "EUR",
        120,
        "web",
        None,
        None,
    ),
    (
        "DEMO-3003",
        "fleur.mulder@example.be",
        "Fleur Mulder",
        "nl",
        "Analytics Pro",
        "annual",
        "540.00",
        "EUR",
        20,
        "reseller",
        None,
        None,
    ),
    (
        "DEMO-3004",
        "fleur.mulder@example.be",
        "Fleur Mulder",
        "nl",
        "Storage Add-on",
        "one-time",
        "14.00",
        "EUR",
        6,
        "web",
        None,
        None,
    ),
    (
        "DEMO-4001",
        "kenji.ito@example.jp",
        "伊藤 健二",
        "en",
        "Team Workspace",
        "monthly",
        "4300",
        "JPY",
        8,
        "web",
        None,
        None,
    ),
]
_CHARGED_BACK = {"DEMO-1002"}


@dataclass
class DemoResult:
    seeded: bool
    orders: int
    admin_email: str
    admin_password: str
    requests: int = 0


def _period(plan: str, purchased: datetime):
    start = purchased.date()
    if plan == "monthly":
        month = start.month % 12 + 1
        year = start.year + (start.month == 12)
        day = min(start.day, 28)
        return start, start.replace(year=year, month=month, day=day)
    if plan == "annual":
        return start, start.replace(year=start.year + 1, day=min(start.day, 28))
    return None, None


def demo_orders(now: datetime) -> list[OrderData]:
    orders = []
    for (
        number,
        email,
        name,
        locale,
        product,
        plan,
        amount,
        currency,
        days_ago,
        channel,
        affiliate,
        commission,
    ) in _ORDERS:
        purchased = (now - timedelta(days=days_ago, hours=2)).replace(second=0, microsecond=0)
        start, end = _period(plan, purchased)
        orders.append(
            OrderData(
                order_number=number,
                customer_email=email,
                customer_name=name,
                locale=locale,
                product=product,
                plan=Plan(plan),
                amount=Money.parse(amount, currency),
                purchased_at=purchased,
                period_start=start,
                period_end=end,
                payment_reference="ch_demo_" + number.lower().replace("-", ""),
                channel=Channel(channel),
                affiliate=affiliate,
                affiliate_commission=Money.parse(commission, currency) if commission else None,
            )
        )
    return orders


def seed_demo(
    session: Session, now: datetime | None = None, *, policy=None, links=None, storage: Storage | None = None
) -> DemoResult:
    """Seed an empty database; on a seeded one only give the demo staff a fresh password.

    With a policy and links, refund requests are filed and moved along through the same
    services the pages use, so the staff console opens on a realistic queue.
    """
    now = now or datetime.now(UTC)
    password = secrets.token_urlsafe(12)
    for email, name, role in DEMO_STAFF:
        user = session.scalar(select(StaffUser).where(StaffUser.email == email))
        if user is None:
            session.add(StaffUser(email=email, name=name, role=role, password_hash=hash_password(password)))
        else:
            # A new password for the printed login ends the sessions signed in with the old one.
            user.password_hash = hash_password(password)
            sessions.end_all_sessions(session, user, now=now)

    seeded = False
    requests = 0
    if not session.scalar(select(func.count()).select_from(Order)):
        upsert_orders(session, demo_orders(now))
        for order in session.scalars(select(Order).where(Order.order_number.in_(_CHARGED_BACK))):
            order.payment_status = PaymentStatus.CHARGED_BACK
        session.commit()
        if policy is not None and links is not None:
            requests = _seed_requests(session, now, policy, links, storage or LocalStorage(Path(".")))
        # One saved reply to try in the console, in two of the three languages (the Dutch one missing shows the warning).
        replies.save(
            session,
            None,
            title="Ask for the invoice",
            bodies={
                "en": "Dear {customer_name}, could you send us the invoice for order {order_number} ({amount})? "
                "Please answer by {deadline}.",
                "zh": "{customer_name}您好，请发送订单 {order_number}（{amount}）的发票，并在{deadline}前回复。",
            },
            staff_user_id=None,
            now=now,
        )
        seeded = True
    session.commit()
    count = session.execute(select(func.count()).select_from(Order)).scalar_one()
    return DemoResult(
        seeded=seeded, orders=count, admin_email=DEMO_ADMIN_EMAIL, admin_password=password, requests=requests
    )


def _seed_requests(session: Session, now: datetime, policy: Policy, links: Links, storage: Storage) -> int:
    """File and move demo requests as customers and an agent would, each step committed on its own."""
    agent = session.scalar(select(StaffUser).where(StaffUser.role == StaffRole.AGENT))
    assert agent is not None  # one of DEMO_STAFF, created just before

    def order(number: str) -> Order:
        return session.execute(select(Order).where(Order.order_number == number)).scalar_one()

    def file(number: str, reason: Reason, days_ago: float, details: str, locale: str):
        submitted = filing.Filing(reason=reason, details=details, locale=locale, submission_key="")
        filed = filing.file_refund(
            session,
            order(number),
            submitted,
            policy=policy,
            now=now - timedelta(days=days_ago),
            links=links,
            storage=storage,
        ).request
        session.commit()
        return filed

    def staff(days_ago: float) -> acting.Staff:
        return acting.Staff(agent, now - timedelta(days=days_ago), links, policy)

    file("DEMO-1001", Reason.TECHNICAL_PROBLEM, 2, "The dashboard stays blank since the last update.", "en")
    asked = file("DEMO-2001", Reason.NOT_AS_EXPECTED, 3, "功能和演示中看到的不一样。", "zh")
    decisions.ask_for_information(
        session, asked, staff(2.5), questions=["what_went_wrong", "how_long_used"], documents=["screenshot"], message=""
    )
    session.commit()
    refunded = file("DEMO-3001", Reason.NO_LONGER_NEEDED, 1, "We zijn overgestapt op een ander pakket.", "nl")
    decisions.approve(session, refunded, staff(0.8), amount=Money.from_minor(2700, "EUR"))
    session.commit()
    payouts.process_refund(session, refunded.id, staff(0.7), ManualGateway(), reference="re_demo_3001")
    session.commit()
    approved = file("DEMO-4001", Reason.BILLING_ERROR, 0.5, "I was charged twice this month.", "en")
    decisions.approve(session, approved, staff(0.2), amount=Money.from_minor(4300, "JPY"))
    session.commit()
    declined = file("DEMO-1003", Reason.NO_LONGER_NEEDED, 1.5, "", "en")
    clause = declined.decision_at_filing.primary_clause
    decisions.decline(
        session,
        declined,
        staff(1),
        clause_id=clause,
        offer_id="extended-trial",
        note="The team plan was used throughout the month.",
        # The policy grants a prorated refund here: declining it anyway takes a written reason.
        override_reason="Used throughout the month; the prorated refund was waived at signup.",
    )
    session.commit()
    file("DEMO-3004", Reason.OTHER, 0.1, "Per ongeluk besteld.", "nl")
    return 6
