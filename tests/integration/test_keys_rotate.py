"""`flask keys rotate`: every stored secret re-sealed under the current key, resumable, with counts."""

from __future__ import annotations

import base64

import pytest

from app import create_app
from app.crypto import DecryptionError, Keyring, decrypt_secret, encrypt_secret, key_id
from app.models import GithubAccount
from app.services import keys
from tests.conftest import build_config

OLD_KEY = base64.b64encode(b"o" * 32).decode()
NEW_KEY = base64.b64encode(b"n" * 32).decode()
LOST_KEY = base64.b64encode(b"l" * 32).decode()


@pytest.fixture
def rotated_app(app, app_config, tmp_path):
    """The app after an operator moved the old key to ENCRYPTION_OLD_KEYS and set a new one."""
    return create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL,
                                   ENCRYPTION_KEY=NEW_KEY, ENCRYPTION_OLD_KEYS=[OLD_KEY]))


def link_github(app, user, sealed_with: str, github_user_id: int) -> int:
    from app.extensions import db

    sealed = encrypt_secret(Keyring.from_settings(sealed_with), f"gho_token_of_{user.login}",
                            purpose="github_token", owner=user.id)
    with app.app_context():
        account = GithubAccount(user_id=user.id, github_user_id=github_user_id, login=user.login,
                                access_token_encrypted=sealed)
        db.session.add(account)
        db.session.commit()
        return account.id


def stored_tokens(app) -> dict[str, str]:
    from app.extensions import db

    with app.app_context():
        rows = db.session.query(GithubAccount).order_by(GithubAccount.id).all()
        result = {row.login: row.access_token_encrypted for row in rows}
        db.session.remove()
        return result


def test_rotate_reseals_old_values_skips_current_ones_and_reports_failures(rotated_app, make_user):
    users = [make_user(f"dev{n}") for n in range(5)]
    for n, user in enumerate(users[:3]):
        link_github(rotated_app, user, OLD_KEY, 1000 + n)
    link_github(rotated_app, users[3], NEW_KEY, 1003)
    link_github(rotated_app, users[4], LOST_KEY, 1004)
    before = stored_tokens(rotated_app)

    result = rotated_app.test_cli_runner().invoke(args=["keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 1
    assert "examined 5, re-encrypted 3, already current 1, failed 1" in result.output
    assert "ENCRYPTION_OLD_KEYS" in result.output

    after = stored_tokens(rotated_app)
    new_only = Keyring.from_settings(NEW_KEY)
    for user in users[:4]:
        assert after[user.login].split(".")[1] == key_id(new_only.current)
        assert decrypt_secret(new_only, after[user.login], purpose="github_token", owner=user.id) == (
            f"gho_token_of_{user.login}"
        )
    assert after["dev3"] == before["dev3"]  # already current: untouched
    assert after["dev4"] == before["dev4"]  # cannot be opened: left as it was, never blanked
    with pytest.raises(DecryptionError):
        decrypt_secret(new_only, after["dev4"], purpose="github_token", owner=users[4].id)

    again = rotated_app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert "re-encrypted 0, already current 4, failed 1" in again.output


def test_an_interrupted_rotation_resumes_where_it_stopped(rotated_app, make_user):
    from app import runtime
    from app.extensions import db

    users = [make_user(f"resume{n}") for n in range(3)]
    for n, user in enumerate(users):
        link_github(rotated_app, user, OLD_KEY, 2000 + n)

    def crash_after_first_batch(label, report):
        raise KeyboardInterrupt("operator pressed Ctrl+C")

    with rotated_app.app_context(), pytest.raises(KeyboardInterrupt):
        keys.rotate_stored_secrets(db.session, runtime.keyring(), batch_size=1, on_batch=crash_after_first_batch)
    new_id = key_id(Keyring.from_settings(NEW_KEY).current)
    halfway = stored_tokens(rotated_app)
    assert [halfway[u.login].split(".")[1] == new_id for u in users] == [True, False, False]

    result = rotated_app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0
    assert "examined 3, re-encrypted 2, already current 1, failed 0" in result.output


def test_a_value_moved_to_another_user_does_not_open_and_is_not_resealed(rotated_app, make_user):
    victim, thief = make_user("victim"), make_user("thief")
    link_github(rotated_app, victim, OLD_KEY, 3000)
    link_github(rotated_app, thief, OLD_KEY, 3001)
    from app.extensions import db

    with rotated_app.app_context():
        rows = {row.login: row for row in db.session.query(GithubAccount)}
        rows["thief"].access_token_encrypted = rows["victim"].access_token_encrypted
        db.session.commit()
    result = rotated_app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert "re-encrypted 1, already current 0, failed 1" in result.output
