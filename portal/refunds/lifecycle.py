"""The life of a refund request as signals that other features subscribe to.

A change is written once, in ``portal.refunds.states`` (a new request's first state, every
transition) or ``portal.refunds.payouts`` (a refund that succeeded); what follows from it
(the queue's counters, the insights' rollups, outgoing webhooks) subscribes here instead of
being wired into the change. Subscribers run in the caller's transaction, so a change that
rolls back leaves nothing behind. Blinker is the signal library Flask itself uses; nothing
here imports Flask.

Every signal is sent with the SQLAlchemy session as its sender, and keyword arguments:

- ``state_changed``: ``request``, ``before`` (None when the request was just opened), ``after``,
  ``event`` (the status event appended), and for a new request ``signals`` (the fraud signals it
  raised when filed).
- ``milestone_reached``: ``request``, ``measure`` (``acknowledge``, ``first_action`` or
  ``resolution``) and ``at``.
- ``refund_settled``: ``refund`` and ``first_for_order`` (the order's first successful refund).
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

state_changed = _signals.signal("state-changed")
milestone_reached = _signals.signal("milestone-reached")
refund_settled = _signals.signal("refund-settled")
