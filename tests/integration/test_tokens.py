"""API tokens on the shared server: made with tokens.create, used as PyPI's (user
__token__) by real twine and uv and by requests through nginx over HTTPS, scoped to their
projects, listed, revoked and expired."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import sqlite3
import tarfile

import pytest

from ppc_tasks.render import guard_module

from . import web
from .conftest import SERVER_NAME, password_of

TOKEN_LINE = re.compile(r"the token \(shown this once; user __token__\): (ppc1-[0-9a-f-]+)")


@pytest.fixture(scope="module")
def index(deployed, operator_home):
    """index(path, auth=None, ...): a request to the shared server as a client sends it."""
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"

    def call(path: str, auth=None, **kwargs) -> web.Response:
        return web.request(deployed.host.address, path, ca=ca, auth=auth, sni=SERVER_NAME,
                           host=SERVER_NAME, **kwargs)

    return call


@pytest.fixture(scope="module")
def make_token(fab, deployed):
    def make(*options: str) -> tuple[str, str]:
        """(the token, tokens.create's output)."""
        made = fab("tokens.create", *options, host=deployed.host, settings=deployed.settings())
        assert made.returncode == 0, made.stdout + made.stderr
        found = TOKEN_LINE.search(made.stdout)
        assert found, made.stdout
        return found[1], made.stdout
    return make


def test_a_token_publishes_with_twine_and_uv_to_its_scope_and_nothing_else(
        make_token, index, client, deployed, operator_home, make_dists, fab):
    token, output = make_token("--project", "ppc-tok-*", "--note", "the CI of ppc-tok")
    assert re.search(r"tokens.create +changed +token [0-9a-f]{8} for ppc-tok-\* as dev", output)
    client.copy_in([operator_home / "state" / SERVER_NAME / "ca.crt"], "/tmp/tok-ca")
    client.copy_in(make_dists("ppc-tok-twine", "1.0"), "/tmp/tok-twine")
    client.copy_in(make_dists("ppc-tok-uv", "1.0"), "/tmp/tok-uv")
    client.copy_in(make_dists("ppc-not-tok", "1.0"), "/tmp/tok-other")
    url = f"https://{SERVER_NAME}/simple/"
    secrets = {"TWINE_USERNAME": "__token__", "TWINE_PASSWORD": token, "UV_PUBLISH_TOKEN": token}

    def twine(folder: str):
        return client.exec(f"twine upload --disable-progress-bar --repository-url {url} "
                           f"--cert /tmp/tok-ca/ca.crt {folder}/*", check=False, env=secrets)

    assert twine("/tmp/tok-twine").returncode == 0
    published = client.exec(f"SSL_CERT_FILE=/tmp/tok-ca/ca.crt uv publish --publish-url {url} "
                            f"/tmp/tok-uv/*", check=False, env=secrets)
    assert published.returncode == 0, published.stdout + published.stderr
    other = twine("/tmp/tok-other")
    assert other.returncode != 0 and b"403" in other.stdout + other.stderr
    # Its uploads are its account's: dev, the client account, owns the projects.
    as_dev = ("dev", password_of(operator_home, "dev"))
    assert index("/simple/ppc-tok-twine/", as_dev).status == 200
    # It reads its scope, and nothing else: no other project, no index page beyond it.
    mine = index("/simple/", ("__token__", token))
    assert mine.status == 200 and b"ppc-tok-twine" in mine.body and b"ppc-tok-uv" in mine.body
    assert b"ppc-not-tok" not in mine.body and b"ppc-accounts" not in mine.body
    assert index("/simple/ppc-tok-uv/", ("__token__", token)).status == 200
    for path in ("/simple/ppc-accounts/", "/simple/PPC_Accounts/", "/pypi/ppc-accounts/json",
                 "/simple/ppc%2Daccounts/", "/simple/ppc-never-held/"):
        # held or not, in any spelling: not even a redirect
        assert index(path, ("__token__", token)).status == 404, path
    # Encoded twice, it is no project name at all.
    assert index("/simple/ppc%252Daccounts/", ("__token__", token)).status == 400
    # No delete, no admin page.
    files = index("/simple/ppc-tok-uv/", ("__token__", token)).body.decode()
    wheel = re.search(r'href="[^"]*/(ppc_tok_uv-1\.0-[^"#]+\.whl)', files)[1]
    assert index(f"/api/package/ppc-tok-uv/{wheel}", ("__token__", token),
                 method="DELETE").status == 403
    yank = index("/admin/yank/ppc-tok-uv/1.0", ("__token__", token), method="PUT",
                 body=b'{"reason": "mine"}', headers={"Content-Type": "application/json"})
    assert yank.status in (401, 403), yank
    assert b"data-yanked" not in index("/simple/ppc-tok-uv/", ("__token__", token)).body


def test_poetry_and_pdm_publish_with_a_token_unchanged(make_token, client, operator_home,
                                                      make_dists):
    """The user __token__ and the token as the password, in each tool's own settings."""
    token, _ = make_token("--project", "ppc-tok-*")
    client.copy_in([operator_home / "state" / SERVER_NAME / "ca.crt"], "/tmp/tok-ca")
    client.copy_in(make_dists("ppc-tok-pdm", "1.0"), "/tmp/ppc-tok-pdm/dist")
    client.exec("printf '[project]\\nname = \"ppc-tok-pdm\"\\nversion = \"1.0\"\\n' "
                "> /tmp/ppc-tok-pdm/pyproject.toml")
    url = f"https://{SERVER_NAME}/simple/"
    poetry = client.exec(
        "rm -rf /tmp/ppc-tok-poetry && poetry new -q /tmp/ppc-tok-poetry && cd /tmp/ppc-tok-poetry "
        "&& poetry build -q && poetry publish -r tok", check=False, env={
            "POETRY_REPOSITORIES_TOK_URL": url, "POETRY_HTTP_BASIC_TOK_USERNAME": "__token__",
            "POETRY_HTTP_BASIC_TOK_PASSWORD": token,
            "POETRY_CERTIFICATES_TOK_CERT": "/tmp/tok-ca/ca.crt"})
    assert poetry.returncode == 0, poetry.stdout + poetry.stderr
    pdm = client.exec("cd /tmp/ppc-tok-pdm && pdm publish --no-build", check=False, env={
        "PDM_PUBLISH_REPO": url, "PDM_PUBLISH_USERNAME": "__token__",
        "PDM_PUBLISH_PASSWORD": token, "PDM_PUBLISH_CA_CERTS": "/tmp/tok-ca/ca.crt"})
    assert pdm.returncode == 0, pdm.stdout + pdm.stderr


def test_each_token_sees_its_own_scope_even_from_kept_answers(make_token, index, make_dists):
    first, _ = make_token("--project", "ppc-tok-one")
    second, _ = make_token("--project", "ppc-tok-two")
    for token, name in ((first, "ppc-tok-one"), (second, "ppc-tok-two")):
        for path in make_dists(name, "1.0"):
            assert web.upload_dist(index, ("__token__", token), path).status == 200
    for _ in range(2):  # the second time from the kept answers
        assert b"ppc-tok-two" not in index("/simple/", ("__token__", first)).body
        assert b"ppc-tok-one" not in index("/simple/", ("__token__", second)).body


def test_a_revoked_or_expired_token_logs_in_no_more(make_token, index, fab, deployed):
    token, output = make_token("--project", "ppc-tok-*")
    token_id = token.split("-")[1]
    assert index("/simple/", ("__token__", token)).status == 200
    listed = fab("tokens.list", host=deployed.host, settings=deployed.settings())
    assert listed.returncode == 0 and token_id in listed.stdout and token not in listed.stdout
    [line] = [line for line in listed.stdout.splitlines() if token_id in line]
    assert "last used never" not in line, line  # the request above used it
    shown = fab("status", host=deployed.host, settings=deployed.settings())
    assert re.search(r"tokens +ok +\d+ valid", shown.stdout), shown.stdout
    revoked = fab("tokens.revoke", token_id, host=deployed.host, settings=deployed.settings())
    assert revoked.returncode == 0 and "revoked token" in revoked.stdout, revoked.stdout
    assert index("/simple/", ("__token__", token)).status == 401
    again = fab("tokens.revoke", token_id, host=deployed.host, settings=deployed.settings())
    assert again.returncode == 0 and "tokens.revoke      unchanged" in again.stdout, again.stdout

    # Expired: a token as tokens.create makes it, made two hours ago for one, added as
    # it adds one (no sleeping through a lifetime, which a busy machine may not keep to).
    made = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    expired, kept = guard_module("tokens").new("dev", ("ppc-tok-*",), "expired", made,
                                               datetime.timedelta(hours=1))
    deployed.host.exec("docker exec -i pypicloud ppc-guard token-add",
                       input=json.dumps(dataclasses.asdict(kept)).encode())
    assert index("/simple/", ("__token__", expired)).status == 401
    assert index("/simple/", ("__token__", make_token("--project", "ppc-tok-*", "--expires",
                                                      "1h")[0])).status == 200


def test_the_token_is_shown_once_and_never_kept(make_token, fab, deployed):
    preview = fab("--dry", "tokens.create", "--project", "ppc-tok-*", host=deployed.host,
                  settings=deployed.settings())
    assert preview.returncode == 0 and "ppc1-" not in preview.stdout + preview.stderr
    token, _ = make_token("--project", "ppc-tok-*")
    secret = token.split("-", 2)[2]
    audit = fab("audit", "--lines=50", host=deployed.host, settings=deployed.settings())
    assert "tokens.create" in audit.stdout and secret not in audit.stdout
    held = deployed.host.exec(f"grep -rl {secret} /var/log /etc/pypicloud /etc/ppc-tasks "
                              f"2>/dev/null; docker exec pypicloud sh -c "
                              f"'grep -rl {secret} /var/lib/pypicloud'", check=False)
    assert secret.encode() not in held.stdout and held.stdout.strip() == b""


def test_a_backup_carries_no_token(make_token, fab, deployed, operator_home, tmp_path):
    """Not even as a hash; so a restore never revives one revoked since."""
    make_token("--project", "ppc-tok-*")
    made = fab("backup", host=deployed.host, settings=deployed.settings())
    assert made.returncode == 0, made.stdout + made.stderr
    archive = max((operator_home / "state" / SERVER_NAME / "backups").glob("*.tar.gz"),
                  key=lambda path: path.stat().st_mtime)
    verified = fab("backup.verify", str(archive), settings=deployed.settings())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with tarfile.open(archive) as opened:
        (tmp_path / "db.sqlite").write_bytes(opened.extractfile("db.sqlite").read())
    tables = {row[0] for row in sqlite3.connect(tmp_path / "db.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "ppc_projects" in tables and "ppc_tokens" not in tables


def test_without_trusted_publishers_the_oidc_endpoints_say_so_as_pypi_does(
        index, client, operator_home, make_dists):
    """Anonymously, through nginx: the audience 403, the token endpoints 422 with PyPI's
    error shape; uv publish in a job shaped like GitHub Actions, with no credentials,
    asks for the audience and stops there."""
    audience = index("/_/oidc/audience")
    assert audience.status == 403
    assert json.loads(audience.body)["message"] == "Trusted publishing functionality not enabled"
    for path in ("/_/oidc/mint-token", "/_/oidc/github/mint-token", "/_/oidc/burn-token"):
        minted = index(path, method="POST", body=b'{"token": "x"}',
                       headers={"Content-Type": "application/json"})
        assert minted.status == 422, path
        assert json.loads(minted.body)["errors"][0]["code"] == "not-enabled"
    client.copy_in([operator_home / "state" / SERVER_NAME / "ca.crt"], "/tmp/oidc-ca")
    client.copy_in(make_dists("ppc-tok-oidc", "1.0"), "/tmp/oidc-dist")
    job = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": "https://127.0.0.1:9/t?x=1",
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "never-used"}
    published = client.exec(f"SSL_CERT_FILE=/tmp/oidc-ca/ca.crt uv publish --trusted-publishing "
                            f"always --publish-url https://{SERVER_NAME}/simple/ /tmp/oidc-dist/*",
                            check=False, env=job)
    output = (published.stdout + published.stderr).decode()
    assert published.returncode != 0 and "Traceback" not in output
    assert "not enabled" in output or "403" in output, output
