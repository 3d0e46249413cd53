"""Customers and the orders they paid for. Amounts are whole numbers of the currency's minor unit."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.money import Money
from portal.core.vocabulary import Channel, PaymentStatus, Plan

if TYPE_CHECKING:
    from portal.refunds.models import RefundRequest


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Addresses are compared case-insensitively; the normalized form carries the uniqueness.
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default="en")
    # The IANA zone their browser reported ("Asia/Shanghai"); None until one has visited with JavaScript.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A bounce said mail to this address cannot be delivered; staff see it on the request page.
    email_undeliverable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_undeliverable_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    orders: Mapped[list[Order]] = relationship(back_populates="customer", order_by="Order.purchased_at")

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()


class Order(Base):
    __tablename__ = "order"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("affiliate_commission_minor >= 0", name="commission_not_negative"),
        CheckConstraint("tax_minor >= 0", name="tax_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    product: Mapped[str] = mapped_column(String(200))
    plan: Mapped[Plan] = mapped_column(enum_column(Plan))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    payment_reference: Mapped[str] = mapped_column(String(128))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    affiliate: Mapped[str | None] = mapped_column(String(128))
    affiliate_commission_minor: Mapped[int | None] = mapped_column(BigInteger)
    # From the billing system's invoice, when its export has them: the credit note names the invoice
    # it corrects and the tax share of what it refunds. The tax is included in amount_minor.
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    tax_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Hundredths of a percent (2100 for 21 %): a whole number, exact on SQLite as on PostgreSQL.
    tax_rate_basis_points: Mapped[int | None] = mapped_column(Integer)
    payment_status: Mapped[PaymentStatus] = mapped_column(enum_column(PaymentStatus), default=PaymentStatus.PAID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    refund_requests: Mapped[list[RefundRequest]] = relationship(
        back_populates="order", order_by="RefundRequest.created_at"
    )

    @property
    def amount(self) -> Money:
        return Money.from_minor(self.amount_minor, self.currency)

    @property
    def affiliate_commission(self) -> Money | None:
        if self.affiliate_commission_minor is None:
            return None
        return Money.from_minor(self.affiliate_commission_minor, self.currency)

    @property
    def tax(self) -> Money | None:
        if self.tax_minor is None:
            return None
        return Money.from_minor(self.tax_minor, self.currency)

    @property
    def tax_rate(self) -> Decimal | None:
        """The tax rate as a percentage (Decimal("21.00") for 21 %)."""
        if self.tax_rate_basis_points is None:
            return None
        return Decimal(self.tax_rate_basis_points).scaleb(-2)


class LookupFailure(Base):
    """A failed order lookup: a fraud signal for staff, recorded whether or not the order exists."""

    __tablename__ = "lookup_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(64), index=True)
    client_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MagicLink(Base):
    """A single-use sign-in link to all orders of an email address, stored as a hash."""

    __tablename__ = "magic_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()


class MagicLinkRequest(Base):
    """Someone asked for a link to the orders of an address; the worker decides whether one goes out.

    The web request only writes this row, whether or not the address has orders, so both answers
    cost the same and nobody learns from the timing which addresses are customers.
    """

    __tablename__ = "magic_link_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_normalized: Mapped[str] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class PortalSession(Base):
    """A one-time URL a SaaS's own app asked for (POST /api/v1/portal-sessions): it opens one order's
    page signed in as its customer. Stored as a hash, single use, short-lived; the row stays as
    the security record of who opened which order for whom, and when it was used."""

    __tablename__ = "portal_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The API token that asked for it (by id: orders know nothing of staff accounts).
    api_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id"))
    locale: Mapped[str | None] = mapped_column(String(8))
    return_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by_client: Mapped[str] = mapped_column(String(64), default="")

    order: Mapped[Order] = relationship()
