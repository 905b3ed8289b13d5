"""ppc-tasks' guard around pypicloud 1.3.12, included from config.ini (pyramid.includes).

- Anonymous requests get 401 for everything but /health: nobody can probe which
  package names exist (pypicloud itself answers /api/package/ and redirects missing
  names to PyPI without asking who is there).
- An upload whose project name, version or file name is not the shape of a
  distribution's is refused with 400 before anything is written: pypicloud builds
  storage paths from them, so `version=../..` would write outside the package store.
- A verified login is remembered for the life of the process, keyed by a keyed hash of
  user, password and stored hash, so a request costs one HMAC instead of a slow
  sha512_crypt; a wrong password still pays the full hash, every time.

The checks are plain functions (no pyramid needed to import this module), so they are
unit-tested in the ppc-tasks repo.
"""
import hmac
import os
import re

# PEP 508 project names, as uploads carry them (normalized or not).
NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# PEP 440 versions, public and local (the pattern from the PEP's appendix).
VERSION = re.compile(
    r"^v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?)(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
    re.IGNORECASE)
# A distribution file: sdist archives, wheels and eggs; no path, no hidden file.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.(tar\.gz|tar\.bz2|tar\.xz|tgz|zip|whl|egg)$")
PUBLIC_PATHS = ("/health",)


def upload_error(filename, name=None, version=None):
    """Why an upload must be refused, or None when its names are safe to store."""
    if not isinstance(filename, str) or not FILENAME.match(filename) or ".." in filename:
        return f"invalid distribution file name: {filename!r}"
    if name is not None and not NAME.match(name):
        return f"invalid project name: {name!r}"
    if version is not None and not VERSION.match(version):
        return f"invalid version: {version!r}"
    return None


def is_public(path):
    return path in PUBLIC_PATHS


class VerifiedLogins:
    """Logins that verified once in this process, remembered by a keyed hash only."""

    LIMIT = 10000

    def __init__(self):
        self._key = os.urandom(32)
        self._seen = set()

    def _digest(self, username, password, stored_hash):
        message = "\0".join((username, password, stored_hash)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, "sha256").digest()

    def verify(self, username, password, stored_hash, slow_verify):
        if not stored_hash:
            return slow_verify()
        digest = self._digest(username, password, stored_hash)
        if digest in self._seen:
            return True
        verified = slow_verify()
        if verified:
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            self._seen.add(digest)
        return verified


def _guard_uploads():
    from pyramid.httpexceptions import HTTPBadRequest
    from pypicloud.cache.base import ICache

    upload = ICache.upload

    def guarded_upload(self, filename, data, name=None, version=None, *args, **kwargs):
        error = upload_error(filename, name, version)
        if error:
            raise HTTPBadRequest(error)
        return upload(self, filename, data, name, version, *args, **kwargs)

    ICache.upload = guarded_upload


def _remember_logins():
    from pypicloud.access.base import IAccessBackend

    verify_user = IAccessBackend.verify_user
    logins = VerifiedLogins()

    def remembering_verify_user(self, username, password):
        stored_hash = self._get_password_hash(username) if not self.mutable else None
        return logins.verify(username, password, stored_hash or "",
                             lambda: verify_user(self, username, password))

    IAccessBackend.verify_user = remembering_verify_user


def anonymous_gate(handler, registry):
    """A tween: 401 with a Basic challenge for anonymous requests to non-public paths."""
    from pyramid.httpexceptions import HTTPUnauthorized

    def tween(request):
        if is_public(request.path_info) or request.authenticated_userid is not None:
            return handler(request)
        response = HTTPUnauthorized()
        realm = registry.settings.get("pypi.realm", "pypi")
        response.headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
        return response

    return tween


def includeme(config):
    _guard_uploads()
    _remember_logins()
    config.add_tween("ppc_guard.anonymous_gate")
