"""Which orders this browser session may see: those it looked up, or all of a signed-in email."""

from __future__ import annotations

import secrets
from functools import cache
from typing import NoReturn

from flask import abort, make_response, render_template, session
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal.orders.models import Customer, Order
from portal.refunds.models import RefundRequest
from portal.refunds.summary import OrderSummary, order_summary
from portal.web.extensions import db
from portal.web.forms import LookupForm
from portal.web.i18n import ZONE_SESSION_KEY, browser_zone

ORDERS_KEY = "orders"
RETURN_URLS_KEY = "return_urls"
CUSTOMER_KEY = "customer_id"
MAX_ORDERS = 50


def _staging_id() -> None:
    # Given with the access, so every copy of a session that may file shares one staging folder
    # (and its quota): a script replaying the cookie cannot get a fresh folder each time.
    session.setdefault("staging_id", secrets.token_hex(16))


def grant_order(order: Order) -> None:
    _staging_id()
    orders = [i for i in session.get(ORDERS_KEY, []) if i != order.id]
    session[ORDERS_KEY] = [*orders, order.id][-MAX_ORDERS:]
    # The customer's language is not stored as the visitor's choice: their own pages speak it
    # (i18n.speak_owners_language), and the rest of the site keeps the browser's language.
    remember_zone(order.customer)


def grant_customer(customer: Customer) -> None:
    _staging_id()
    session[CUSTOMER_KEY] = customer.id
    remember_zone(customer)


def remember_zone(customer: Customer) -> None:
    """This browser's time zone, kept for the customer (their record, for emails and receipts, and
    this session); a browser that sends none gets the zone remembered from an earlier visit."""
    zone = browser_zone()
    if zone is not None and customer.time_zone != zone:
        customer.time_zone = zone  # the caller commits
    if zone or customer.time_zone:
        session[ZONE_SESSION_KEY] = zone or customer.time_zone


def may_see(order: Order | OrderSummary) -> bool:
    return order.id in session.get(ORDERS_KEY, []) or order.customer_id == session.get(CUSTOMER_KEY)


@cache
def _order_by_number():
    # The refund form and the offers read the order's requests too: one query with them joined,
    # not two. The statement is built once; building it took a third of the lookup's time.
    return select(Order).options(joinedload(Order.refund_requests)).where(Order.order_number == bindparam("number"))


def not_yours() -> NoReturn:
    """404, the same answer for no such order as for someone else's, with a way back in: a session
    that has lapsed (or a link opened in another browser) finds its order again from here."""
    page = render_template("customer/way_back.html", lookup_form=LookupForm())
    abort(make_response(page, 404))


def owned_order(order_number: str) -> Order:
    """The order if this session may see it; otherwise 404, the same answer as for no such order."""
    order = db.session.scalars(_order_by_number(), {"number": order_number}).unique().first()
    if order is None or not may_see(order):
        not_yours()
    return order


def owned_order_summary(order_number: str) -> OrderSummary:
    """The order as read-only data for its page, under the same rule as :func:`owned_order`."""
    order = order_summary(db.engine, order_number)
    if order is None or not may_see(order):
        not_yours()
    return order


def owned_request(reference: str) -> RefundRequest:
    request = db.session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    if request is None or not may_see(request.order):
        not_yours()
    return request


def visible_orders() -> list[Order]:
    ids = session.get(ORDERS_KEY, [])
    customer_id = session.get(CUSTOMER_KEY)
    query = select(Order).order_by(Order.purchased_at.desc())
    if customer_id:
        query = query.where((Order.customer_id == customer_id) | Order.id.in_(ids))
    else:
        query = query.where(Order.id.in_(ids))
    return list(db.session.scalars(query))


def set_return_url(order_id: int, url: str) -> None:
    """Where the order page's "back" link leads: the SaaS app that opened it (a portal session)."""
    urls = {k: v for k, v in session.get(RETURN_URLS_KEY, {}).items() if k != str(order_id)}
    urls[str(order_id)] = url
    session[RETURN_URLS_KEY] = dict(list(urls.items())[-MAX_ORDERS:])


def return_url(order_id: int) -> str | None:
    return session.get(RETURN_URLS_KEY, {}).get(str(order_id))
