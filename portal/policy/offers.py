"""Which of the policy's alternatives to a refund still make sense for an order."""

from __future__ import annotations

from datetime import datetime

from portal.policy.engine import OrderLike
from portal.policy.loading import Policy
from portal.policy.schema import Offer

# Offers that keep or change a running plan: more days on it, or a discount to move up from it.
_RUNNING_PLAN_ONLY = frozenset({"extended_trial", "upgrade_discount"})


def offers_that_fit(policy: Policy, order: OrderLike, as_of: datetime) -> list[Offer]:
    """The policy's offers for the order's plan, less those that assume a plan still running.

    A monthly plan whose period ended weeks ago has nothing to keep ("30 extra days") or to
    upgrade; offering it would promise something the customer no longer has.
    """
    running = order.period_end is not None and as_of.date() < order.period_end
    return [o for o in policy.offers_for(order.plan) if running or o.kind not in _RUNNING_PLAN_ONLY]
