"""Feedback from refunded customers: one answer per refund request, through a signed link. No Flask."""

from __future__ import annotations

from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.core.vocabulary import RequestState
from portal.refunds.models import Feedback, RefundRequest

LINK_LIFETIME = timedelta(days=30)
COME_BACK = {"yes": N_("Yes"), "maybe": N_("Maybe"), "no": N_("No")}


def feedback_serializer(secret: str) -> URLSafeTimedSerializer:
    """Signs feedback links with the time they were made, so they can expire."""
    return URLSafeTimedSerializer(secret, salt="feedback")


class LinkExpired(Exception):
    """The link was ours but is over 30 days old; ``request`` says whose it was (for the language)."""

    def __init__(self, request: RefundRequest | None):
        super().__init__("feedback link expired")
        self.request = request


class AlreadyAnswered(Exception):
    pass


def request_for_token(session: Session, secret: str, token: str, *, now: datetime) -> RefundRequest | None:
    """The refunded request a feedback link names; None for a forged link, LinkExpired after 30 days."""
    serializer = feedback_serializer(secret)
    try:
        reference = serializer.loads(token, max_age=int(LINK_LIFETIME.total_seconds()))
    except SignatureExpired as expired:
        # The signature is ours, only old: the reference inside is trustworthy.
        assert expired.payload is not None  # set whenever the signature itself was good
        reference = serializer.load_payload(expired.payload)
        raise LinkExpired(session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))) from None
    except BadSignature:
        return None
    request = session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    if request is None or request.state is not RequestState.REFUNDED:
        return None
    return request


def existing_feedback(session: Session, request: RefundRequest) -> Feedback | None:
    return session.scalar(select(Feedback).where(Feedback.refund_request_id == request.id))


def leave_feedback(
    session: Session, request: RefundRequest, *, rating: int, comment: str, come_back: str, now: datetime
) -> Feedback:
    if existing_feedback(session, request) is not None:
        raise AlreadyAnswered()
    feedback = Feedback(
        refund_request_id=request.id,
        rating=rating,
        comment=comment.strip(),
        come_back=come_back,
        locale=request.locale,
        created_at=now,
    )
    session.add(feedback)
    try:
        session.flush()
    except IntegrityError:  # a double click raced the check above; the first answer stands
        session.rollback()  # a failed flush leaves the transaction unusable
        raise AlreadyAnswered() from None
    return feedback
