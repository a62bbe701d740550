"""The GitHub emulator, driven through github3.py and Authlib, with git hashing checked against git."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import github3
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from sandbox.emulators.github_emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

CALLBACK = "http://localhost:5000/auth/github/callback"
SCOPE = "read:user user:email repo"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


# --- OAuth web flow ------------------------------------------------------------------------------------
def oauth_session(secret: str = DEFAULT_CLIENT_SECRET) -> OAuth2Session:
    return OAuth2Session(DEFAULT_CLIENT_ID, secret, scope=SCOPE, redirect_uri=CALLBACK)


def consent_form(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type=hidden name=(\w+) value="([^"]*)"', page)
    return {name: html.unescape(value) for name, value in fields}


def authorize(github_url: str, session: OAuth2Session, **choice: str) -> tuple[str, str]:
    url, state = session.create_authorization_url(f"{github_url}/login/oauth/authorize")
    page = requests.get(url)
    assert page.status_code == 200
    answer = requests.post(f"{github_url}/login/oauth/authorize", allow_redirects=False,
                           data={**consent_form(page.text), "action": "authorize", "login": "octocat", **choice})
    assert answer.status_code == 302
    return answer.headers["Location"], state


def test_consent_page_shows_app_scopes_and_users(github_url):
    url, _ = oauth_session().create_authorization_url(f"{github_url}/login/oauth/authorize")
    page = requests.get(url).text
    assert "Authorize Sorya (sandbox)" in page and "user:email" in page and "repo" in page
    assert all(login in page for login in ("octocat", "mona", "newbie"))
    assert 'value=authorize' in page and 'value=cancel' in page and "<script" not in page


def test_authlib_flow_issues_a_token_with_the_requested_scopes(github_url):
    session = oauth_session()
    location, state = authorize(github_url, session, login="mona")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert location.startswith(CALLBACK + "?") and query["state"] == [state]
    token = session.fetch_token(f"{github_url}/login/oauth/access_token", authorization_response=location)
    assert token["access_token"].startswith("gho_") and token["token_type"] == "bearer"
    assert token["scope"] == "read:user,user:email,repo"
    me = github3.GitHubEnterprise(github_url, token=token["access_token"]).me()
    assert me.login == "mona" and me.id == 1001


def test_a_code_works_once(github_url):
    session = oauth_session()
    location, _ = authorize(github_url, session)
    session.fetch_token(f"{github_url}/login/oauth/access_token", authorization_response=location)
    with pytest.raises(OAuthError) as caught:
        oauth_session().fetch_token(f"{github_url}/login/oauth/access_token", authorization_response=location)
    assert caught.value.error == "bad_verification_code"


def test_wrong_client_secret_and_redirect_mismatch_are_refused(github_url):
    location, _ = authorize(github_url, oauth_session())
    with pytest.raises(OAuthError) as caught:
        oauth_session("wrong").fetch_token(f"{github_url}/login/oauth/access_token", authorization_response=location)
    assert caught.value.error == "incorrect_client_credentials"
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    answer = requests.post(f"{github_url}/login/oauth/access_token", headers={"Accept": "application/json"}, data={
        "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "code": code,
        "redirect_uri": "http://evil.example/cb"})
    assert answer.status_code == 200 and answer.json()["error"] == "redirect_uri_mismatch"


def test_token_answer_is_form_encoded_unless_json_is_asked(github_url):
    location, _ = authorize(github_url, oauth_session())
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    answer = requests.post(f"{github_url}/login/oauth/access_token", data={
        "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "code": code})
    assert answer.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert urllib.parse.parse_qs(answer.text)["scope"] == ["read:user,user:email,repo"]


def test_cancel_redirects_with_access_denied_and_the_state(github_url):
    url, state = oauth_session().create_authorization_url(f"{github_url}/login/oauth/authorize")
    form = consent_form(requests.get(url).text)
    answer = requests.post(f"{github_url}/login/oauth/authorize", data={**form, "action": "cancel"},
                           allow_redirects=False)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state] and "error_description" in query


def test_typing_a_new_login_creates_that_user(github_url, github_ctl):
    session = oauth_session()
    location, _ = authorize(github_url, session, new_login="fresh-dev")
    token = session.fetch_token(f"{github_url}/login/oauth/access_token", authorization_response=location)
    assert github3.GitHubEnterprise(github_url, token=token["access_token"]).me().login == "fresh-dev"
    assert "fresh-dev" in [u["login"] for u in github_ctl.users()]


# --- users -------------------------------------------------------------------------------------------
def test_emails_need_the_user_email_scope(github_url, github_ctl):
    gh = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("newbie", ["user:email"]))
    (email,) = list(gh.emails())
    assert email.email == "newbie@example.com" and email.primary and not email.verified
    without = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("newbie", ["read:user"]))
    with pytest.raises(github3.exceptions.NotFoundError):
        list(without.emails())


def test_seeded_user_with_custom_emails(github_url, github_ctl):
    github_ctl.create_user("ada", "Ada L", emails=[{"email": "ada@x.example", "primary": True, "verified": True}],
                           user_id=4242)
    gh = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("ada", ["user:email"]))
    assert gh.me().id == 4242 and [e.email for e in gh.emails() if e.verified] == ["ada@x.example"]
    assert gh.user("ada").name == "Ada L"


def test_revoked_token_gets_bad_credentials(gh, gh_token, github_ctl):
    assert gh.me().login == "octocat"
    github_ctl.revoke_token(gh_token)
    with pytest.raises(github3.exceptions.AuthenticationFailed) as caught:
        gh.me()
    assert caught.value.msg == "Bad credentials"


def test_every_api_answer_has_rate_limit_and_scope_headers(github_url, gh_token):
    answer = requests.get(f"{github_url}/api/v3/user", headers={"Authorization": f"token {gh_token}"})
    second = requests.get(f"{github_url}/api/v3/user", headers={"Authorization": f"token {gh_token}"})
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.headers["X-RateLimit-Limit"] == "5000" and answer.headers["X-RateLimit-Resource"] == "core"
    assert int(second.headers["X-RateLimit-Remaining"]) == int(answer.headers["X-RateLimit-Remaining"]) - 1
    assert answer.headers["X-OAuth-Scopes"] == "repo, read:user, user:email, delete_repo"
    assert "X-Accepted-OAuth-Scopes" in answer.headers


# --- repositories ------------------------------------------------------------------------------------
def test_create_repository_shape_and_duplicate_name(gh, github_url):
    repo = gh.create_repository("site", description="My site", private=True)
    assert repo.full_name == "octocat/site" and repo.private and repo.html_url == f"{github_url}/octocat/site"
    assert repo.permissions == {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
    assert repo.default_branch == "main" and repo.owner.login == "octocat"
    with pytest.raises(github3.exceptions.UnprocessableEntity) as caught:
        gh.create_repository("site")
    body = caught.value.response.json()
    assert body["message"] == "Repository creation failed."
    assert body["errors"] == [{"resource": "Repository", "code": "custom", "field": "name",
                               "message": "name already exists on this account"}]


def test_scopes_gate_repository_writes(github_url, github_ctl):
    reader = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("octocat", ["read:user"]))
    with pytest.raises(github3.exceptions.NotFoundError):
        reader.create_repository("nope")
    public = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("octocat", ["public_repo"]))
    assert public.create_repository("open-thing").private is False
    with pytest.raises(github3.exceptions.NotFoundError):
        public.create_repository("secret-thing", private=True)
    other = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("mona", ["repo"]))
    with pytest.raises(github3.exceptions.NotFoundError):
        other.repository("octocat", "open-thing").create_file("x.txt", "m", b"x")


def test_rename_and_delete(gh, github_ctl, github_url):
    repo = gh.create_repository("old-name", auto_init=True)
    assert repo.edit("new-name", description="renamed")
    assert gh.repository("octocat", "new-name").description == "renamed"
    assert github_ctl.repo_files("octocat", "new-name") == {"README.md": "# old-name\n"}
    no_delete = github3.GitHubEnterprise(github_url, token=github_ctl.issue_token("octocat", ["repo"]))
    with pytest.raises(github3.exceptions.ForbiddenError):
        no_delete.repository("octocat", "new-name").delete()
    assert gh.repository("octocat", "new-name").delete()
    with pytest.raises(github3.exceptions.NotFoundError):
        gh.repository("octocat", "new-name")


# --- git data ----------------------------------------------------------------------------------------
def test_git_data_api_is_409_on_an_empty_repository(gh):
    repo = gh.create_repository("empty")
    with pytest.raises(github3.exceptions.Conflict) as caught:
        repo.create_blob("x", "utf-8")
    assert caught.value.msg == "Git Repository is empty."
    with pytest.raises(github3.exceptions.Conflict):
        repo.ref("heads/main")


def test_contents_put_creates_the_first_commit_then_needs_sha(gh, github_ctl, github_url, gh_token):
    repo = gh.create_repository("contents")
    created = repo.create_file("app/main.py", "first", b"print(1)\n")
    assert created["content"].path == "app/main.py" and created["commit"].message == "first"
    assert repo.ref("heads/main").object.sha == created["commit"].sha
    contents = repo.file_contents("app/main.py")
    assert contents.decoded == b"print(1)\n"
    stale = contents.sha
    updated = contents.update("second", b"print(2)\n")
    assert updated["commit"].parents[0]["sha"] == created["commit"].sha
    with pytest.raises(github3.exceptions.UnprocessableEntity):
        repo.create_file("app/main.py", "no sha", b"x")
    stale_put = requests.put(f"{github_url}/api/v3/repos/octocat/contents/contents/app/main.py",
                             headers={"Authorization": f"token {gh_token}"},
                             json={"message": "stale", "content": "eA==", "sha": stale})
    assert stale_put.status_code == 409 and "does not match" in stale_put.json()["message"]
    assert repo.file_contents("app/main.py").delete("remove")
    assert github_ctl.repo_files("octocat", "contents") == {}


def git(*args: str, cwd: str, data: bytes | None = None, env: dict | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, check=True,
                            env={**os.environ, **(env or {})})
    return result.stdout.decode().strip()


@needs_git
def test_push_flow_matches_real_git_hashes(gh, github_ctl, tmp_path):
    repo = gh.create_repository("pushed", auto_init=True)
    head = repo.ref("heads/main")
    parent = head.object.sha
    base = repo.git_commit(parent)
    files = {"app/main.py": "print('hi')\n", "app/templates/index.html": "<h1>x</h1>\n", "README.md": "# new\n"}
    blobs = {path: repo.create_blob(text, "utf-8") for path, text in files.items()}
    git("init", "-q", cwd=str(tmp_path))
    for path, text in files.items():
        assert blobs[path] == git("hash-object", "-w", "--stdin", cwd=str(tmp_path), data=text.encode())
    tree = repo.create_tree([{"path": p, "mode": "100644", "type": "blob", "sha": s} for p, s in blobs.items()],
                            base_tree=base.tree.sha)
    commit = repo.create_commit("Update app", tree.sha, [parent],
                                author={"name": "Sorya", "email": "bot@sorya.dev", "date": "2025-01-02T03:04:05Z"})
    assert head.update(commit.sha)
    assert github_ctl.repo_files("octocat", "pushed") == files

    # The same tree and commit built by git itself have the same ids.
    templates = git("mktree", cwd=str(tmp_path), data=f"100644 blob {blobs['app/templates/index.html']}\tindex.html\n".encode())
    app_tree = git("mktree", cwd=str(tmp_path), data=(f"100644 blob {blobs['app/main.py']}\tmain.py\n"
                                                      f"040000 tree {templates}\ttemplates\n").encode())
    root = git("mktree", cwd=str(tmp_path), data=(f"100644 blob {blobs['README.md']}\tREADME.md\n"
                                                  f"040000 tree {app_tree}\tapp\n").encode())
    assert tree.sha == root
    stamp = "1735787045 +0000"
    expected = git("hash-object", "-t", "commit", "--stdin", "--literally", cwd=str(tmp_path), data=(
        f"tree {root}\nparent {parent}\nauthor Sorya <bot@sorya.dev> {stamp}\n"
        f"committer Sorya <bot@sorya.dev> {stamp}\n\nUpdate app").encode())
    assert commit.sha == expected
    recursive = repo.tree(tree.sha, recursive=True)
    assert {e.path for e in recursive.tree} == {"README.md", "app", "app/main.py", "app/templates",
                                                "app/templates/index.html"}


def test_tree_inline_content_and_deletion(gh, github_ctl):
    repo = gh.create_repository("trees", auto_init=True)
    head = repo.ref("heads/main")
    base = repo.git_commit(head.object.sha).tree.sha
    tree = repo.create_tree([{"path": "a/b/c.py", "mode": "100644", "type": "blob", "content": "c = 1\n"},
                             {"path": "README.md", "mode": "100644", "type": "blob", "sha": None}], base_tree=base)
    commit = repo.create_commit("nested", tree.sha, [head.object.sha])
    head.update(commit.sha)
    assert github_ctl.repo_files("octocat", "trees") == {"a/b/c.py": "c = 1\n"}
    assert [e.path for e in tree.tree] == ["a"] and tree.tree[0].type == "tree"


def test_non_fast_forward_needs_force(gh, github_ctl):
    repo = gh.create_repository("race", auto_init=True)
    head = repo.ref("heads/main")
    base = repo.git_commit(head.object.sha)
    tree = repo.create_tree([{"path": "mine.txt", "mode": "100644", "type": "blob", "content": "mine"}],
                            base_tree=base.tree.sha)
    mine = repo.create_commit("mine", tree.sha, [base.sha])
    theirs = github_ctl.push_as_someone_else("octocat", "race", {"theirs.txt": "theirs"})
    with pytest.raises(github3.exceptions.UnprocessableEntity) as caught:
        head.update(mine.sha)
    assert caught.value.msg == "Update is not a fast forward"
    assert repo.ref("heads/main").object.sha == theirs
    assert head.update(mine.sha, force=True)
    assert set(github_ctl.repo_files("octocat", "race")) == {"README.md", "mine.txt"}


def test_refs_both_spellings_create_and_branch(gh, github_url, gh_token):
    repo = gh.create_repository("refs", auto_init=True)
    sha = repo.ref("heads/main").object.sha
    plural = requests.get(f"{github_url}/api/v3/repos/octocat/refs/git/refs/heads/main",
                          headers={"Authorization": f"token {gh_token}"}).json()
    assert plural["object"]["sha"] == sha and plural["url"].endswith("/git/refs/heads/main")
    created = repo.create_ref("refs/heads/feature", sha)
    assert created.ref == "refs/heads/feature"
    with pytest.raises(github3.exceptions.UnprocessableEntity):
        repo.create_ref("refs/heads/feature", sha)
    assert {r.ref for r in repo.refs("heads")} == {"refs/heads/main", "refs/heads/feature"}
    branch = repo.branch("main")
    assert branch.commit.sha == sha and branch.name == "main"
    commit = repo.commit(sha)
    assert [f["filename"] for f in commit.files] == ["README.md"] and commit.stats["additions"] == 1


# --- faults --------------------------------------------------------------------------------------------
def test_rate_limit_faults_carry_the_headers(gh, github_ctl):
    github_ctl.fault("GET", r"^/api/v3/user$", kind="rate_limit", retry_after=30)
    with pytest.raises(github3.exceptions.ForbiddenError) as caught:
        gh.me()
    headers = caught.value.response.headers
    assert headers["X-RateLimit-Remaining"] == "0" and headers["Retry-After"] == "30"
    assert int(headers["X-RateLimit-Reset"]) > time.time()
    github_ctl.fault("GET", r"^/api/v3/user$", kind="rate_limit", status=429)
    with pytest.raises(github3.exceptions.GitHubError) as caught:
        gh.me()
    assert caught.value.code == 429 and caught.value.response.headers["X-RateLimit-Remaining"] == "0"
    assert gh.me().login == "octocat"


@pytest.mark.parametrize(("kind", "status", "error"), [
    ("unauthorized", None, github3.exceptions.AuthenticationFailed),
    ("forbidden", None, github3.exceptions.ForbiddenError),
    ("not_found", None, github3.exceptions.NotFoundError),
    ("unprocessable", None, github3.exceptions.UnprocessableEntity),
    ("server_error", None, github3.exceptions.ServerError),
    ("server_error", 502, github3.exceptions.ServerError),
])
def test_scripted_faults_reach_github3(gh, github_ctl, kind, status, error):
    github_ctl.fault("POST", "/user/repos", kind=kind, status=status)
    with pytest.raises(error):
        gh.create_repository("faulty")
    assert gh.create_repository("faulty").name == "faulty"


def test_latency_fault_and_call_counting(gh, github_ctl):
    github_ctl.fault("GET", r"/repos/", latency_ms=120, count=None)
    repo = gh.create_repository("counted", auto_init=True)
    mark = github_ctl.mark()
    started = time.monotonic()
    gh.repository("octocat", "counted").ref("heads/main")
    assert time.monotonic() - started >= 0.2  # two requests, each delayed 120 ms
    calls = github_ctl.calls(since=mark)
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", "/api/v3/repos/octocat/counted"), ("GET", "/api/v3/repos/octocat/counted/git/ref/heads/main")]
    assert repo.name == "counted"


# --- HTML pages ------------------------------------------------------------------------------------------
def test_links_open_sensible_pages(gh, github_url):
    repo = gh.create_repository("pages", description="Shown on the page", auto_init=True)
    first = repo.ref("heads/main").object.sha
    second = repo.create_file("hello.py", "Add hello", b"print('hello')\n")["commit"].sha
    page = requests.get(f"{github_url}/octocat/pages")
    assert page.status_code == 200 and "Shown on the page" in page.text and "hello.py" in page.text
    commit_page = requests.get(f"{github_url}/octocat/pages/commit/{second}").text
    assert "Add hello" in commit_page and "+print(&#x27;hello&#x27;)" in commit_page
    assert "hello.py" in requests.get(f"{github_url}/octocat/pages/tree/main").text
    compare = requests.get(f"{github_url}/octocat/pages/compare/{first[:40]}...main").text
    assert "Add hello" in compare
    assert requests.get(f"{github_url}/octocat/missing").status_code == 404
