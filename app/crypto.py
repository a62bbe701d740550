"""Encryption of stored provider secrets (GitHub tokens and the like) with AES-256-GCM.

A stored value reads `v1.<key id>.<base64url(nonce || ciphertext || tag)>`:
- a random 96-bit nonce per value, never reused under a key;
- the key id (first 8 hex digits of SHA-256 of the key) names which key sealed it, so values sealed
  under an older key still open while `ENCRYPTION_OLD_KEYS` lists it, and `flask keys rotate` can find
  the values that need re-sealing;
- associated data `purpose:owner` binds the ciphertext to what it is and whose it is: a value copied
  into another user's row, or into another column, does not open.
A wrong key, a tampered value or a foreign one raises `DecryptionError`; garbage never comes back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32


class EncryptionKeyError(ValueError):
    """A configured key is not base64 of 32 bytes."""


class DecryptionError(ValueError):
    """A stored secret cannot be opened with any configured key for this owner and purpose."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def decode_key(encoded: str, *, setting: str = "ENCRYPTION_KEY") -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionKeyError(f"{setting} is not valid base64.") from exc
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(f"{setting} must decode to 32 bytes, not {len(key)}.")
    return key


@dataclass(frozen=True)
class Keyring:
    """The current key, which seals, and older keys, which still open during a rotation."""

    current: bytes
    older: tuple[bytes, ...] = ()

    @classmethod
    def from_settings(cls, current: str, older: list[str] | tuple[str, ...] = ()) -> Keyring:
        return cls(
            current=decode_key(current),
            older=tuple(decode_key(k, setting="ENCRYPTION_OLD_KEYS") for k in older),
        )

    def find(self, wanted_id: str) -> bytes | None:
        for key in (self.current, *self.older):
            if key_id(key) == wanted_id:
                return key
        return None


def _associated_data(purpose: str, owner: int | str) -> bytes:
    return f"sorya:{purpose}:{owner}".encode()


def encrypt_secret(keyring: Keyring, plaintext: str, *, purpose: str, owner: int | str) -> str:
    """Seal `plaintext` under the current key, bound to `purpose` and `owner`."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.current).encrypt(nonce, plaintext.encode(), _associated_data(purpose, owner))
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{FORMAT_VERSION}.{key_id(keyring.current)}.{body}"


def decrypt_secret(keyring: Keyring, stored: str, *, purpose: str, owner: int | str) -> str:
    """Open a value from `encrypt_secret`; raise `DecryptionError` when it cannot be trusted."""
    version, _, rest = stored.partition(".")
    wanted_id, _, body = rest.partition(".")
    if version != FORMAT_VERSION or not wanted_id or not body:
        raise DecryptionError("The stored secret is not in a format Sorya wrote.")
    key = keyring.find(wanted_id)
    if key is None:
        raise DecryptionError(
            f"The stored secret was sealed with key {wanted_id}, which is neither ENCRYPTION_KEY "
            "nor listed in ENCRYPTION_OLD_KEYS."
        )
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("The stored secret is damaged (not base64).") from exc
    if len(raw) < NONCE_BYTES + 16:
        raise DecryptionError("The stored secret is damaged (too short).")
    try:
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(purpose, owner))
    except InvalidTag as exc:
        raise DecryptionError(
            "The stored secret failed its integrity check: it was altered, or belongs to another "
            "owner or purpose."
        ) from exc
    return plain.decode()


def needs_rotation(keyring: Keyring, stored: str) -> bool:
    """True when `stored` was sealed by a key other than the current one."""
    parts = stored.split(".", 2)
    return len(parts) != 3 or parts[1] != key_id(keyring.current)


def reseal_secret(keyring: Keyring, stored: str, *, purpose: str, owner: int | str) -> str:
    """Re-encrypt under the current key (for `flask keys rotate`); unchanged if already current."""
    if not needs_rotation(keyring, stored):
        return stored
    return encrypt_secret(keyring, decrypt_secret(keyring, stored, purpose=purpose, owner=owner),
                          purpose=purpose, owner=owner)
