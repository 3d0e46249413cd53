"""Sentences that explain a decision, marked for translation; the web layer fills and translates them.

Parameters stay raw (Money, datetime, int) so each reader gets them in their own locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.core.markers import N_, Nn_, Plural
from portal.core.money import Money
from portal.policy.engine import Basis, Decision

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
    params: dict[str, Money | datetime | int]


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
