"""Staff passwords: argon2id with the library's current parameters, upgraded on login."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from portal.core.markers import N_

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


# -- new passwords --------------------------------------------------------------------------------

MIN_LENGTH = 12
TOO_SHORT = N_("Use at least 12 characters.")
BREACHED = N_("This password is on lists of common or breached passwords; choose another.")
GUESSABLE = N_("This password is too easy to guess; a few unrelated words together make a strong one.")


def password_problem(password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why a new password is refused (a message marked for translation), or None when it will do.

    zxcvbn ships its frequency lists, the leaked-password list among them, and works offline.
    """
    if len(password) < MIN_LENGTH:
        return TOO_SHORT
    # zxcvbn's own advice: look at no more than the first 100 characters (its matching is quadratic).
    result = zxcvbn(password[:100], user_inputs=[i for i in user_inputs if i])
    for match in result["sequence"]:
        if match.get("dictionary_name") == "passwords" and len(match["token"]) * 2 >= len(password):
            return BREACHED
    if result["score"] < 3:
        return GUESSABLE
    return None
