"""Absolute links for emails, from the public base URL and the secret that signs tracking links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.core.tokens import derived_token
from portal.refunds.feedback import feedback_serializer


@dataclass(frozen=True)
class Links:
    """Absolute links for emails, from the public base URL and the secret that signs tracking links."""

    base_url: str
    secret: str
    # The domain whose mail reaches ``portal mail receive``/``serve``; empty: no reply addresses.
    inbound_domain: str = ""

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

    # -- reply addresses: reply+<reference>-<mac>@inbound_domain ------------------------------------

    def reply_token(self, reference: str) -> str:
        """``rf-abcd2345-<16 base32 characters>``: lower case, because some mail systems lower-case the
        local part; the MAC (80 bits of HMAC-SHA256) makes it unguessable and unforgeable."""
        mac = hmac.new(self.secret.encode("utf-8"), f"reply:{reference.upper()}".encode(), hashlib.sha256).digest()
        return f"{reference.lower()}-{base64.b32encode(mac[:10]).decode('ascii').lower()}"

    def reply_address(self, reference: str) -> str | None:
        if not self.inbound_domain:
            return None
        return f"reply+{self.reply_token(reference)}@{self.inbound_domain}"

    def reference_for_reply_token(self, token: str) -> str | None:
        """The reference a reply token was made for, or None if it is malformed or forged."""
        match = REPLY_TOKEN_RE.fullmatch(token.strip().lower())
        if match is None:
            return None
        reference = match.group(1).upper()
        return reference if hmac.compare_digest(self.reply_token(reference), token.strip().lower()) else None


REPLY_TOKEN_RE = re.compile(r"(rf-[0-9a-z]{8})-([a-z2-7]{16})")
