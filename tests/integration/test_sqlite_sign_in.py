"""The embedded SQLite default signs in with GitHub, uses a token and deletes the account too."""

from flask_migrate import upgrade
from sqlalchemy import select

from app import create_app
from tests.conftest import build_config, csrf_token_for
from tests.integration import github_flow


def test_sign_in_token_and_deletion_on_sqlite(tmp_path, provider_settings, github_emulator):
    try:
        run_journey(tmp_path, provider_settings, github_emulator)
    finally:
        github_emulator.control.reset()  # this test uses no `app`, so the harness does not reset it


def run_journey(tmp_path, provider_settings, github_emulator):
    application = create_app(build_config(str(tmp_path), **provider_settings))
    with application.app_context():
        upgrade()
    client = application.test_client()

    assert github_flow.sign_in(client, github_emulator.url).status_code == 302
    assert client.get("/api/me").json["credits"]["balance"] == 5000
    html = client.post("/account/tokens", data={"name": "ci", "csrf_token": csrf_token_for(client)}).get_data(
        as_text=True
    )
    token = html.split('<code id="new-token">', 1)[1].split("<", 1)[0]
    assert application.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    deleted = client.post("/account/delete", data={"confirm_login": "octocat", "csrf_token": csrf_token_for(client)})
    assert deleted.status_code == 302
    with application.app_context():
        from app.extensions import db
        from app.models import ApiToken, GithubAccount, LedgerEntry, User

        assert db.session.execute(select(User)).first() is None
        assert db.session.execute(select(ApiToken)).first() is None
        assert db.session.execute(select(GithubAccount)).first() is None
        assert [(e.user_id, e.delta) for e in db.session.execute(select(LedgerEntry)).scalars()] == [(None, 5000)]
