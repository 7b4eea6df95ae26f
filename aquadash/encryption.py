"""Encryption at rest for the tenants' Zuora secrets.

Fernet tokens under the keys in settings.AQUADASH_ENCRYPTION_KEYS, newest first: new secrets use
the first key, any listed key reads. The keys are independent of SECRET_KEY, so rotating one does
not touch the other. A token that no key opens is an error, never a reason to use the stored
text as it is.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from aquadash import zuora


class CredentialUnreadable(zuora.ZuoraError):
    """The stored secret cannot be decrypted: the keys changed or the stored text was altered."""

    http_status = 503


def _fernet() -> MultiFernet:
    # Built per call (it is cheap) so changed settings, as in tests, take effect at once.
    return MultiFernet([Fernet(key) for key in settings.AQUADASH_ENCRYPTION_KEYS])


@sensitive_variables()
def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


@sensitive_variables()
def decrypt(token: str, *, tenant: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeError):
        raise unreadable(tenant) from None


def rotate(token: str, *, tenant: str) -> str:
    """The same secret encrypted under the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise unreadable(tenant) from None


def unreadable(tenant: str) -> CredentialUnreadable:
    return CredentialUnreadable(
        f"The stored credentials for tenant {tenant} cannot be read (the encryption key "
        "changed?). Ask an admin to enter them again."
    )
