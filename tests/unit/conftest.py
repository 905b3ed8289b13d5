"""Unit tests hash passwords with sha512_crypt's fewest rounds (1,000): the deploy's own
(passlib's default, 656,000) cost about a second a hash, which is the point in production
and only slows these tests down. A test of the hash itself asks for the real one with
@pytest.mark.real_password_hash."""

import pytest
from passlib.hash import sha512_crypt

from ppc_tasks import credentials

QUICK = sha512_crypt.using(rounds=sha512_crypt.min_rounds)


@pytest.fixture(autouse=True)
def quick_password_hashes(request, monkeypatch):
    if not request.node.get_closest_marker("real_password_hash"):
        monkeypatch.setattr(credentials, "hash_password", QUICK.hash)
