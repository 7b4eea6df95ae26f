"""Encryption at rest for the tenants' Zuora secrets.

Fernet tokens under the keys in settings.AQUADASH_ENCRYPTION_KEYS, newest first: new secrets use
the first key, any listed key reads. The keys are independent of SECRET_KEY, so rotating one does
not touch the other. A token that no key opens is an error, never a reason to use the stored
text as it is.
"""

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from aquadash import zuora


class CredentialUnreadable(zuora.ZuoraError):
    """The stored secret cannot be decrypted: the keys changed or the stored text was altered."""

    http_status = 503
    summary = "stored credentials unreadable"
    title = "Zuora credentials problem"
    next_step = "admin"


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


class EncryptedCache:
    """A cache whose values are stored encrypted, so bearer tokens never sit readable in Redis.

    Wraps the part of Django's cache API the Zuora client uses (zuora.TokenCache).
    """

    def __init__(self, cache: "zuora.TokenCache") -> None:
        self.cache = cache

    @sensitive_variables()
    def get(self, key: str, default: Any = None) -> Any:
        stored = self.cache.get(key)
        if stored is None:
            return default
        try:
            return json.loads(_fernet().decrypt(stored.encode()))
        except (InvalidToken, AttributeError, ValueError):
            return default  # written under a retired key, or not by us: as good as absent

    @sensitive_variables()
    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        self.cache.set(key, self._seal(value), timeout)

    @sensitive_variables()
    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return self.cache.add(key, self._seal(value), timeout)

    def delete(self, key: str) -> Any:
        return self.cache.delete(key)

    @staticmethod
    @sensitive_variables()
    def _seal(value: Any) -> str:
        return _fernet().encrypt(json.dumps(value).encode()).decode()
