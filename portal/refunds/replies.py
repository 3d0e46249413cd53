"""Saved replies: text modules in English, Chinese and Dutch that staff insert into what they write.

Admins and marketing keep them; agents use them. A body may name the declared variables
(``{customer_name}``, ``{amount}`` …) and nothing else: an unknown name is refused when the reply is
saved, so a typo never reaches a customer. Rendering substitutes plain text in one pass (a value
that itself looks like ``{reference}`` stays as it is) and returns plain text; the emails and pages
that show it escape it like anything else a person typed. Each use is recorded for the timeline.
No Flask here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from portal.core import formatting
from portal.core.database import Base, UTCDateTime, utcnow
from portal.core.markers import N_
from portal.core.vocabulary import LOCALES
from portal.refunds.models import RefundRequest

# An information request unanswered this long closes the request (decisions.CLOSE_AFTER); {deadline} says when.
DEADLINE_AFTER = timedelta(days=14)

# The declared variables, each with the sentence the editing page shows for it.
VARIABLES: dict[str, str] = {
    "customer_name": N_("the customer's name"),
    "reference": N_("the request's reference, such as RF-7K3M9Q2X"),
    "order_number": N_("the order number"),
    "product": N_("the product ordered"),
    "amount": N_("the amount requested, in the customer's currency format"),
    "filed_on": N_("the day the request was filed, in the customer's date format"),
    "deadline": N_("the day an unanswered question closes the request (14 days from today)"),
}

# Where a reply was used: the timeline says so in words.
USES: dict[str, str] = {
    "ask": N_("in a question to the customer"),
    "approve": N_("in the approval"),
    "decline": N_("in the decline"),
    "note": N_("in an internal note"),
}

_PLACEHOLDER = re.compile(r"\{([^{}\s]*)\}")


class SavedReply(Base):
    """One text module with its title and a body per language (empty where not yet translated)."""

    __tablename__ = "saved_reply"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body_en: Mapped[str] = mapped_column(Text, default="")
    body_zh: Mapped[str] = mapped_column(Text, default="")
    body_nl: Mapped[str] = mapped_column(Text, default="")
    # Deleting keeps the row (hidden from the lists) so the timelines that name it still can.
    active: Mapped[bool] = mapped_column(default=True)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def body(self, locale: str) -> str:
        return str(getattr(self, f"body_{locale}", "") or "")

    @property
    def missing(self) -> list[str]:
        """The languages without a text yet (the pages warn about each)."""
        return [code for code in LOCALES if not self.body(code).strip()]


class SavedReplyUse(Base):
    """A saved reply was used on a request: which, where, in which language, by whom."""

    __tablename__ = "saved_reply_use"

    id: Mapped[int] = mapped_column(primary_key=True)
    saved_reply_id: Mapped[int] = mapped_column(ForeignKey("saved_reply.id"), index=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    used_in: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(8))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    saved_reply: Mapped[SavedReply] = relationship()


class ReplyError(ValueError):
    """A saved reply cannot be stored as written; ``field`` names the form field to mark."""

    def __init__(self, field: str, message: str, **params: object):
        super().__init__(message)
        self.field = field
        self.message = message
        self.params = params


def unknown_variables(text: str) -> list[str]:
    return [name for name in _PLACEHOLDER.findall(text) if name not in VARIABLES]


def save(
    session: Session,
    reply: SavedReply | None,
    *,
    title: str,
    bodies: dict[str, str],
    staff_user_id: int | None,
    now: datetime,
) -> SavedReply:
    """Create (``reply`` None) or change a saved reply, refusing unknown variables and empty replies."""
    if not title.strip():
        raise ReplyError("title", N_("Give the reply a title."))
    for code in LOCALES:
        unknown = unknown_variables(bodies.get(code, ""))
        if unknown:
            raise ReplyError(
                f"body_{code}",
                N_("Unknown variable {%(name)s}. Use only: %(known)s."),
                name=unknown[0],
                known=", ".join("{" + name + "}" for name in VARIABLES),
            )
    if not any(bodies.get(code, "").strip() for code in LOCALES):
        raise ReplyError("body_en", N_("Write the reply in at least one language."))
    if reply is None:
        reply = SavedReply(created_at=now)
        session.add(reply)
    reply.title = title.strip()[:200]
    for code in LOCALES:
        setattr(reply, f"body_{code}", bodies.get(code, "").strip())
    reply.updated_by_id = staff_user_id
    reply.updated_at = now
    reply.active = True
    session.flush()
    return reply


def delete(session: Session, reply: SavedReply) -> None:
    reply.active = False
    session.flush()


def listed(session: Session) -> list[SavedReply]:
    return list(session.scalars(select(SavedReply).where(SavedReply.active.is_(True)).order_by(SavedReply.title)))


def find(session: Session, reply_id: int | str | None) -> SavedReply | None:
    try:
        wanted = int(reply_id or 0)
    except (TypeError, ValueError):
        return None
    reply = session.get(SavedReply, wanted) if wanted else None
    return reply if reply is not None and reply.active else None


def values(request: RefundRequest, locale: str, now: datetime) -> dict[str, str]:
    """The variables' values for one request, formatted for a reader of ``locale``."""
    order = request.order
    return {
        "customer_name": order.customer.name,
        "reference": request.reference,
        "order_number": order.order_number,
        "product": order.product,
        "amount": formatting.money(request.amount_requested, locale),
        "filed_on": formatting.day(request.created_at.date(), locale, "long"),
        "deadline": formatting.day((now + DEADLINE_AFTER).date(), locale, "long"),
    }


@dataclass(frozen=True)
class Rendered:
    text: str
    # The language of the text: the one asked for, or English (then another) where it is missing.
    locale: str


def render(reply: SavedReply, request: RefundRequest, locale: str, *, now: datetime) -> Rendered:
    used = next(code for code in (locale, "en", *LOCALES) if reply.body(code).strip())
    known = values(request, used, now)
    text = _PLACEHOLDER.sub(lambda m: known.get(m.group(1), m.group(0)), reply.body(used))
    return Rendered(text, used)


def insert(
    session: Session,
    typed: str,
    reply: SavedReply | None,
    request: RefundRequest,
    *,
    used_in: str,
    locale: str,
    staff_user_id: int | None,
    now: datetime,
) -> str:
    """What the agent typed followed by the reply rendered for ``request`` (in ``locale``), the use
    recorded in the caller's transaction; ``typed`` alone when no reply was chosen."""
    if reply is None:
        return typed
    rendered = render(reply, request, locale, now=now)
    session.add(
        SavedReplyUse(
            saved_reply_id=reply.id,
            refund_request_id=request.id,
            used_in=used_in,
            locale=rendered.locale,
            staff_user_id=staff_user_id,
            created_at=now,
        )
    )
    return "\n\n".join(part for part in (typed.strip(), rendered.text) if part)


def uses(session: Session, request: RefundRequest) -> list[SavedReplyUse]:
    return list(
        session.scalars(
            select(SavedReplyUse).where(SavedReplyUse.refund_request_id == request.id).order_by(SavedReplyUse.id)
        )
    )
