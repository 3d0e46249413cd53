"""Absolute links for emails, from the public base URL and the secret that signs tracking links."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.core.tokens import derived_token
from portal.refunds.feedback import feedback_serializer


@dataclass(frozen=True)
class Links:
    """Absolute links for emails, from the public base URL and the secret that signs tracking links."""

    base_url: str
    secret: str

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).hostname or "refunds.invalid"

    def tracking_token(self, reference: str) -> str:
        return derived_token(self.secret, "track", reference)

    def tracking(self, reference: str) -> str:
        return f"{self.base_url}/track/{self.tracking_token(reference)}"

    def feedback_token(self, reference: str) -> str:
        # Signed with the time it was made: the feedback page refuses it after 30 days.
        return feedback_serializer(self.secret).dumps(reference)

    def feedback(self, reference: str) -> str:
        return f"{self.base_url}/feedback/{self.feedback_token(reference)}"

    def policy_clause(self, clause_id: str) -> str:
        return f"{self.base_url}/policy#{clause_id}"
