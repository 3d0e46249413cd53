"""Second factors for staff: authenticator apps (TOTP), recovery codes, passkeys and security keys.

No Flask here: the web layer passes the time, the relying party (the portal's public host and
origin) and keeps the WebAuthn challenge in the session between the two steps.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal.accounts.models import RecoveryCode, StaffUser, TotpFactor, WebAuthnCredential
from portal.core.tokens import hash_token
from portal.core.vocabulary import StaffRole

MFA_SETTINGS = ("required", "admins", "optional")
RECOVERY_CODES = 10
ISSUER = "Refund portal"


def mfa_required(user: StaffUser, setting: str) -> bool:
    """Whether ``user`` must have a second factor under ``PORTAL_STAFF_MFA``."""
    return setting == "required" or (setting == "admins" and user.role is StaffRole.ADMIN)


def confirmed_totp(session: Session, user: StaffUser) -> TotpFactor | None:
    return session.scalar(
        select(TotpFactor).where(TotpFactor.staff_user_id == user.id, TotpFactor.confirmed_at.is_not(None))
    )


def credentials(session: Session, user: StaffUser) -> list[WebAuthnCredential]:
    return list(
        session.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.staff_user_id == user.id)
            .order_by(WebAuthnCredential.id)
        )
    )


def has_second_factor(session: Session, user: StaffUser) -> bool:
    return confirmed_totp(session, user) is not None or bool(credentials(session, user))


# -- TOTP -----------------------------------------------------------------------------------------


def begin_totp(session: Session, user: StaffUser) -> tuple[str, str]:
    """A new secret waiting for its first code; returns it and the otpauth:// URI for the app."""
    session.execute(delete(TotpFactor).where(TotpFactor.staff_user_id == user.id, TotpFactor.confirmed_at.is_(None)))
    secret = pyotp.random_base32()
    session.add(TotpFactor(staff_user_id=user.id, secret=secret))
    return secret, pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _accept(factor: TotpFactor, code: str, now: datetime) -> bool:
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return False
    totp = pyotp.TOTP(factor.secret)
    # The code of this step or the one before (a code typed as the step turns); never one used already.
    for step_back in (0, 1):
        at = now.timestamp() - step_back * totp.interval
        step = totp.timecode(datetime.fromtimestamp(at, now.tzinfo))
        if step > factor.last_step and secrets.compare_digest(totp.at(at), code):
            factor.last_step = step
            return True
    return False


def confirm_totp(session: Session, user: StaffUser, code: str, *, now: datetime) -> bool:
    factor = session.scalar(select(TotpFactor).where(TotpFactor.staff_user_id == user.id))
    if factor is None or factor.confirmed_at is not None or not _accept(factor, code, now):
        return False
    factor.confirmed_at = now
    return True


def check_totp(session: Session, user: StaffUser, code: str, *, now: datetime) -> bool:
    factor = confirmed_totp(session, user)
    return factor is not None and _accept(factor, code, now)


def remove_totp(session: Session, user: StaffUser) -> None:
    session.execute(delete(TotpFactor).where(TotpFactor.staff_user_id == user.id))


# -- recovery codes -------------------------------------------------------------------------------


def _normalize_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_recovery_codes(session: Session, user: StaffUser) -> list[str]:
    """Replace the person's recovery codes with fresh ones, shown once; only hashes are kept."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)  # 10 hex digits, written as two groups of five
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(staff_user_id=user.id, code_hash=hash_token(raw)))
    return codes


def use_recovery_code(session: Session, user: StaffUser, code: str, *, now: datetime) -> bool:
    found = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.staff_user_id == user.id,
            RecoveryCode.code_hash == hash_token(_normalize_code(code)),
            RecoveryCode.used_at.is_(None),
        )
    )
    if found is None:
        return False
    found.used_at = now
    return True


def recovery_codes_left(session: Session, user: StaffUser) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None))
        ).all()
    )


# -- WebAuthn -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host name, such as refunds.example.com
    origin: str  # scheme, host and port the browser shows: https://refunds.example.com
    name: str


class PasskeyError(ValueError):
    pass


def registration_options(session: Session, user: StaffUser, rp: RelyingParty) -> tuple[str, bytes]:
    """The options for navigator.credentials.create() as JSON, and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=f"staff-{user.id}".encode(),
        user_display_name=user.name or user.email,
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c.credential_id) for c in credentials(session, user)],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
    )
    return options_to_json(options), options.challenge


def register_credential(
    session: Session, user: StaffUser, response: str, challenge: bytes, rp: RelyingParty, *, name: str, now: datetime
) -> WebAuthnCredential:
    try:
        verified = verify_registration_response(
            credential=response, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as error:
        raise PasskeyError(str(error)) from None
    credential = WebAuthnCredential(
        staff_user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=(name or "").strip()[:100],
        created_at=now,
    )
    session.add(credential)
    return credential


def authentication_options(session: Session, user: StaffUser, rp: RelyingParty) -> tuple[str, bytes]:
    options = generate_authentication_options(
        rp_id=rp.id,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c.credential_id) for c in credentials(session, user)],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), options.challenge


def check_credential(
    session: Session, user: StaffUser, response: str, challenge: bytes, rp: RelyingParty, *, now: datetime
) -> bool:
    try:
        raw_id = base64url_to_bytes(json.loads(response)["rawId"])
    except (ValueError, KeyError, TypeError):
        return False
    credential = session.scalar(
        select(WebAuthnCredential).where(
            WebAuthnCredential.staff_user_id == user.id, WebAuthnCredential.credential_id == raw_id
        )
    )
    if credential is None:
        return False
    try:
        verified = verify_authentication_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=credential.public_key,
            credential_current_sign_count=credential.sign_count,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        return False
    credential.sign_count = verified.new_sign_count
    credential.last_used_at = now
    return True


def remove_credential(session: Session, user: StaffUser, credential_id: int) -> bool:
    result = session.execute(
        delete(WebAuthnCredential).where(
            WebAuthnCredential.id == credential_id, WebAuthnCredential.staff_user_id == user.id
        )
    )
    assert isinstance(result, CursorResult)  # a DELETE's result; typed as a plain Result
    return result.rowcount > 0
