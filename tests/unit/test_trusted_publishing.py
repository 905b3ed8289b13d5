"""Trusted publishing in the guard (docker/server/ppc_guard/publishers.py, publishing.py):
what each kind of publisher checks, the JWTs it refuses (each with one JSON problem and
no token left behind), minting, burning and PEP 807's discovery. JWTs are made here with
PyJWT and keys of the test's own."""

from __future__ import annotations

import datetime
import json
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ppc_tasks.render import DOCKER_DIR
from tests.forged_tokens import hmac_signed

sys.path.insert(0, str(DOCKER_DIR / "server"))
from ppc_guard import publishers, publishing, tokens  # noqa: E402  (the image's, not ours)
from ppc_guard.logins import AddressThrottle  # noqa: E402

sys.path.remove(str(DOCKER_DIR / "server"))

AUDIENCE = "pypi.example.internal"
REPOSITORY, WORKFLOW = "acme/tools", "release.yml"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*keys_and_ids):
    return json.dumps({"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
                                 "kid": kid, "alg": "RS256", "use": "sig"}
                                for key, kid in keys_and_ids]})


GITHUB = publishers.from_setting(
    {"issuer": "github", "repository": REPOSITORY, "workflow": WORKFLOW,
     "environment": "pypi"}, ("acme-tools", "acme-tools-*"), "ci", jwks((KEY, "k1")))


def github_claims(**changes):
    now = int(time.time())
    claims = {"iss": publishers.GITHUB, "aud": AUDIENCE, "iat": now, "nbf": now,
              "exp": now + 300, "jti": f"jti-{time.monotonic_ns()}",
              "sub": f"repo:{REPOSITORY}:environment:pypi", "repository": REPOSITORY,
              "job_workflow_ref": f"{REPOSITORY}/.github/workflows/{WORKFLOW}@refs/tags/v1",
              "environment": "pypi"}
    return {key: value for key, value in {**claims, **changes}.items() if value is not None}


def signed(claims, key=KEY, kid="k1", algorithm="RS256"):
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


class Registry:
    """What publishing.py asks of registry.py, in memory."""

    def __init__(self):
        self.tokens, self.jtis = {}, {}

    def first_use_of_jti(self, jti, expires, now):
        self.jtis = {key: when for key, when in self.jtis.items() if when >= now}
        return self.jtis.setdefault(jti, expires) is expires

    def forget_expired_minted(self, note, now):
        self.tokens = {key: token for key, token in self.tokens.items()
                       if not (token.note.startswith(note) and token.expired(now))}

    def add_api_token(self, token):
        self.tokens[token.id] = token

    def api_token(self, token_id):
        return self.tokens.get(token_id)

    def revoke_api_token(self, token_id):
        return self.tokens.pop(token_id, None) is not None


def now():
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def index():
    return publishing.TrustedPublishing([GITHUB], AUDIENCE)


def mint(index, store, token, path=publishing.MINT, address="10.0.0.7", **payload):
    return index.answer(publishing.Asked(path, "POST", json.dumps({"token": token, **payload})
                                         .encode(), address=address), store, now())


# -- what each kind of publisher checks ----------------------------------------------------
def test_a_github_publisher_checks_repository_workflow_and_environment():
    assert GITHUB.issuer == "https://token.actions.githubusercontent.com"
    assert GITHUB.mismatch(github_claims()) is None
    assert GITHUB.mismatch(github_claims(repository="ACME/Tools")) is None  # GitHub's names
    assert GITHUB.mismatch(github_claims(repository="acme/tools-fork")) == "repository"
    assert GITHUB.mismatch(github_claims(
        job_workflow_ref=f"{REPOSITORY}/.github/workflows/other.yml@refs/heads/main")) \
        == "job_workflow_ref"
    assert GITHUB.mismatch(github_claims(
        job_workflow_ref=f"{REPOSITORY}/.github/workflows/{WORKFLOW}.evil@x")) == "job_workflow_ref"
    assert GITHUB.mismatch(github_claims(environment=None)) == "environment"
    assert GITHUB.mismatch(github_claims(environment="staging")) == "environment"


def test_a_gitlab_publisher_checks_project_path_and_ci_config():
    gitlab = publishers.from_setting({"issuer": "gitlab", "project_path": "acme/lib"},
                                     ("acme-lib",), "ci")
    claims = {"project_path": "acme/lib",
              "ci_config_ref_uri": "gitlab.com/acme/lib//.gitlab-ci.yml@refs/heads/main"}
    assert gitlab.issuer == "https://gitlab.com" and gitlab.mismatch(claims) is None
    assert gitlab.mismatch({**claims, "project_path": "acme/lib2"}) == "project_path"
    assert gitlab.mismatch({**claims, "ci_config_ref_uri":
                            "gitlab.com/acme/lib//other.yml@refs/heads/main"}) == "ci_config_ref_uri"


def test_a_generic_issuer_checks_sub_and_named_claims_exactly():
    forgejo = publishers.from_setting(
        {"issuer": "https://git.acme.internal", "claims": {"sub": "repo:acme/x:ref:main",
                                                           "ref_protected": True}},
        ("acme-x",), "ci")
    assert forgejo.mismatch({"sub": "repo:acme/x:ref:main", "ref_protected": True}) is None
    assert forgejo.mismatch({"sub": "repo:acme/x:ref:main", "ref_protected": "true"}) is None
    assert forgejo.mismatch({"sub": "repo:acme/x:ref:mainX", "ref_protected": True}) == "sub"
    assert forgejo.mismatch({"sub": "repo:acme/x:ref:main"}) == "ref_protected"
    assert publishers.Publisher.from_json(forgejo.as_json()) == forgejo


@pytest.mark.parametrize("entry, message", [
    ({"issuer": "github", "repository": "acme", "workflow": "r.yml"}, "repository: 'acme' is not OWNER/NAME"),
    ({"issuer": "github", "repository": "acme/x", "workflow": ".github/workflows/r.yml"}, "workflow:"),
    ({"issuer": "github", "repository": "acme/x"}, "workflow: required"),
    ({"issuer": "github", "repository": "acme/x", "workflow": "r.yml", "sub": "x"}, "sub: not a key"),
    ({"issuer": "gitlab", "project_path": "acme"}, "project_path: 'acme' is not GROUP/PROJECT"),
    ({"issuer": "http://git.acme.internal", "claims": {"sub": "x"}}, "issuer: 'http://"),
    ({"issuer": "https://git.acme.internal", "claims": {"ref": "main"}}, "claims: .* with `sub`"),
    ({"issuer": "https://git.acme.internal", "claims": {"sub": ["x"]}}, "claims: 'sub' must be"),
])
def test_a_publisher_that_cannot_be_is_one_line(entry, message):
    with pytest.raises(publishers.SettingError, match=message):
        publishers.from_setting(entry, ("x",), "ci")


def test_a_pinned_key_set_must_be_one():
    with pytest.raises(publishers.SettingError, match="jwks_file: no JSON Web Key Set"):
        publishers.from_setting({"issuer": "github", "repository": "a/b", "workflow": "r.yml"},
                                ("x",), "ci", jwks='{"keys": "none"}')


# -- minting ---------------------------------------------------------------------------------
def test_a_matching_job_gets_a_token_for_its_projects_for_15_minutes(index):
    store = Registry()
    answer = mint(index, store, signed(github_claims()), path=publishing.GITHUB_MINT)
    assert answer.status == 200 and answer.body["success"] is True
    assert 899 <= answer.body["expires"] - time.time() <= 901
    token_id, secret = tokens.parse(answer.body["token"])
    kept = store.tokens[token_id]
    assert kept.account == "ci" and kept.scope == ("acme-tools", "acme-tools-*")
    assert kept.admits(secret, now()) and not kept.single_use
    assert not kept.admits(secret, now() + publishers.MINTED_LIFETIME)
    assert kept.covers("acme-tools") and not kept.covers("acme-other")
    assert kept.note.startswith("trusted publishing: https://token.actions.githubusercontent.com "
                                "repository=acme/tools job_workflow_ref=acme/tools/.github/"
                                "workflows/release.yml@refs/tags/v1 environment=pypi (jti ")


def test_a_single_use_token_is_minted_when_asked_and_burnt_by_its_holder(index):
    store = Registry()
    answer = mint(index, store, signed(github_claims()), features=["single-use-token"])
    made = answer.body["token"]
    assert store.tokens[tokens.parse(made)[0]].single_use
    burn = publishing.Asked(publishing.BURN, "POST", json.dumps({"token": made}).encode())
    assert index.answer(burn, store, now()).status == 200 and not store.tokens
    again = index.answer(burn, store, now())
    assert again.status == 422 and again.body["errors"][0]["code"] == "invalid-token"


def test_expired_minted_tokens_are_forgotten_at_the_next_mint(index):
    store = Registry()
    old = tokens.new("ci", ("acme-tools",), publishers.MINTED_NOTE + "old", now()
                     - datetime.timedelta(hours=1), publishers.MINTED_LIFETIME)[1]
    operators = tokens.new("ci", ("acme-tools",), "the operator's", now()
                           - datetime.timedelta(hours=1), publishers.MINTED_LIFETIME)[1]
    store.add_api_token(old), store.add_api_token(operators)
    mint(index, store, signed(github_claims()))
    assert old.id not in store.tokens and operators.id in store.tokens


# -- hostile tokens: one problem each, no token left behind ---------------------------------
def hmac_with_public_key():
    public_pem = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return hmac_signed(github_claims(), public_pem, "k1")


HOSTILE = {
    "expired": lambda: signed(github_claims(exp=int(time.time()) - 120, iat=int(time.time()) - 600)),
    "not yet valid": lambda: signed(github_claims(nbf=int(time.time()) + 600)),
    "issued in the future": lambda: signed(github_claims(iat=int(time.time()) + 600)),
    "another audience": lambda: signed(github_claims(aud="pypi")),
    "another issuer": lambda: signed(github_claims(iss="https://token.actions.evil.example")),
    "another repository": lambda: signed(github_claims(repository="evil/tools")),
    "another workflow": lambda: signed(github_claims(
        job_workflow_ref=f"{REPOSITORY}/.github/workflows/pr.yml@refs/pull/1/merge")),
    "no jti": lambda: signed(github_claims(jti=None)),
    "alg none": lambda: jwt.encode(github_claims(), None, algorithm="none"),
    "HS256 with the public key": hmac_with_public_key,
    "a key id never published": lambda: signed(github_claims(), OTHER_KEY, kid="k2"),
    "another key under the known id": lambda: signed(github_claims(), OTHER_KEY),
    "no JWT": lambda: "ey.not-a.jwt",
    "an API token": lambda: "ppc1-0123abcd-" + "a" * 64,
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_token_gets_one_problem_and_no_token(index, case):
    store = Registry()
    answer = mint(index, store, HOSTILE[case]())
    assert answer.status == 422, answer.body
    assert answer.media_type == "application/problem+json"
    assert answer.body["message"] == "Token request failed" and answer.body["status"] == 422
    assert answer.body["errors"][0]["code"] in ("invalid-token", "invalid-publisher")
    assert answer.body["detail"] == answer.body["errors"][0]["description"]
    assert not store.tokens


def test_a_replayed_jti_is_refused(index):
    store, token = Registry(), signed(github_claims())
    assert mint(index, store, token).status == 200
    again = mint(index, store, token)
    assert again.status == 422 and again.body["errors"][0]["code"] == "invalid-reuse-token"
    assert len(store.tokens) == 1


def test_a_flood_of_failed_mints_from_one_address_is_throttled():
    index = publishing.TrustedPublishing([GITHUB], AUDIENCE,
                                         throttle=AddressThrottle(limit=3, window=60))
    store = Registry()
    answers = [mint(index, store, HOSTILE["expired"]()).status for _ in range(5)]
    assert answers == [422, 422, 422, 429, 429]
    assert mint(index, store, HOSTILE["expired"](), address="10.0.0.8").status == 422
    throttled = mint(index, store, HOSTILE["expired"]())
    assert int(throttled.headers["Retry-After"]) > 0
    assert mint(index, store, signed(github_claims())).status == 200  # the right job gets in


@pytest.mark.parametrize("body", [b"", b"[]", b'{"token": 5}', b"\xff", b"x" * 70000])
def test_a_request_that_is_no_token_request_is_refused(index, body):
    answer = index.answer(publishing.Asked(publishing.MINT, "POST", body), Registry(), now())
    assert answer.status in (413, 422) and answer.body["errors"][0]["code"] == "invalid-payload"


# -- the endpoints, with and without publishers ----------------------------------------------
@pytest.mark.parametrize("path, method, status, code", [
    ("/_/oidc/audience", "GET", 403, "not-enabled"),
    ("/_/oidc/mint-token", "POST", 422, "not-enabled"),
    ("/_/oidc/github/mint-token", "POST", 422, "not-enabled"),
    ("/_/oidc/burn-token", "POST", 422, "not-enabled"),
    ("/_/oidc/mint-token", "GET", 405, "method-not-allowed"),
    ("/_/oidc/elsewhere", "GET", 404, "not-found"),
])
def test_without_publishers_the_endpoints_answer_as_pypi_does(path, method, status, code):
    answer = publishing.TrustedPublishing([], AUDIENCE).answer(
        publishing.Asked(path, method, b'{"token": "x"}'), Registry(), now())
    assert answer.status == status and answer.body["errors"][0]["code"] == code
    if code == "not-enabled":  # PyPI's words, which uv and the action show
        assert answer.body["errors"][0]["description"] == publishing.NOT_ENABLED
        assert answer.body["message"] == (publishing.NOT_ENABLED if status == 403
                                          else "Token request failed")


def test_the_audience_is_the_index_s(index):
    answer = index.answer(publishing.Asked(publishing.AUDIENCE, "GET"), None, now())
    assert (answer.status, answer.body) == (200, {"audience": AUDIENCE})


def test_discovery_points_pep_807_clients_at_the_same_endpoints(index):
    asked = publishing.Asked(publishing.DISCOVERY, "GET", discover="/simple/",
                             origin="https://pypi.example.internal")
    answer = index.answer(asked, None, now())
    assert answer.status == 200 and answer.media_type == publishing.MEDIA_TYPE
    assert answer.body == {
        "audience-endpoint": "https://pypi.example.internal/_/oidc/audience",
        "token-mint-endpoint": "https://pypi.example.internal/_/oidc/mint-token",
        "features": ["single-use-token", "multi-use-token"],
        "default-features": ["multi-use-token"]}
    other = publishing.Asked(publishing.DISCOVERY, "GET", discover="/elsewhere/")
    assert index.answer(other, None, now()) == publishing.Answer(404, None)
    off = publishing.TrustedPublishing([], AUDIENCE)
    assert off.answer(asked, None, now()).status == 404
    bare = index.answer(publishing.Asked(publishing.DISCOVERY, "GET"), None, now())
    assert bare.status == 400 and bare.media_type == "application/problem+json"
    refused = index.answer(publishing.Asked(publishing.DISCOVERY, "GET", discover="/simple/",
                                            media_type=None), None, now())
    assert refused.status == 406


# -- the issuer's keys --------------------------------------------------------------------
class Issuer:
    """Discovery and JWKS documents, counting the fetches."""

    def __init__(self, keys_json):
        self.keys_json, self.fetched = keys_json, []

    def fetch(self, url, ca_bundle):
        self.fetched.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": "https://git.acme.internal", "jwks_uri": "https://git.acme.internal/jwks"}
        return json.loads(self.keys_json)


def test_discovered_keys_are_kept_and_fetched_again_for_a_new_kid_at_most_every_minute():
    issuer, clock = Issuer(jwks((KEY, "k1"))), [1000.0]
    keys = publishers.IssuerKeys(fetch=issuer.fetch, clock=lambda: clock[0])
    forgejo = publishers.from_setting({"issuer": "https://git.acme.internal",
                                       "claims": {"sub": "x"}}, ("x",), "ci")
    assert keys.key(forgejo, "k1").key_id == "k1" and len(issuer.fetched) == 2
    keys.key(forgejo, "k1")
    assert len(issuer.fetched) == 2  # kept
    issuer.keys_json = jwks((KEY, "k1"), (OTHER_KEY, "k2"))  # the issuer rotates
    clock[0] += 10
    with pytest.raises(publishers.Refusal, match="published no key 'k2'"):
        keys.key(forgejo, "k2")  # too soon to ask again: a forged kid floods nobody
    assert len(issuer.fetched) == 2
    clock[0] += publishers.REFRESH_AT_MOST_EVERY
    assert keys.key(forgejo, "k2").key_id == "k2" and len(issuer.fetched) == 4


def test_an_issuer_whose_discovery_names_another_issuer_is_not_trusted():
    issuer = Issuer(jwks((KEY, "k1")))
    keys = publishers.IssuerKeys(fetch=issuer.fetch)
    other = publishers.from_setting({"issuer": "https://git.other.internal",
                                     "claims": {"sub": "x"}}, ("x",), "ci")
    with pytest.raises(publishers.Refusal, match="names issuer 'https://git.acme.internal'") as refused:
        keys.key(other, "k1")
    assert refused.value.status == 503


def test_an_ec_key_signs_as_well():
    key = ec.generate_private_key(ec.SECP256R1())
    keys_json = json.dumps({"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(
        key.public_key())), "kid": "e1"}]})
    publisher = publishers.from_setting({"issuer": "github", "repository": REPOSITORY,
                                         "workflow": WORKFLOW}, ("acme-tools",), "ci", keys_json)
    index = publishing.TrustedPublishing([publisher], AUDIENCE)
    token = jwt.encode(github_claims(), key, algorithm="ES256", headers={"kid": "e1"})
    assert mint(index, Registry(), token).status == 200


# -- the operator's settings, into config.ini and back ---------------------------------------
def test_publishers_from_the_settings_reach_the_guard_through_config_ini(tmp_path):
    from ppc_tasks import config_ini, credentials
    from ppc_tasks.settings import Settings

    keys = tmp_path / "jwks.json"
    keys.write_text(jwks((KEY, "k1")))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB%test\n-----END CERTIFICATE-----\n")
    settings = Settings.from_config({"users": ["ci", "dev"], "client_user": "dev", "trusted_publishers": [
        {"issuer": "github", "repository": REPOSITORY, "workflow": WORKFLOW,
         "projects": "acme-tools", "jwks_file": str(keys), "account": "ci"},
        {"issuer": "https://git.acme.internal", "claims": {"sub": "project_path:acme/x"},
         "projects": ["acme-*"], "ca_bundle": str(ca)}]}, host="pypi.test")
    first, second = settings.trusted_publishers
    assert (first.account, second.account) == ("ci", "dev")  # dev: the client_user
    creds = credentials.Credentials()
    credentials.complete(creds, settings.accounts)
    import configparser
    parser = configparser.ConfigParser()  # with pserve's interpolation: a % comes back once
    parser.read_string(config_ini.render_config(settings, creds).decode())
    guard = publishing.TrustedPublishing.configured(parser["app:main"])
    assert guard.trusted == (first, second) and guard.audience == "pypi.test"
    assert "MIIB%test" in guard.trusted[1].ca_bundle


def test_without_publishers_the_guard_has_none():
    from ppc_tasks.settings import Settings

    assert Settings.from_config({}, host="pypi.test").trusted_publishers == ()
    assert Settings.from_config({"trusted_publishers": "[]"}, host="pypi.test") \
        .trusted_publishers == ()


@pytest.mark.parametrize("value, message", [
    ("not json", r"ppc.trusted_publishers: must be a list of publishers \(in the environment"),
    ({"issuer": "github"}, "ppc.trusted_publishers: must be a list"),
    (["github"], r"ppc.trusted_publishers\[1\]: must be a mapping"),
    ([{"issuer": "github", "repository": "a/b", "workflow": "r.yml"}],
     r"ppc.trusted_publishers\[1\].projects: a list of"),
    ([{"issuer": "github", "repository": "a/b", "workflow": "r.yml", "projects": ["a b"]}],
     r"ppc.trusted_publishers\[1\].projects"),
    ([{"issuer": "github", "repository": "a", "workflow": "r.yml", "projects": ["a"]}],
     r"ppc.trusted_publishers\[1\].repository: 'a' is not OWNER/NAME"),
    ([{"issuer": "github", "repository": "a/b", "workflow": "r.yml", "projects": ["a"],
       "jwks_file": "/nowhere/jwks.json"}],
     r"ppc.trusted_publishers\[1\].jwks_file: /nowhere/jwks.json is not a readable"),
    ([{"issuer": "github", "repository": "a/b", "workflow": "r.yml", "projects": ["a"],
       "account": "admin"}], r"account 'admin' is an admin"),
    ([{"issuer": "github", "repository": "a/b", "workflow": "r.yml", "projects": ["a"],
       "account": "nobody"}], r"account 'nobody' is not in ppc.users"),
])
def test_a_bad_publisher_setting_is_one_line(value, message):
    from ppc_tasks.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=message):
        Settings.from_config({"trusted_publishers": value}, host="pypi.test")


def test_publishers_of_one_issuer_share_its_keys(tmp_path):
    """An issuer's tokens are checked against one key set: two publishers of it that name
    different ones are a setting to correct, not a choice the guard makes."""
    from ppc_tasks.settings import Settings, SettingsError

    keys = tmp_path / "jwks.json"
    keys.write_text(jwks((KEY, "k1")))
    pinned = {"issuer": "github", "repository": REPOSITORY, "workflow": WORKFLOW,
              "projects": ["acme-tools"], "jwks_file": str(keys)}
    discovered = {**pinned, "projects": ["acme-lib"], "jwks_file": ""}
    with pytest.raises(SettingsError, match=r"^ppc.trusted_publishers\[2\]: another publisher "
                                            r"of https://token.actions.githubusercontent.com "
                                            r"names other jwks_file or ca_bundle"):
        Settings.from_config({"trusted_publishers": [pinned, discovered]}, host="pypi.test")
    both = Settings.from_config({"trusted_publishers": [pinned, {**pinned, "projects": ["acme-lib"]}]},
                                host="pypi.test")
    assert len(both.trusted_publishers) == 2


def test_publishers_come_from_the_environment_as_json():
    from ppc_tasks.settings import Settings

    value = json.dumps([{"issuer": "gitlab", "project_path": "acme/lib", "projects": ["acme-lib"]}])
    settings = Settings.from_config({"trusted_publishers": value}, host="pypi.test")
    assert settings.trusted_publishers[0].issuer == "https://gitlab.com"
