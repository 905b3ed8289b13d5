"""Trusted publishing's endpoints: PyPI's, where uv and pypa/gh-action-pypi-publish look
for them (at the host's root: they build the URLs from the host alone), and PEP 807's
discovery (draft of 2025-10, python/peps d8fe8d1), which points at the same two. One
implementation answers both: the bodies carry PyPI's fields and the PEP's, and every
error is an RFC 9457 problem whose extension members are PyPI's `message` and `errors`.

    GET  /.well-known/pytp?discover=<upload path>  the endpoints below (PEP 807)
    GET  /_/oidc/audience                          {"audience": ...}
    POST /_/oidc/mint-token, /_/oidc/github/mint-token
         {"token": <OIDC JWT>, "features": [...]}  {"token", "expires", "success"}
    POST /_/oidc/burn-token {"token": <minted>}    the minted token revoked

They answer anonymously (a CI job has only its OIDC token). An index with no trusted
publisher answers as PyPI does when the feature is off. Failed token requests are
counted per client address as failed logins are (logins.AddressThrottle): past the
limit, they get 429.

Plain classes (no pyramid): hooks.py feeds them requests; the ppc-tasks repo unit-tests
them with a registry of its own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus

from . import publishers, tokens
from .logins import AddressThrottle
from .publishers import Refusal

PREFIX = "/_/oidc/"
DISCOVERY = "/.well-known/pytp"
AUDIENCE, MINT, GITHUB_MINT, BURN = (f"{PREFIX}audience", f"{PREFIX}mint-token",
                                     f"{PREFIX}github/mint-token", f"{PREFIX}burn-token")
ENDPOINTS = {DISCOVERY: "GET", AUDIENCE: "GET", MINT: "POST", GITHUB_MINT: "POST", BURN: "POST"}
NOT_ENABLED = "Trusted publishing functionality not enabled"
MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"
OFFERS = (MEDIA_TYPE, "application/json")  # what a client's Accept may choose from
PROBLEM = "application/problem+json"
FEATURES = ("single-use-token", "multi-use-token")
DEFAULT_FEATURES = ("multi-use-token",)
# The upload URLs of pypicloud whose discovery answers (pypicloud takes uploads at both).
UPLOAD_PATHS = ("/simple/", "/simple", "/pypi/", "/pypi")
MAX_BODY = 64 * 1024


def is_endpoint(path):
    return path.startswith(PREFIX) or path == DISCOVERY


@dataclass(frozen=True)
class Asked:
    """What of a request the endpoints read."""

    path: str
    method: str
    body: bytes = b""
    discover: str | None = None  # the discovery's `discover` parameter, decoded
    address: str = ""  # the client's, as nginx saw it
    media_type: str | None = MEDIA_TYPE  # of OFFERS, as the client's Accept chose; None: none
    origin: str = ""  # https://host of the request, for the URLs discovery gives


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | None
    media_type: str = "application/json"
    headers: dict = field(default_factory=dict)

    def encoded(self):
        return b"" if self.body is None else json.dumps(self.body).encode()


def problem(status, code, description, message="Token request failed", **headers):
    """An RFC 9457 problem, with PyPI's `message` and `errors` as extension members."""
    return Answer(status, {"type": "about:blank", "title": HTTPStatus(status).phrase,
                           "status": status, "detail": description, "message": message,
                           "errors": [{"code": code, "description": description}]},
                  PROBLEM, headers)


class TrustedPublishing:
    """The endpoints of one index: its publishers (publishers.Publisher) and audience."""

    def __init__(self, trusted, audience, keys=None, throttle=None):
        self.trusted, self.audience = tuple(trusted), audience
        self.keys = keys or publishers.IssuerKeys()
        self.throttle = throttle or AddressThrottle()

    @classmethod
    def configured(cls, settings):
        """The endpoints for config.ini's settings: its publishers, one JSON a line."""
        lines = settings.get("ppc_guard.trusted_publishers", "").splitlines()
        return cls([publishers.Publisher.from_json(line) for line in lines if line.strip()],
                   settings.get("ppc_guard.trusted_publishing_audience", ""))

    def answer(self, asked, store, now):
        """The Answer to a request, `store` being the registry (registry.py) that keeps
        the used `jti`s and the tokens; `now` timezone-aware."""
        wanted = ENDPOINTS.get(asked.path)
        if wanted is None:
            return problem(404, "not-found", f"no such endpoint: {asked.path}", "Not found")
        if asked.method != wanted:
            return problem(405, "method-not-allowed", f"{asked.path} takes {wanted}",
                           "Method not allowed", Allow=wanted)
        if asked.media_type is None:
            return problem(406, "not-acceptable", f"the answer is {MEDIA_TYPE} (or JSON)",
                           "Not acceptable")
        if asked.path == DISCOVERY:
            return self.discovery(asked)
        if not self.trusted:
            if asked.path == AUDIENCE:
                return problem(403, "not-enabled", NOT_ENABLED, NOT_ENABLED)
            return problem(422, "not-enabled", NOT_ENABLED)
        if asked.path == AUDIENCE:
            return Answer(200, {"audience": self.audience}, asked.media_type)
        try:
            payload = request_payload(asked.body)
            if asked.path == BURN:
                return self.burn(payload, store, now, asked.media_type)
            made, kept = self.mint(payload, store, now)
        except Refusal as refusal:
            return self.refused(refusal, asked.address)
        return Answer(200, {"success": True, "token": made,
                            "expires": int(now.timestamp() + publishers.MINTED_LIFETIME
                                           .total_seconds())}, asked.media_type)

    def discovery(self, asked):
        if asked.discover is None:
            return problem(400, "invalid-request", "discovery needs ?discover=<the upload "
                                                   "URL's path, percent-encoded>", "Bad request")
        if not self.trusted or asked.discover not in UPLOAD_PATHS:
            return Answer(404, None)  # PEP 807: no trusted publishing for that upload URL
        return Answer(200, {"audience-endpoint": asked.origin + AUDIENCE,
                            "token-mint-endpoint": asked.origin + MINT,
                            "features": list(FEATURES),
                            "default-features": list(DEFAULT_FEATURES)}, asked.media_type)

    def mint(self, payload, store, now):
        """(the token as the job types it, the Token kept) for a valid OIDC token."""
        features = payload.get("features", list(DEFAULT_FEATURES))
        if not isinstance(features, list) or not set(features) <= set(FEATURES) \
                or len(set(features)) > 1:
            raise Refusal("invalid-payload", f"features: one of {', '.join(FEATURES)}")
        claims, matching = publishers.verify(payload.get("token"), self.audience,
                                             self.trusted, self.keys)
        used = f"{claims['iss']} {claims['jti']}"
        if not store.first_use_of_jti(used, publishers.jti_expiry(claims), now):
            raise Refusal("invalid-reuse-token", "this OIDC token was used already")
        account, scope = publishers.scope(matching)
        store.forget_expired_minted(publishers.MINTED_NOTE, now)
        made, kept = tokens.new(account, scope, publishers.minted_note(claims, matching[0]),
                                now, publishers.MINTED_LIFETIME,
                                single_use=features == ["single-use-token"])
        store.add_api_token(kept)
        return made, kept

    def burn(self, payload, store, now, media_type):
        """A minted (or any) token revoked by whoever holds it: uv does so when done."""
        parsed = tokens.parse(payload.get("token") if isinstance(payload.get("token"), str) else "")
        token = store.api_token(parsed[0]) if parsed else None
        if token is None or not token.admits(parsed[1], now):
            raise Refusal("invalid-token", "no valid token of this index to burn")
        store.revoke_api_token(token.id)
        return Answer(200, {"success": True}, media_type)

    def refused(self, refusal, address):
        """The problem a refusal answers; throttled (429) past the failure limit."""
        if refusal.status == 422:
            retry_after = self.throttle.retry_after(address)
            self.throttle.failed(address)
            if retry_after is not None:
                return problem(429, "too-many-requests", f"too many failed token requests "
                                                         f"from this address: try again in "
                                                         f"{retry_after} s",
                               **{"Retry-After": str(retry_after)})
        return problem(refusal.status, refusal.code, refusal.description)


def request_payload(body):
    if len(body) > MAX_BODY:
        raise Refusal("invalid-payload", f"the request is larger than {MAX_BODY} bytes", 413)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal("invalid-payload", "the request's body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
        raise Refusal("invalid-payload", "the request's body needs a `token` string")
    return payload
