"""Trusted publishing on an index of its own, with a local OIDC issuer (oidc_issuer.py):
real uv publishes from a job shaped like GitHub Actions with no credentials; the
exchange pypa/gh-action-pypi-publish makes, then twine with the minted token; a
self-managed GitLab found through its discovery document; PEP 807's discovery; and
hostile tokens through nginx, each refused with one JSON problem and no token left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.forged_tokens import hmac_signed

from . import web
from .conftest import SYSTEM_CA_BUNDLE, password_of
from .oidc_issuer import GITHUB_ISSUER, REQUEST_TOKEN, Issuer

INDEX = "pypi-tp.test"
JOB = {"repository": "acme/tp", "repository_owner": "acme", "environment": "pypi",
       "sub": "repo:acme/tp:environment:pypi", "ref": "refs/tags/v1.0",
       "job_workflow_ref": "acme/tp/.github/workflows/release.yml@refs/tags/v1.0"}
GITLAB_JOB = {"sub": "project_path:acme/lib:ref_type:branch:ref:main", "project_path": "acme/lib",
              "ref_protected": "true"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tp-home")


@pytest.fixture(scope="module")
def issuer(home):
    issuer = Issuer(home, JOB)
    yield issuer
    issuer.close()


@pytest.fixture(scope="module")
def server(start_host):
    return start_host("tp")


@pytest.fixture(scope="module")
def client(start_host, server):
    return start_host("tp-client", kind="client", add_hosts={INDEX: server.address})


@pytest.fixture(scope="module")
def settings(server, home, issuer):
    return {"server_names": [INDEX, server.address], "users": ["dev", "ci"],
            "build_ca_bundle": SYSTEM_CA_BUNDLE, "state_dir": str(home / "state"),
            "trusted_publishers": [
                {"issuer": "github", "repository": "acme/tp", "workflow": "release.yml",
                 "environment": "pypi", "projects": ["ppc-tp-*"], "account": "ci",
                 "jwks_file": str(issuer.jwks_file)},
                {"issuer": issuer.gitlab, "claims": {"sub": GITLAB_JOB["sub"],
                                                     "project_path": "acme/lib"},
                 "projects": ["ppc-gl-*"], "ca_bundle": str(issuer.ca)}]}


@pytest.fixture(scope="module")
def deployed(fab, server, settings):
    result = fab("deploy", host=server, settings=settings)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def index(deployed, server, home):
    ca = home / "state" / INDEX / "ca.crt"

    def call(path: str, auth=None, **kwargs) -> web.Response:
        return web.request(server.address, path, ca=ca, auth=auth, sni=INDEX, host=INDEX,
                           **kwargs)
    return call


def post_json(index, path: str, body: dict, **headers) -> tuple[int, dict]:
    answer = index(path, method="POST", body=json.dumps(body).encode(),
                   headers={"Content-Type": "application/json", **headers})
    return answer.status, json.loads(answer.body or b"{}")


def audience(index) -> str:
    answer = index("/_/oidc/audience")
    assert answer.status == 200, answer.body
    return json.loads(answer.body)["audience"]


def listed_tokens(fab, server, settings) -> list[str]:
    listed = fab("tokens.list", host=server, settings=settings)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return [line for line in listed.stdout.splitlines() if "trusted publishing:" in line]


def upload(index, token: str, path: Path) -> web.Response:
    return web.upload_dist(index, ("__token__", token), path)


def test_uv_publishes_from_a_github_shaped_job_with_no_credentials(
        index, client, issuer, home, make_dists, server, fab, settings):
    """uv asks the audience, the job's token service for a JWT, mints, uploads as
    __token__, and burns the minted token at the end: nothing of it stays usable."""
    both_cas = home / "cas.pem"
    both_cas.write_bytes((home / "state" / INDEX / "ca.crt").read_bytes() + issuer.ca.read_bytes())
    client.copy_in([both_cas], "/tmp/tp-ca")
    client.copy_in(make_dists("ppc-tp-uv", "1.0"), "/tmp/tp-uv")
    client.copy_in(make_dists("ppc-tp-uv", "1.1"), "/tmp/tp-uv-next")
    job = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.token_request_url,
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}
    published = client.exec(f"SSL_CERT_FILE=/tmp/tp-ca/cas.pem uv publish --trusted-publishing "
                            f"always --publish-url https://{INDEX}/simple/ /tmp/tp-uv/*",
                            check=False, env=job)
    output = (published.stdout + published.stderr).decode()
    assert published.returncode == 0, output
    asked = [(path, auth) for path, auth in issuer.requests if path.startswith("/github/token")]
    assert asked and asked[-1][1] == f"Bearer {REQUEST_TOKEN}"
    assert f"audience={audience(index)}" in asked[-1][0]
    page = index("/simple/ppc-tp-uv/", ("dev", password_of(home, "dev", INDEX)))
    assert page.status == 200 and b"ppc_tp_uv-1.0-py3-none-any.whl" in page.body
    assert listed_tokens(fab, server, settings) == []  # uv burnt it
    # The owner is the publisher's account: ci's uploads, under ci's rules.
    again = client.exec(f"SSL_CERT_FILE=/tmp/tp-ca/cas.pem uv publish --publish-url "
                        f"https://{INDEX}/simple/ -u dev -p {password_of(home, 'dev', INDEX)} "
                        f"/tmp/tp-uv-next/*", check=False)
    assert again.returncode != 0
    assert "belongs to ci and the admins" in (again.stdout + again.stderr).decode()


def test_the_gh_action_exchange_then_twine_with_the_minted_token(
        index, client, issuer, home, make_dists, server, fab, settings):
    """pypa/gh-action-pypi-publish with repository-url: the audience, the job's JWT,
    /_/oidc/github/mint-token, then twine as __token__; the token covers the publisher's
    projects only, for 15 minutes."""
    status, minted = post_json(index, "/_/oidc/github/mint-token",
                               {"token": issuer.github_job_token(audience(index))})
    assert status == 200 and minted["success"] is True, minted
    assert 880 <= minted["expires"] - time.time() <= 905
    token = minted["token"]
    client.copy_in(make_dists("ppc-tp-action", "2.0"), "/tmp/tp-action")
    client.copy_in([home / "state" / INDEX / "ca.crt"], "/tmp/tp-index-ca")
    uploaded = client.exec(f"twine upload --disable-progress-bar --cert /tmp/tp-index-ca/ca.crt "
                           f"--repository-url https://{INDEX}/simple/ -u __token__ -p {token} "
                           f"/tmp/tp-action/*", check=False)
    assert uploaded.returncode == 0, (uploaded.stdout + uploaded.stderr).decode()
    [line] = listed_tokens(fab, server, settings)
    assert "last used never" not in line, line  # twine's upload used it
    assert "ci" in line and "ppc-tp-*" in line and "job_workflow_ref=acme/tp/.github/" \
        "workflows/release.yml@refs/tags/v1.0" in line
    other = make_dists("ppc-other", "1.0")[0]
    assert upload(index, token, other).status in (403, 404)  # not its projects
    assert index("/simple/ppc-other/", ("__token__", token)).status == 404
    assert post_json(index, "/_/oidc/burn-token", {"token": token})[0] == 200
    assert index("/simple/ppc-tp-action/", ("__token__", token)).status == 401  # burnt
    assert listed_tokens(fab, server, settings) == []


def test_a_self_managed_gitlab_is_found_through_its_discovery_document(
        index, issuer, make_dists):
    """The index fetches the issuer's discovery document and keys itself, over HTTPS with
    the CA the settings name for it."""
    status, minted = post_json(index, "/_/oidc/mint-token", {"token": issuer.jwt(
        {"iss": issuer.gitlab, "aud": audience(index), **GITLAB_JOB})})
    assert status == 200, minted
    assert ("/gitlab/.well-known/openid-configuration", "") in issuer.requests
    assert ("/gitlab/jwks", "") in issuer.requests
    wheel = [path for path in make_dists("ppc-gl-lib", "1.0") if path.suffix == ".whl"][0]
    assert upload(index, minted["token"], wheel).status == 200
    assert post_json(index, "/_/oidc/burn-token", {"token": minted["token"]})[0] == 200


def test_pep_807_discovery_points_at_the_same_endpoints(index):
    found = index("/.well-known/pytp?discover=%2Fsimple%2F",
                  headers={"Accept": "application/vnd.pypi.pytp.v1+json"})
    assert found.status == 200, found.body
    assert found.headers["content-type"].startswith("application/vnd.pypi.pytp.v1+json")
    assert json.loads(found.body) == {
        "audience-endpoint": f"https://{INDEX}/_/oidc/audience",
        "token-mint-endpoint": f"https://{INDEX}/_/oidc/mint-token",
        "features": ["single-use-token", "multi-use-token"],
        "default-features": ["multi-use-token"]}
    assert index("/.well-known/pytp?discover=%2Felsewhere%2F").status == 404
    refused = index("/.well-known/pytp?discover=%2Fsimple%2F", headers={"Accept": "text/html"})
    assert refused.status == 406
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_the_guard_s_own_answers_say_what_they_are(index):
    """Its JSON answers keep their Content-Type beside the headers they add."""
    anonymous = index("/simple/")
    assert anonymous.status == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    assert anonymous.headers["content-type"].startswith("application/json")
    assert json.loads(anonymous.body) == {"message": "log in with an account of this index"}


def test_a_single_use_token_uploads_once(index, issuer, make_dists):
    status, minted = post_json(index, "/_/oidc/mint-token", {
        "token": issuer.github_job_token(audience(index)), "features": ["single-use-token"]})
    assert status == 200, minted
    sdist, wheel = sorted(make_dists("ppc-tp-once", "1.0"), key=lambda path: path.suffix)
    assert upload(index, minted["token"], wheel).status == 200
    assert upload(index, minted["token"], sdist).status == 401


def test_a_replayed_token_is_refused(index, issuer):
    token = issuer.github_job_token(audience(index))
    status, minted = post_json(index, "/_/oidc/mint-token", {"token": token})
    assert status == 200
    status, again = post_json(index, "/_/oidc/mint-token", {"token": token})
    assert status == 422 and again["errors"][0]["code"] == "invalid-reuse-token"
    assert post_json(index, "/_/oidc/burn-token", {"token": minted["token"]})[0] == 200


def test_an_oversized_token_request_is_refused_unread(index, issuer):
    """Anyone may post here: a body past the 64 KB a token request may be is refused (the
    guard reads no more of it than that)."""
    token = issuer.github_job_token(audience(index))
    status, refused = post_json(index, "/_/oidc/mint-token",
                                {"token": token, "padding": "x" * 16 * 1024 * 1024})
    assert status == 413 and refused["errors"][0]["code"] == "invalid-payload", refused


HOSTILE = {
    "expired": lambda issuer, aud: issuer.github_job_token(aud, exp=int(time.time()) - 120,
                                                           iat=int(time.time()) - 900),
    "not yet valid": lambda issuer, aud: issuer.github_job_token(aud, nbf=int(time.time()) + 900),
    "another audience": lambda issuer, aud: issuer.github_job_token("pypi"),
    "another issuer": lambda issuer, aud: issuer.jwt({**JOB, "iss": "https://evil.example",
                                                      "aud": aud}),
    "another repository": lambda issuer, aud: issuer.github_job_token(aud, repository="evil/tp"),
    "another workflow": lambda issuer, aud: issuer.github_job_token(
        aud, job_workflow_ref="acme/tp/.github/workflows/pr.yml@refs/pull/7/merge"),
    "alg none": lambda issuer, aud: issuer.jwt({**JOB, "iss": GITHUB_ISSUER, "aud": aud},
                                               key="", algorithm="none"),
    "a key id never published": lambda issuer, aud: issuer.github_job_token(
        aud, kid="never-published"),
    "HS256 signed with the issuer's public key": lambda issuer, aud: hmac_signed(
        issuer.claims({**JOB, "iss": GITHUB_ISSUER, "aud": aud}), issuer.public_pem(),
        issuer.kid),
    "a GitLab job's token for another project": lambda issuer, aud: issuer.jwt(
        {"iss": issuer.gitlab, "aud": aud, **GITLAB_JOB, "project_path": "acme/x"}),
}


@pytest.fixture(scope="module")
def attacker(client, home, deployed):
    """post(path, body) from the client's address (this machine's has its own count of
    failures, which the flood below runs up): (status, JSON answer)."""
    client.copy_in([home / "state" / INDEX / "ca.crt"], "/tmp/tp-index-ca")

    def post(path: str, body: dict) -> tuple[int, dict]:
        status, answer = web.from_host(client, f"https://{INDEX}{path}",
                                       "/tmp/tp-index-ca/ca.crt", "POST",
                                       {"Content-Type": "application/json"},
                                       json.dumps(body).encode())
        return status, json.loads(answer)
    return post


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_token_is_refused_with_one_problem(attacker, index, issuer, case):
    """Ten of them from one address: each a 422 (the eleventh would be throttled)."""
    status, refused = attacker("/_/oidc/mint-token",
                               {"token": HOSTILE[case](issuer, audience(index))})
    assert status == 422, refused
    assert refused["message"] == "Token request failed" and refused["status"] == 422
    assert refused["errors"][0]["code"] in ("invalid-token", "invalid-publisher")


def test_a_flood_of_token_requests_is_throttled_and_leaves_no_token(
        index, issuer, fab, server, settings):
    """From this machine's address: past ten failures in a minute (one of them may be the
    replay's above), 429, slowly; a job's valid token still gets in."""
    answers = [post_json(index, "/_/oidc/mint-token", {"token": "not-a-jwt"})
               for _ in range(11)]
    statuses = [status for status, _ in answers]
    first = statuses.index(429)
    assert first in (9, 10) and set(statuses[:first]) == {422} and set(statuses[first:]) == {429}
    assert answers[-1][1]["errors"][0]["code"] == "too-many-requests"
    status, minted = post_json(index, "/_/oidc/mint-token",
                               {"token": issuer.github_job_token(audience(index))})
    assert status == 200
    assert post_json(index, "/_/oidc/burn-token", {"token": minted["token"]})[0] == 200
    assert listed_tokens(fab, server, settings) == []


def test_status_lists_the_publishers(fab, server, settings):
    shown = fab("status", host=server, settings=settings)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    line = next(line for line in shown.stdout.splitlines() if "publishers" in line)
    assert "2: https://token.actions.githubusercontent.com repository=acme/tp" in line
    assert "-> ppc-tp-* as ci (keys pinned)" in line
    assert "-> ppc-gl-* as dev (keys from its discovery document)" in line
