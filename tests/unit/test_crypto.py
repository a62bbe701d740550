import base64
import os

import pytest

from app.crypto import (
    DecryptionError,
    EncryptionKeyError,
    Keyring,
    decrypt_secret,
    encrypt_secret,
    key_id,
    needs_rotation,
    reseal_secret,
)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_settings(new_key())


def test_round_trip(keyring):
    sealed = encrypt_secret(keyring, "gho_secret token ✓", purpose="github_token", owner=7)
    assert "gho_secret" not in sealed
    assert decrypt_secret(keyring, sealed, purpose="github_token", owner=7) == "gho_secret token ✓"


def test_each_value_gets_a_fresh_nonce(keyring):
    first = encrypt_secret(keyring, "same", purpose="p", owner=1)
    second = encrypt_secret(keyring, "same", purpose="p", owner=1)
    assert first != second


def test_stored_value_names_its_key(keyring):
    sealed = encrypt_secret(keyring, "x", purpose="p", owner=1)
    version, kid, _ = sealed.split(".", 2)
    assert version == "v1" and kid == key_id(keyring.current)


def test_wrong_key_is_refused(keyring):
    sealed = encrypt_secret(keyring, "x", purpose="p", owner=1)
    other = Keyring.from_settings(new_key())
    with pytest.raises(DecryptionError, match="neither ENCRYPTION_KEY"):
        decrypt_secret(other, sealed, purpose="p", owner=1)


def test_tampering_is_detected(keyring):
    sealed = encrypt_secret(keyring, "a secret value", purpose="p", owner=1)
    prefix, body = sealed.rsplit(".", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(DecryptionError, match="integrity"):
        decrypt_secret(keyring, f"{prefix}.{flipped}", purpose="p", owner=1)


@pytest.mark.parametrize("broken", ["", "plain-text-token", "v1.abcd", "v2.abcd.xyz", "v1.deadbeef.!!!!"])
def test_malformed_values_are_refused(keyring, broken):
    with pytest.raises(DecryptionError):
        decrypt_secret(keyring, broken, purpose="p", owner=1)


def test_truncated_value_is_refused(keyring):
    sealed = encrypt_secret(keyring, "x", purpose="p", owner=1)
    with pytest.raises(DecryptionError):
        decrypt_secret(keyring, sealed[:20], purpose="p", owner=1)


def test_ciphertext_is_bound_to_owner_and_purpose(keyring):
    sealed = encrypt_secret(keyring, "token", purpose="github_token", owner=1)
    with pytest.raises(DecryptionError):
        decrypt_secret(keyring, sealed, purpose="github_token", owner=2)
    with pytest.raises(DecryptionError):
        decrypt_secret(keyring, sealed, purpose="stripe_key", owner=1)


def test_rotation_through_old_keys():
    old, new = new_key(), new_key()
    before = Keyring.from_settings(old)
    sealed = encrypt_secret(before, "token", purpose="p", owner=3)

    during = Keyring.from_settings(new, [old])
    assert needs_rotation(during, sealed)
    assert decrypt_secret(during, sealed, purpose="p", owner=3) == "token"
    resealed = reseal_secret(during, sealed, purpose="p", owner=3)
    assert not needs_rotation(during, resealed)
    assert reseal_secret(during, resealed, purpose="p", owner=3) == resealed

    after = Keyring.from_settings(new)
    assert decrypt_secret(after, resealed, purpose="p", owner=3) == "token"
    with pytest.raises(DecryptionError):
        decrypt_secret(after, sealed, purpose="p", owner=3)


@pytest.mark.parametrize("bad", ["not base64 at all!", base64.b64encode(b"short").decode()])
def test_bad_keys_are_explained(bad):
    with pytest.raises(EncryptionKeyError):
        Keyring.from_settings(bad)
