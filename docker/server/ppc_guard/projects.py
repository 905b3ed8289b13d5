"""Who may add files to a project, and until when: the rules that keep a published
release installing what its owners published.

- A project has owners: the account that first uploaded it, the accounts the operator
  grants matching projects (ppc.owners), and every admin. Nobody else uploads to it.
- A release is closed a while after its first file (ppc.release_window): long enough
  for one CI run to upload its sdist and wheels, after which only admins add files. A
  wheel with a build tag or a more specific platform tag would otherwise take the place
  of the release's files on every machine that installs it; so would a local version
  (1.0+anything), which `pip install NAME==1.0` matches and prefers: it is the release
  it labels, as every other spelling of that version is.

Pure functions of what the index holds; hooks.py feeds them.
"""
import datetime
from dataclasses import dataclass

from .names import canonical, matches, same_release

# The owner recorded for a project nobody owns but the admins: one pypicloud cached
# from upstream, or one from before owners were recorded whose uploader is unknown.
NOBODY = ""


@dataclass(frozen=True)
class StoredFile:
    """One file of a project, as the index holds it."""

    version: str
    uploaded: datetime.datetime  # timezone-aware
    uploader: str  # NOBODY when pypicloud recorded none


@dataclass(frozen=True)
class Rules:
    """The operator's settings for uploads (from config.ini's ppc_guard.* lines)."""

    owners: tuple  # ((name pattern, (account, ...)), ...)
    release_window: datetime.timedelta
    private_names: tuple  # name patterns that never fall back to the upstream index
    account_quota: int = 0  # bytes the projects an account owns may hold; 0: no cap

    def granted(self, name):
        """The accounts the settings make owners of this project."""
        return {account for pattern, accounts in self.owners if matches(name, (pattern,))
                for account in accounts}


def first_uploader(files):
    """Who owns a project from before owners were recorded: the uploader of its oldest
    file, as pypicloud recorded it (NOBODY when it recorded none)."""
    if not files:
        return NOBODY
    return min(files, key=lambda file: file.uploaded).uploader or NOBODY


def owners_of(name, recorded_owner, rules):
    """A project's owners but the admins (who own every project)."""
    owners = rules.granted(name)
    if recorded_owner:
        owners.add(recorded_owner)
    return owners


def upload_refusal(user, name, version, recorded_owner, files, rules, now):
    """Why `user` (no admin) may not upload a file of `name` `version`, or None.

    recorded_owner: the project's first uploader, NOBODY, or None for a project the
    index has never held (the upload makes `user` its owner, unless an owners pattern
    reserves the name for other accounts). files: what it holds now.
    """
    name = canonical(name)
    reserved_for = rules.granted(name)
    if recorded_owner is None and not files and reserved_for and user not in reserved_for:
        return (f"{name} is reserved for {', '.join(sorted(reserved_for))} and the admins by "
                f"ppc.owners: {user} may not create it")
    if recorded_owner is not None or files:
        owners = owners_of(name, recorded_owner, rules)
        if user not in owners:
            who = ", ".join(sorted(owners)) + " and the admins" if owners else "the admins"
            return (f"{name} belongs to {who}: {user} may not upload to it "
                    f"(an admin can grant it with ppc.owners)")
    release = [file for file in files if same_release(file.version, version)]
    if release:
        opened = min(file.uploaded for file in release)
        if now - opened > rules.release_window:
            return (f"{name} {version} was published at {opened:%Y-%m-%d %H:%M:%S} UTC and is "
                    f"closed: files are added to a release only within "
                    f"{describe(rules.release_window)} of its first one (publish a new "
                    f"version, or ask an admin)")
    return None


def quota_refusal(user, holds, size, quota):
    """Why `user` (no admin), whose projects hold `holds` bytes, may not add a file of
    `size` bytes, or None."""
    if not quota or holds + size <= quota:
        return None
    return (f"the projects of {user} hold {megabytes(holds)} of its {megabytes(quota)} "
            f"(ppc.account_quota): this file of {megabytes(size)} would pass it (delete old "
            f"files, or ask an admin)")


def megabytes(size):
    return f"{size / 1024 ** 2:,.1f} MiB"


def describe(window):
    seconds = int(window.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def parse_rules(settings):
    """Rules from pyramid's settings (config.ini): ppc_guard.owners holds one
    "PATTERN = ACCOUNT ACCOUNT" per line, ppc_guard.release_window seconds,
    ppc_guard.private_names patterns separated by white space, ppc_guard.account_quota
    bytes (none in a config.ini from before it)."""
    owners = []
    for line in settings.get("ppc_guard.owners", "").splitlines():
        pattern, _, accounts = line.partition("=")
        if pattern.strip():
            owners.append((pattern.strip(), tuple(accounts.split())))
    window = int(settings.get("ppc_guard.release_window", "7200"))
    return Rules(owners=tuple(owners), release_window=datetime.timedelta(seconds=window),
                 private_names=tuple(settings.get("ppc_guard.private_names", "").split()),
                 account_quota=int(settings.get("ppc_guard.account_quota", "0")))
