"""``Idempotency-Key`` for API writes: the first answer is kept and a repeat gets it back.

The key is claimed (a row with no answer yet) and committed before the write runs, so two
concurrent requests with one key never both act: the second is told the first is still
running. The answer is stored in the write's own transaction, so the two are committed
together or not at all; a claim left behind by a crashed worker is taken over after a minute.
No Flask here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, CursorResult, ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.database import Base, UTCDateTime, utcnow


class IdempotencyRecord(Base):
    """The first answer to an API write sent with an ``Idempotency-Key``; a repeat gets it back."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("staff_user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    key: Mapped[str] = mapped_column(String(255))
    # What was asked (method, path, body): the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # None while the first request is still running.
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


ABANDONED_AFTER = timedelta(minutes=1)
KEPT_FOR = timedelta(days=1)


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


class InProgress(Exception):
    """The first request with this key has not answered yet."""


class KeyReused(Exception):
    """The key was used before for a different request."""


def claim(session: Session, staff_user_id: int, key: str, print_: str, *, now: datetime) -> IdempotencyRecord | Replay:
    """Either the stored answer to replay, or a fresh claim to answer into with :func:`store`."""
    for _attempt in range(2):
        found = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.staff_user_id == staff_user_id, IdempotencyRecord.key == key
            )
        )
        if found is not None:
            if found.fingerprint != print_:
                raise KeyReused(key)
            if found.status_code is not None:
                return Replay(found.status_code, found.response or {})
            if now - found.created_at < ABANDONED_AFTER:
                raise InProgress(key)
            session.delete(found)  # its request died before answering; this one takes over
            session.flush()
        record = IdempotencyRecord(staff_user_id=staff_user_id, key=key, fingerprint=print_, created_at=now)
        session.add(record)
        try:
            session.commit()
            return record
        except IntegrityError:
            session.rollback()  # a concurrent request claimed it first: look again
    raise InProgress(key)


def store(session: Session, record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    """Keep the answer in the write's own transaction: the caller commits both at once, so a
    worker dying in between leaves neither (and the claim is taken over after a minute)."""
    record = session.merge(record)
    record.status_code = status
    record.response = body
    session.flush()


def release(session: Session, record: IdempotencyRecord) -> None:
    """The write failed unexpectedly: forget the claim so the client can try again."""
    session.rollback()
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
    session.commit()


def prune(session: Session, *, now: datetime) -> int:
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - KEPT_FOR))
    assert isinstance(result, CursorResult)  # a DELETE's result; typed as a plain Result
    return result.rowcount
