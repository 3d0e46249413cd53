"""A document a customer (or staff) attached to a refund request."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.vocabulary import Actor

if TYPE_CHECKING:
    from portal.refunds.models import InformationRequest, RefundRequest


class Document(Base):
    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    original_name: Mapped[str] = mapped_column(String(255))
    # A random name, its key in the file storage; never derived from what the customer sent.
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_by: Mapped[Actor] = mapped_column(enum_column(Actor), default=Actor.CUSTOMER)
    information_request_id: Mapped[int | None] = mapped_column(ForeignKey("information_request.id"))
    # The checklist item (e.g. "proof_of_purchase") this document answers, if any.
    checklist_item: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    refund_request: Mapped[RefundRequest] = relationship(back_populates="documents")
    information_request: Mapped[InformationRequest | None] = relationship(back_populates="documents")
