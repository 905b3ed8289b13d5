"""Trusted publishers: CI jobs that may trade their OIDC identity token (a JWT their CI
signs) for an API token that uploads to the projects trusting them, for 15 minutes.

A publisher is an issuer (GitHub Actions, gitlab.com, or any OIDC issuer the operator
names: a self-managed GitLab, Forgejo/Gitea Actions, Jenkins), the claims its tokens must
carry (which repository, which workflow, ...), the projects it may publish and the
account whose uploads they are. A JWT is accepted when:

- it is signed, with an algorithm of ALGORITHMS (never `none`, never a shared-secret
  HMAC), by a key its issuer published (discovery document, or the JWKS file the
  operator pinned), found by its `kid`;
- `iss` is a publisher's issuer and `aud` this index's audience; `exp`, `iat` and `nbf`
  hold, give or take LEEWAY; `jti` is there (hooks.py lets each be used once);
- every claim of at least one of that issuer's publishers matches.

JWTs are read by PyJWT only: nothing here parses one by hand. Plain functions and
classes (no pyramid); the ppc-tasks repo unit-tests them and reads its settings with
from_setting (one home for what each kind of publisher checks).
"""
from __future__ import annotations

import datetime
import functools
import json
import os
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

import jwt

GITHUB = "https://token.actions.githubusercontent.com"
GITLAB = "https://gitlab.com"
ISSUERS = {"github": GITHUB, "gitlab": GITLAB}
# Signatures with a key pair only: an HMAC would take the issuer's *public* key as its
# secret, and `none` is no signature at all.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
LEEWAY = 60  # seconds of clock difference allowed between the CI and this host
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
MINTED_LIFETIME = datetime.timedelta(minutes=15)  # PEP 807: 15 minutes to 6 hours
MINTED_NOTE = "trusted publishing: "  # how a minted token's note begins
MAX_JWT = 16 * 1024  # bytes: CI tokens are 1-2 KB
# The issuer's keys are fetched again at most this often for a key id not yet seen (a
# forged kid must not make the index flood the issuer), and after KEYS_KEPT anyway.
REFRESH_AT_MOST_EVERY = 60.0
KEYS_KEPT = 3600.0
FETCH_TIMEOUT = 5.0


class Refusal(Exception):
    """A token request turned away: PyPI's error code, its description, the HTTP status."""

    def __init__(self, code, description, status=422):
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


class SettingError(ValueError):
    """A publisher in the settings that cannot be: the message names what to fix."""


# -- publishers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One claim a JWT must carry: equal to `value`, or (how = "prefix") beginning with it;
    compared case-insensitively where the CI's names are (repository and project paths)."""

    claim: str
    value: str
    how: str = "equals"  # equals | equals-casefold | prefix-casefold

    def holds(self, claims):
        found = claim_text(claims.get(self.claim))
        if found is None:
            return False
        if self.how == "equals":
            return found == self.value
        if self.how == "equals-casefold":
            return found.casefold() == self.value.casefold()
        return found.casefold().startswith(self.value.casefold())


@dataclass(frozen=True)
class Publisher:
    issuer: str  # the exact `iss` of its tokens
    rules: tuple  # of Rule
    projects: tuple  # project name patterns (names.matches)
    account: str  # whose uploads the minted token's are
    jwks: str = ""  # the issuer's keys as pinned by the operator (JWKS JSON); "": discovered
    ca_bundle: str = ""  # PEM certificates trusted, besides the system's, to fetch its keys

    @property
    def name(self):
        """How the operator and the audit log see it."""
        return " ".join([self.issuer, *(f"{rule.claim}={rule.value}" for rule in self.rules)])

    def mismatch(self, claims):
        """The first claim of a token that does not match this publisher, or None."""
        for rule in self.rules:
            if not rule.holds(claims):
                return rule.claim
        return None

    def as_json(self):
        """One line of config.ini (ppc_guard.trusted_publishers)."""
        return json.dumps({"issuer": self.issuer, "projects": list(self.projects),
                           "account": self.account, "jwks": self.jwks,
                           "ca_bundle": self.ca_bundle,
                           "rules": [[rule.claim, rule.value, rule.how] for rule in self.rules]},
                          sort_keys=True)

    @classmethod
    def from_json(cls, line):
        value = json.loads(line)
        return cls(value["issuer"], tuple(Rule(*rule) for rule in value["rules"]),
                   tuple(value["projects"]), value["account"], value["jwks"], value["ca_bundle"])


def claim_text(value):
    """A claim as the settings write it: strings as they are, true/false, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    return None


def from_setting(entry, projects, account, jwks="", ca_bundle=""):
    """A Publisher from one entry of the `trusted_publishers` setting (its projects,
    account, pinned keys and CA bundle read and checked by the caller).

    - issuer: github: `repository` (owner/name) and `workflow` (its file name in
      .github/workflows), `environment` optional;
    - issuer: gitlab (gitlab.com): `project_path` (group/project), `workflow_filepath`
      (default .gitlab-ci.yml), `environment` optional;
    - issuer: any https URL: `claims`, a mapping of claim to value that must include `sub`.
    """
    issuer = text(entry, "issuer")
    if issuer == "github":
        allowed(entry, issuer, ("repository", "workflow"), ("environment",))
        repository, workflow = text(entry, "repository"), text(entry, "workflow")
        if repository.count("/") != 1 or not all(repository.split("/")):
            raise SettingError(f"repository: {repository!r} is not OWNER/NAME")
        if "/" in workflow or not workflow.endswith((".yml", ".yaml")):
            raise SettingError(f"workflow: {workflow!r} is not a file name like release.yml "
                               f"(the file in .github/workflows)")
        rules = [Rule("repository", repository, "equals-casefold"),
                 Rule("job_workflow_ref", f"{repository}/.github/workflows/{workflow}@",
                      "prefix-casefold")]
    elif issuer == "gitlab":
        allowed(entry, issuer, ("project_path",), ("workflow_filepath", "environment"))
        project_path = text(entry, "project_path")
        if "/" not in project_path.strip("/"):
            raise SettingError(f"project_path: {project_path!r} is not GROUP/PROJECT")
        workflow = entry.get("workflow_filepath") or ".gitlab-ci.yml"
        host = urllib.parse.urlsplit(GITLAB).hostname
        rules = [Rule("project_path", project_path, "equals-casefold"),
                 Rule("ci_config_ref_uri", f"{host}/{project_path}//{workflow}@",
                      "prefix-casefold")]
    else:
        parts = urllib.parse.urlsplit(issuer)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise SettingError(f"issuer: {issuer!r} is none of github, gitlab or an https URL "
                               f"of an OIDC issuer")
        allowed(entry, issuer, ("claims",), ())
        claims = entry["claims"]
        if not hasattr(claims, "items") or "sub" not in claims:
            raise SettingError("claims: a mapping of claim names to values, with `sub` at least")
        rules = []
        for claim, value in claims.items():
            if claim_text(value) is None:
                raise SettingError(f"claims: {claim!r} must be a string, number or true/false")
            rules.append(Rule(str(claim), claim_text(value)))
    if "environment" in entry:
        rules.append(Rule("environment", text(entry, "environment"), "equals-casefold"))
    if jwks:
        try:
            jwt.PyJWKSet.from_json(jwks)
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise SettingError(f"jwks_file: no JSON Web Key Set ({error})") from None
    return Publisher(ISSUERS.get(issuer, issuer), tuple(rules), tuple(projects), account,
                     jwks, ca_bundle)


# Keys every entry may have besides its issuer's own (the caller reads them).
COMMON_KEYS = ("issuer", "projects", "account", "jwks_file", "ca_bundle")


def allowed(entry, issuer, required, optional):
    unknown = sorted(set(entry) - set(COMMON_KEYS) - set(required) - set(optional))
    if unknown:
        raise SettingError(f"{unknown[0]}: not a key of an {issuer!r} publisher (its keys: "
                           f"{', '.join(required + optional)})")
    for key in required:
        if key not in entry:
            raise SettingError(f"{key}: required for an {issuer!r} publisher")


def text(entry, key):
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"{key}: must be a non-empty string, got {value!r}")
    return value.strip()


# -- the issuers' keys ----------------------------------------------------------------------
def fetch_json(url, ca_bundle, timeout=FETCH_TIMEOUT):
    """A JSON document over https, trusting the CAs the index trusts for its upstream (the
    image's bundle: the system's, or the setting build_ca_bundle) and `ca_bundle`."""
    context = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or None)
    if ca_bundle:
        context.load_verify_locations(cadata=ca_bundle)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read(1024 * 1024))


class IssuerKeys:
    """The signing keys of each issuer: pinned, or from its discovery document
    (`{issuer}/.well-known/openid-configuration`, then its `jwks_uri`), kept KEYS_KEPT
    seconds and fetched again for a key id not seen, at most every REFRESH_AT_MOST_EVERY."""

    def __init__(self, fetch=fetch_json, clock=time.monotonic):
        self.fetch, self.clock = fetch, clock
        self._sets = {}  # issuer -> (PyJWKSet, when fetched)
        self._lock = threading.Lock()

    def key(self, publisher, kid):
        """The PyJWK of `kid`, or a Refusal."""
        if publisher.jwks:
            found = find(pinned(publisher.jwks), kid)
        else:
            with self._lock:
                keys, fetched = self._sets.get(publisher.issuer, (None, None))
                now = self.clock()
                stale = keys is None or now - fetched >= KEYS_KEPT
                unknown = keys is not None and find(keys, kid) is None
                if stale or (unknown and now - fetched >= REFRESH_AT_MOST_EVERY):
                    keys = self._discover(publisher)
                    self._sets[publisher.issuer] = (keys, now)
            found = find(keys, kid)
        if found is None:
            raise Refusal("invalid-token", f"the issuer {publisher.issuer} published no key "
                                           f"{kid!r}")
        return found

    def _discover(self, publisher):
        issuer = publisher.issuer
        try:
            document = self.fetch(f"{issuer.rstrip('/')}/.well-known/openid-configuration",
                                  publisher.ca_bundle)
            if document.get("issuer") != issuer:  # OpenID Connect Discovery 1.0, 4.3
                raise ValueError(f"its discovery document names issuer {document.get('issuer')!r}")
            jwks_uri = document.get("jwks_uri") or ""
            if urllib.parse.urlsplit(jwks_uri).scheme != "https":
                raise ValueError(f"its jwks_uri {jwks_uri!r} is not https")
            return jwt.PyJWKSet.from_dict(self.fetch(jwks_uri, publisher.ca_bundle))
        except (OSError, ValueError, jwt.PyJWTError) as error:
            raise Refusal("issuer-unreachable", f"the keys of {issuer} could not be fetched: "
                                                f"{error}", status=503) from None


@functools.lru_cache(maxsize=64)
def pinned(jwks):
    """A pinned key set, read once."""
    return jwt.PyJWKSet.from_json(jwks)


def find(keys, kid):
    for key in keys.keys:
        if key.key_id == kid or (kid is None and len(keys.keys) == 1):
            return key
    return None


# -- verifying a JWT ------------------------------------------------------------------------
def verify(token, audience, publishers, keys):
    """(the JWT's claims, the publishers it matches) or a Refusal: its signature, issuer,
    audience, times and claims checked as the module says."""
    if not publishers:
        raise Refusal("not-enabled", "Trusted publishing functionality not enabled")
    if not isinstance(token, str) or len(token) > MAX_JWT:
        raise Refusal("invalid-payload", "the request's `token` must be an OIDC token")
    try:
        header = jwt.get_unverified_header(token)
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise Refusal("invalid-token", "the token is no JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise Refusal("invalid-token", f"the token's algorithm {header.get('alg')!r} is not "
                                       f"accepted (accepted: {', '.join(ALGORITHMS)})")
    candidates = [publisher for publisher in publishers if publisher.issuer == issuer]
    if not candidates:
        raise Refusal("invalid-publisher", f"no trusted publisher of this index has the "
                                           f"issuer {issuer!r}")
    key = keys.key(candidates[0], header.get("kid"))
    try:
        claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=audience,
                            issuer=issuer, leeway=LEEWAY,
                            options={"require": REQUIRED_CLAIMS, "verify_iat": True})
    except jwt.PyJWTError as error:
        raise Refusal("invalid-token", f"the token is not valid here: {error}") from None
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise Refusal("invalid-token", "the token has no `jti`: it could be used again")
    matching = [publisher for publisher in candidates if publisher.mismatch(claims) is None]
    if not matching:
        claim = candidates[0].mismatch(claims)
        raise Refusal("invalid-publisher", f"no trusted publisher matches the token (its "
                                           f"{claim!r} is not one the index trusts)")
    return claims, matching


def scope(matching):
    """(account, project patterns) a minted token gets: the first matching publisher's
    account, and the projects of every matching publisher of that account."""
    account = matching[0].account
    patterns = [pattern for publisher in matching if publisher.account == account
                for pattern in publisher.projects]
    return account, tuple(dict.fromkeys(patterns))


def minted_note(claims, publisher):
    """What tokens.list shows of a minted token: who asked, and at which ref."""
    shown = [f"{rule.claim}={claim_text(claims.get(rule.claim))}" for rule in publisher.rules]
    return f"{MINTED_NOTE}{publisher.issuer} {' '.join(shown)} (jti {claims['jti'][:40]})"


def jti_expiry(claims):
    """When a used `jti` may be forgotten: its token is refused as expired by then."""
    return datetime.datetime.fromtimestamp(int(claims["exp"]) + LEEWAY + 1,
                                           datetime.timezone.utc)
