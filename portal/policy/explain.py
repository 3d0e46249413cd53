"""Sentences that explain a decision, marked for translation; the web layer fills and translates them.

Parameters stay raw (Money, datetime, int) so each reader gets them in their own locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from portal.core.markers import N_, Nn_, Plural
from portal.core.money import Money
from portal.policy.engine import Basis, Decision, Outcome, closes_at, daily_decrease

_SENTENCES: dict[Basis, str | Plural] = {
    Basis.WITHIN_FULL_WINDOW: N_(
        "This order is within %(days)s days of purchase, so it can be refunded in full: "
        "%(amount)s. This window ends on %(window_end)s."
    ),
    Basis.PRORATED: Nn_(
        "This order is past its %(full_days)s-day window for a full refund but within "
        "%(until_days)s days of purchase: we refund the %(unused)s unused day of %(period)s, "
        "%(amount)s.",
        "This order is past its %(full_days)s-day window for a full refund but within "
        "%(until_days)s days of purchase: we refund the %(unused)s unused days of %(period)s, "
        "%(amount)s.",
        "unused",
    ),
    Basis.AFTER_WINDOW: N_(
        "The %(days)s-day refund window for this order ended on %(window_end)s, so our policy does not allow a refund."
    ),
    Basis.CHARGED_BACK: N_(
        "This order was charged back through your bank or card issuer, so it cannot be refunded again here."
    ),
    Basis.FULLY_REFUNDED: N_("This order has already been refunded in full."),
    Basis.REVIEW_ALWAYS: N_(
        "Charges made in error are refunded in full whatever the date, once our staff have "
        "confirmed the error. Your request will be reviewed; up to %(amount)s can be refunded."
    ),
    Basis.REVIEW_OUTSIDE_WINDOW: N_(
        "The refund window has ended, but because you report a technical problem our "
        "support could not resolve, your request will be reviewed; our staff may "
        "refund up to %(amount)s."
    ),
    Basis.NO_RULE: N_("Our policy has no automatic rule for this order; our staff will review your request."),
}
DOCUMENTS = N_("Proof of purchase (an invoice or bank statement) must be attached to the request for this order.")
PARTLY_REFUNDED = N_("%(refunded)s of this order has been refunded already; %(remaining)s remains.")


@dataclass(frozen=True)
class Sentence:
    message: str | Plural  # both forms when a number chooses the wording
    params: dict[str, Money | datetime | int | timedelta]


def explain(decision: Decision) -> list[Sentence]:
    f = decision.facts
    if decision.basis is Basis.AFTER_WINDOW and f.prorated_until is not None:
        params: dict[str, Money | datetime | int | None] = {
            "days": f.prorated_until_days,
            "window_end": f.prorated_until,
        }
    else:
        params = {
            "days": f.window_days,
            "window_end": f.window_end,
            "amount": decision.amount,
            "full_days": f.window_days,
            "until_days": f.prorated_until_days,
            "unused": f.unused_days,
            "period": f.period_days,
        }
    sentences = [Sentence(_SENTENCES[decision.basis], {k: v for k, v in params.items() if v is not None})]
    if f.refunded_before.minor and decision.amount.minor:
        sentences.append(Sentence(PARTLY_REFUNDED, {"refunded": f.refunded_before, "remaining": f.remaining}))
    if decision.documents_required:
        sentences.append(Sentence(DOCUMENTS, {}))
    return sentences


# The order page's headline and its verdict per reason: short, with the amount and the time left.
# ``end`` is the moment the window closes (written with the reader's zone), ``left`` how long until then.
HEADLINE_FULL = N_("Full refund of %(amount)s until %(end)s")
HEADLINE_FULL_SOON = N_("Full refund of %(amount)s — closes in %(left)s")
HEADLINE_PRORATED = N_("Refund of %(amount)s today — it falls by about %(daily)s each day")
HEADLINE_AFTER_WINDOW = N_("No refund for a change of mind: the %(days)s-day window ended on %(end)s")
HEADLINE_REVIEW = N_("Our staff review refunds for this order: up to %(amount)s")
HEADLINE_CLOSED = N_("This order cannot be refunded again")
PRORATED_CLOSES = N_("Prorated refunds for this order end on %(end)s.")
PRORATED_CLOSES_SOON = N_("Prorated refunds for this order end in %(left)s, on %(end)s.")

_BY_REASON: dict[Basis, str] = {
    Basis.WITHIN_FULL_WINDOW: N_("a full refund of %(amount)s until %(end)s."),
    Basis.PRORATED: N_("%(amount)s today, falling by about %(daily)s each day until %(end)s."),
    Basis.AFTER_WINDOW: N_("the %(days)s-day window ended on %(end)s, so the policy grants no refund."),
    Basis.REVIEW_ALWAYS: N_(
        "we review those whatever the date, and refund up to %(amount)s once our staff have confirmed the error."
    ),
    Basis.REVIEW_OUTSIDE_WINDOW: N_(
        "we review those even after the window has ended; our staff may refund up to %(amount)s."
    ),
    Basis.NO_RULE: N_("our staff review these; they may refund up to %(amount)s."),
}
# Days a window must be this close to its end for the page to count down instead of naming the date.
COUNTDOWN_DAYS = 7


def _window(decision: Decision) -> tuple[int | None, datetime | None]:
    f = decision.facts
    if decision.outcome is Outcome.PRORATED or (decision.basis is Basis.AFTER_WINDOW and f.prorated_until):
        return f.prorated_until_days, f.prorated_until
    return f.window_days, f.window_end


def _params(decision: Decision) -> dict[str, Money | datetime | int | timedelta]:
    days, end = _window(decision)
    daily = daily_decrease(decision)
    params: dict[str, Money | datetime | int | timedelta | None] = {
        "amount": decision.amount if decision.amount.minor else decision.facts.remaining,
        "days": days,
        "end": end,
        # To the minute: the words are the same ("4 days") and pages can reuse them.
        "left": timedelta(minutes=(end - decision.as_of) // timedelta(minutes=1))
        if end is not None and end > decision.as_of
        else None,
        "daily": daily,
    }
    return {k: v for k, v in params.items() if v is not None}


def _soon(decision: Decision) -> bool:
    end = closes_at(decision)
    return end is not None and end - decision.as_of < timedelta(days=COUNTDOWN_DAYS)


def headline(decision: Decision) -> list[Sentence]:
    """The verdict in one line (and, for a prorated refund, when it ends)."""
    params = _params(decision)
    if decision.outcome is Outcome.FULL:
        return [Sentence(HEADLINE_FULL_SOON if _soon(decision) else HEADLINE_FULL, params)]
    if decision.outcome is Outcome.PRORATED:
        closes = PRORATED_CLOSES_SOON if _soon(decision) else PRORATED_CLOSES
        return [Sentence(HEADLINE_PRORATED, params), Sentence(closes, params)]
    if decision.basis is Basis.AFTER_WINDOW:
        return [Sentence(HEADLINE_AFTER_WINDOW, params)]
    if decision.outcome is Outcome.REVIEW:
        return [Sentence(HEADLINE_REVIEW, params)]
    return [Sentence(HEADLINE_CLOSED, {})]


def by_reason(decision: Decision) -> Sentence | None:
    """What the policy does for a group of reasons, to follow their names ("No longer needed: …")."""
    message = _BY_REASON.get(decision.basis)
    return Sentence(message, _params(decision)) if message else None


def details(decision: Decision) -> list[Sentence]:
    """The explanation under the headline, without repeating it: how a prorated amount is counted,
    what was refunded before, proof of purchase (said once, here)."""
    # The headline already says what a full window, a closed window or a review gives.
    said = decision.basis in (Basis.WITHIN_FULL_WINDOW, Basis.AFTER_WINDOW)
    return [s for s in explain(decision) if not (said and s.message is _SENTENCES[decision.basis])]
