"""A JWT an attacker forges: HS256 "signed" with the issuer's public key, which an index
that let the token choose its algorithm would check with that very key as the secret.
PyJWT refuses to make one, rightly; so it is made by hand here, as the attacker would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


def hmac_signed(claims: dict, secret: bytes, kid: str) -> str:
    def part(value: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    message = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + part(claims)
    signature = hmac.new(secret, message, hashlib.sha256).digest()
    return (message + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
