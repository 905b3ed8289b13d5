"""The guard the server image includes into pypicloud (docker/server/ppc_guard.py)."""

import importlib.util

import pytest

from ppc_tasks.render import DOCKER_DIR

spec = importlib.util.spec_from_file_location("ppc_guard", DOCKER_DIR / "server" / "ppc_guard.py")
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)


@pytest.mark.parametrize("filename, name, version", [
    ("ppc_sample-0.1.0.tar.gz", "ppc-sample", "0.1.0"),
    ("ppc_sample-0.1.0-py3-none-any.whl", "ppc_sample", "0.1.0"),
    ("Django-4.2.1.zip", "Django", "4.2.1"),
    ("pkg-1.0rc1.post2.dev3+local.7-py3-none-any.whl", "pkg", "1.0rc1.post2.dev3+local.7"),
    ("pkg-2!1.0.tar.gz", "pkg", "2!1.0"),
    ("pkg-1.0.tar.gz", None, None),  # the API upload: both parsed from the file name
])
def test_distributions_pass(filename, name, version):
    assert guard.upload_error(filename, name, version) is None


@pytest.mark.parametrize("filename, name, version, what", [
    ("db.sqlite", "ppc-sample", "0.1.0", "distribution file name"),
    ("../db.sqlite", "ppc-sample", "0.1.0", "distribution file name"),
    ("pkg-1.0.tar.gz", "ppc-sample", "../..", "version"),
    ("pkg-1.0.tar.gz", "ppc-sample", "1.0/../../x", "version"),
    ("pkg-1.0.tar.gz", "../../etc", "1.0", "project name"),
    ("pkg-1.0.tar.gz", "a\\b", "1.0", "project name"),
    ("pkg-1.0.tar.gz", "a\0b", "1.0", "project name"),
    ("pkg..-1.0.tar.gz", "pkg", "1.0", "distribution file name"),
    (".hidden-1.0.tar.gz", "pkg", "1.0", "distribution file name"),
    ("pkg-1.0.tar.gz/", "pkg", "1.0", "distribution file name"),
    (None, "pkg", "1.0", "distribution file name"),
])
def test_anything_that_could_leave_the_package_store_is_refused(filename, name, version, what):
    assert guard.upload_error(filename, name, version).startswith(f"invalid {what}: ")


def test_only_health_is_public():
    assert guard.is_public("/health")
    for path in ("/", "/simple/", "/simple/missing/", "/api/package/", "/pypi", "/health/x"):
        assert not guard.is_public(path)


def test_a_login_is_verified_slowly_once_and_a_wrong_password_every_time():
    logins = guard.VerifiedLogins()
    calls = []

    def slow(result):
        return lambda: calls.append(result) or result

    assert logins.verify("dev", "right", "$6$hash", slow(True))
    assert logins.verify("dev", "right", "$6$hash", slow(True))
    assert calls == [True]
    assert not logins.verify("dev", "wrong", "$6$hash", slow(False))
    assert not logins.verify("dev", "wrong", "$6$hash", slow(False))
    assert calls == [True, False, False]
    # A changed stored hash (a new password in config.ini) is verified afresh.
    assert logins.verify("dev", "right", "$6$other", slow(True))
    assert calls == [True, False, False, True]
    assert b"right" not in b"".join(logins._seen)
