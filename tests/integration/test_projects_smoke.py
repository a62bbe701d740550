from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import make_project, make_reply, make_snapshot, reply_with


def test_smoke(app, client, make_user):
    user = make_user("alice")
    sign_in(client, user)
    r = client.get("/projects")
    assert r.status_code == 200, r.get_data(as_text=True)
    pid = make_project(app, user)
    sid = make_snapshot(app, user, pid, {"README.md": "# hi\n", "index.html": "<h1>x</h1>\n", "src/a.py": "print(1)\n"})
    mid = make_reply(app, user, pid, reply_with({"src/a.py": "print(2)\n", "src/b.py": "x=1\n"}))
    for url in ["/projects", f"/projects/{pid}", f"/projects/{pid}/snapshots/{sid}", f"/projects/{pid}/settings",
                f"/projects/{pid}/delete", f"/projects/{pid}/diff"]:
        r = client.get(url)
        assert r.status_code == 200, (url, r.get_data(as_text=True)[-3000:])
    token = csrf_token_for(client)
    r = client.post(f"/messages/{mid}/snapshot", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.get_data(as_text=True)
    print(r.get_data(as_text=True))
    r = client.get(f"/projects/{pid}/diff?view=split")
    assert r.status_code == 200
    print(r.get_data(as_text=True)[-2500:])
