"""A local OIDC issuer for the trusted publishing tests, over HTTPS with a CA of its own:

- GitHub Actions' side: `/github/token?...&audience=AUD` answers a job's token request
  (bearer REQUEST_TOKEN) with {"value": JWT}, the JWT GitHub would give the job
  (iss https://token.actions.githubusercontent.com, its repository, workflow and
  environment); the index knows this issuer's keys from a pinned JWKS file;
- a self-managed GitLab's side: `/gitlab/.well-known/openid-configuration` and
  `/gitlab/jwks`, found by the index through discovery.

Tests also mint JWTs with any claims, keys and headers (`jwt`). Nothing reaches the
internet: the issuer listens on the Docker bridge's gateway, which the test hosts (and
the containers inside them) reach."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ppc_tasks.plans import certs

from .harness import gateway_address

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
REQUEST_TOKEN = "the-job-s-request-token"  # what GitHub gives a job to ask for its JWT


class Issuer:
    def __init__(self, directory: Path, job_claims: dict):
        self.address = gateway_address()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.job_claims = job_claims  # what GitHub says of the job, besides iss/aud/times
        self.requests: list[tuple[str, str]] = []  # (path, Authorization) as asked
        now = datetime.datetime.now(datetime.timezone.utc)
        ca, ca_key = certs.new_ca((self.address,), constrained=False, now=now)
        certificate, key = certs.new_server_certificate(ca, ca_key, (self.address,), now)
        self.ca = directory / "issuer-ca.pem"
        self.ca.write_bytes(certs.pem(ca))
        (directory / "issuer.pem").write_bytes(certs.pem(certificate) + certs.key_pem(key))
        self.jwks_file = directory / "github-jwks.json"
        self.jwks_file.write_text(json.dumps(self.jwks()))
        self.server = ThreadingHTTPServer((self.address, 0), self.handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "issuer.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://{self.address}:{self.server.server_address[1]}"
        self.gitlab = f"{self.url}/gitlab"
        self.token_request_url = f"{self.url}/github/token?api-version=2.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    @staticmethod
    def claims(claims: dict) -> dict:
        """These claims (None drops one), valid now for 5 minutes unless they say."""
        now = int(time.time())
        full = {"iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims}
        return {name: value for name, value in full.items() if value is not None}

    def jwt(self, claims: dict, key=None, kid: str | None = None, algorithm="RS256") -> str:
        return jwt.encode(self.claims(claims), key if key is not None else self.key,
                          algorithm=algorithm, headers={"kid": kid or self.kid})

    def github_job_token(self, audience: str, kid: str | None = None, **changes) -> str:
        """The JWT GitHub gives the job (`changes` to its claims; another key id)."""
        return self.jwt({"iss": GITHUB_ISSUER, "aud": audience, **self.job_claims, **changes},
                        kid=kid)

    def handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append((self.path, self.headers.get("Authorization", "")))
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                if path == "/github/token":
                    if self.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
                        return self.answer(401, {"message": "bad request token"})
                    return self.answer(200, {"value": issuer.github_job_token(
                        query["audience"][0])})
                if path == "/gitlab/.well-known/openid-configuration":
                    return self.answer(200, {"issuer": issuer.gitlab,
                                             "jwks_uri": f"{issuer.gitlab}/jwks"})
                if path == "/gitlab/jwks":
                    return self.answer(200, issuer.jwks())
                return self.answer(404, {"message": "no such path"})

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # the tests read `requests` instead
                pass

        return Handler
