"""ppc-tasks' guard around pypicloud 1.3.12, included from config.ini (pyramid.includes).

What it promises, each kept by one module:

- names.py: an upload whose project name, version or file name is not the shape of a
  distribution's, or whose file name is no distribution of that project and version,
  is refused (400) before anything is written: pypicloud builds storage paths from
  them, and pip decides what a file is from its name.
- projects.py, registry.py: a project's files come from its owners only (its first
  uploader, the accounts ppc.owners grants, the admins), and a release is closed to all
  but admins once ppc.release_window has passed since its first file (403). Every
  project the index ever held, and every name ppc.private_names matches, is never
  looked up on the upstream index (404 instead of a redirect or a cached copy).
- logins.py: a login costs one slow hash, once; wrong logins from one address are
  throttled (429), and slow hashes never take every server thread (503).
- answers.py: the simple API's pages and metadata files are made once and given again
  (to the same account) until the index changes.
- tokens.py: an API token (user __token__) acts for one account on the projects of its
  scope only, until it expires or is revoked; the index keeps the sha256 of its secret.
- Anonymous requests get 401 for everything but /health, which answers without asking
  the backends; the deep check (access, cache, storage) is for requests that carry
  DEEP_HEALTH_HEADER, which nginx never passes on: Docker's health check and status.

hooks.py puts them into pypicloud; the modules above import no pyramid and are
unit-tested in the ppc-tasks repo.
"""


def includeme(config):
    from . import hooks

    hooks.install(config)
