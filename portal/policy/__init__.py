"""The refund policy as data and the engine that applies it. Nothing in this package imports Flask."""

from portal.policy.engine import Basis, Decision, Outcome, ReasonVerdict, evaluate, verdicts_by_reason
from portal.policy.loading import DEFAULT_POLICY, Policy, PolicyError, load_policy, parse_policy

__all__ = [
    "DEFAULT_POLICY",
    "Basis",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "ReasonVerdict",
    "evaluate",
    "load_policy",
    "parse_policy",
    "verdicts_by_reason",
]
