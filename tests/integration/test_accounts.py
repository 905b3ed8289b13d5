"""The served index as a plain account, an anonymous client or a forged request sees it.

Every request goes through nginx over HTTPS with verification on, as a client's would.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest

from tests.dists import sdist_with_long_name

from . import harness, web
from .conftest import SERVER_NAME, password_of


@pytest.fixture(scope="module")
def index(deployed, operator_home):
    """index(path, as_user=None, ...): a request to the shared server as pip would send it."""
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"
    passwords = {user: password_of(operator_home, user) for user in ("admin", "dev")}

    def call(path: str, as_user: str | None = None, **kwargs) -> web.Response:
        auth = (as_user, passwords[as_user]) if as_user else None
        kwargs.setdefault("sni", SERVER_NAME)
        kwargs.setdefault("host", SERVER_NAME)
        return web.request(deployed.host.address, path, ca=ca, auth=auth, **kwargs)

    return call


@pytest.fixture(scope="module", autouse=True)
def sample(index):
    """A project that exists, to compare with one that does not."""
    assert upload(index, "dev", "ppc-accounts", "0.1.0", "ppc_accounts-0.1.0.tar.gz",
                  b"sample").status in (200, 409)


def upload(index, as_user: str, name: str, version: str, filename: str, content: bytes):
    body, headers = web.upload_form({":action": "file_upload", "name": name, "version": version},
                                    filename, content)
    return index("/simple/", as_user, method="POST", body=body, headers=headers)


def test_a_plain_account_can_neither_delete_nor_overwrite_a_release(index):
    url = "/api/package/ppc-guarded/ppc_guarded-1.0.tar.gz"
    original = b"the original release"
    assert upload(index, "dev", "ppc-guarded", "1.0", "ppc_guarded-1.0.tar.gz", original).status == 200

    assert index(url, "dev", method="DELETE").status == 403
    for user in ("dev", "admin"):  # nobody overwrites a file, not even an admin
        again = upload(index, user, "ppc-guarded", "1.0", "ppc_guarded-1.0.tar.gz", b"other bytes")
        assert again.status == 409, again.body
    served = index(url, "dev")
    assert served.status == 200 and served.body == original

    assert index(url, "admin", method="DELETE").status == 200  # an admin may
    assert index("/simple/ppc-guarded/", "dev").body.count(b"ppc_guarded-1.0.tar.gz") == 0


@pytest.mark.parametrize("fields, filename", [
    ({"name": "ppc-accounts", "version": "../.."}, "db.sqlite"),
    ({"name": "ppc-accounts", "version": "../.."}, "ppc_accounts-9.0.tar.gz"),
    ({"name": "../../tmp", "version": "1.0"}, "x-1.0.tar.gz"),
    ({"name": "ppc-accounts", "version": "1.0"}, "../../db.sqlite"),
])
def test_upload_names_cannot_leave_the_package_store(index, deployed, fields, filename):
    server = deployed.host
    database = server.out("docker exec pypicloud sha256sum /var/lib/pypicloud/db.sqlite")
    refused = upload(index, "dev", fields["name"], fields["version"], filename,
                     b"SQLite format 3\0 not really")
    assert refused.status == 400, refused.body
    assert server.out("docker exec pypicloud ls -A /var/lib/pypicloud") == "db.sqlite\npackages"
    assert server.out("docker exec pypicloud sha256sum /var/lib/pypicloud/db.sqlite") == database
    assert server.out("docker exec -u 0 pypicloud find / -path /proc -prune "
                      "-o -name 'ppc_accounts-9.0*' -print") == ""


def server_memory_peak(server) -> float:
    """The most MiB the server container has used since it started (its cgroup's own
    count: a request's memory comes back to the system once it is answered)."""
    peak = server.out("docker exec pypicloud cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes")
    return int(peak) / 1024 ** 2


@pytest.mark.parametrize("suffix, opener, status", [
    (".tar.gz", gzip.open, 400),  # read as gzip: its long-name header is over the cap
    (".tar.gz", bz2.open, 200),  # not gzip: not read at all (taken as it is, as a damaged one)
    (".tar.xz", lzma.open, 400),
])
def test_an_upload_cannot_take_the_server_down(index, deployed, tmp_path, suffix, opener, status):
    """A few hundred bytes of compressed tar whose first header asks for 100 MB: the
    server reads no more of it than its caps allow, and keeps its memory."""
    server = deployed.host
    name = f"ppc_bomb_{opener.__module__}"
    hostile = sdist_with_long_name(tmp_path / f"{name}-1.0{suffix}", opener, 100_000_000)
    assert hostile.stat().st_size < 200_000
    before = server_memory_peak(server)
    answer = upload(index, "dev", name.replace("_", "-"), "1.0", hostile.name, hostile.read_bytes())
    assert answer.status == status, answer
    if status == 400:
        assert b"a tar header asks to read 100000" in answer.body, answer.body
        assert b"at most 8388608 are read" in answer.body, answer.body
    assert server_memory_peak(server) - before < 50, "the server took the header into memory"
    limit = server.out("docker inspect --format '{{.HostConfig.Memory}}' pypicloud")
    assert int(limit) == 1024 ** 3  # and it could not take more than this (server_memory)


def test_the_index_survives_a_restart_after_those_uploads(index, deployed):
    deployed.host.exec("docker restart pypicloud")
    harness.wait_for(lambda: index("/health").status == 200, "pypicloud after a restart", 60)
    assert b"ppc-accounts" in index("/simple/", "dev").body


@pytest.mark.parametrize("path", ["/", "/simple/", "/simple/ppc-accounts/", "/simple/no-such-name/",
                                  "/api/package/", "/api/package/ppc-accounts/", "/pypi",
                                  "/api/package/ppc-accounts/ppc_accounts-0.1.0.tar.gz"])
def test_an_anonymous_client_learns_nothing(index, path):
    response = index(path)
    assert response.status == 401, (path, response.status)
    assert response.headers.get("www-authenticate", "").startswith("Basic ")
    # An existing and a missing name get the very same answer.
    assert index("/simple/ppc-accounts/").body == index("/simple/no-such-name/").body


def test_a_wrong_password_is_anonymous(deployed, operator_home):
    response = web.request(deployed.host.address, "/simple/no-such-name/",
                           ca=operator_home / "state" / SERVER_NAME / "ca.crt", sni=SERVER_NAME,
                           host=SERVER_NAME, auth=("dev", "not-the-password"))
    assert response.status == 401


def test_health_stays_public_and_tells_nothing_of_the_backends(index, deployed):
    """Anonymous /health answers without asking the cache or the store (nor showing
    their errors), even when the client asks for the deep check; the server container's
    own health check (and status) gets it."""
    for headers in ({}, {"X-PPC-Health": "deep"}):
        response = index("/health", headers=headers)
        assert (response.status, response.body) == (200, b'{"status": "ok"}')
    deep = json.loads(deployed.host.out("docker exec pypicloud pypicloud-health --report"))
    # The parts, and what the guard counted of the last hour's answers (for status).
    assert deep.pop("ppc_last_hour").keys() == {"answers", "server_errors"}
    assert deep == {"access": "", "cache": "", "storage": ""}


@pytest.mark.parametrize("sni", [SERVER_NAME, None, "evil.example"])
def test_other_host_names_never_reach_pypicloud(index, sni):
    for host in ("evil.example", "evil.example:443"):
        assert index("/simple/", "dev", sni=sni, host=host, verify=False).status is None


def test_the_index_is_served_by_its_ip_address_without_sni(index, deployed):
    response = index("/simple/ppc-accounts/", "dev", sni=None, host=deployed.host.address)
    assert response.status == 200
    assert f'href="https://{deployed.host.address}/'.encode() in response.body
