"""Daily rollups the insights read instead of grouping a million rows."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.database import Base, enum_column
from portal.core.vocabulary import Plan, Reason


class InsightDay(Base):
    """Requests filed per day, reason, outcome so far, and whether they asked outside the policy.

    Kept in step by filing and by every change of state, so the insights read a few hundred
    rows instead of grouping a million requests.
    """

    __tablename__ = "insight_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reason: Mapped[Reason] = mapped_column(enum_column(Reason), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    review: Mapped[bool] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class InsightDuration(Base):
    """How long requests filed on a day took to each milestone, as a histogram of time buckets."""

    __tablename__ = "insight_duration"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class InsightSignalDay(Base):
    """Fraud signals raised by the requests filed on a day."""

    __tablename__ = "insight_signal_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    signal: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class InsightOrderDay(Base):
    """Orders bought per day, product and plan, and how many of them were refunded."""

    __tablename__ = "insight_order_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    product: Mapped[str] = mapped_column(String(200), primary_key=True)
    plan: Mapped[Plan] = mapped_column(enum_column(Plan), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)


class InsightRefundDay(Base):
    """Money refunded per day and currency."""

    __tablename__ = "insight_refund_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
