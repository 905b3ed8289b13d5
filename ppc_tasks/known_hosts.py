"""Which host we talk to: SSH host keys checked against known_hosts, as OpenSSH does.

Fabric alone accepts any host key (paramiko's AutoAddPolicy, no known_hosts file read),
so a host whose key changed, or a machine in between, would get the sudo password,
the TLS key and every secret a task sends. Before a connection opens, the host's
entries are read from the files ssh_config names (UserKnownHostsFile,
GlobalKnownHostsFile; HostKeyAlias and StrictHostKeyChecking are honoured):

- a key that differs from the recorded one stops the run, naming the file and line,
  whatever ssh_config says (a run hands the host secrets);
- a key recorded as @revoked stops it too, whatever else names it, before we log in;
- a host that known_hosts vouches for through an SSH certificate authority
  (@cert-authority) and no key of its own must show a host certificate that authority
  signed, for its name, valid now (as OpenSSH checks it); it is never trusted on first
  use, and nothing is recorded for it;
- an unknown host is recorded and accepted (OpenSSH's accept-new), unless ssh_config
  says `StrictHostKeyChecking yes`.

Every check happens before we log in, for the host and for each ProxyJump host on the
way. Matching follows OpenSSH: the host name in lower case, `host` on port 22,
`[host]:port` otherwise, hashed (`|1|`) entries and wildcards; new entries are hashed
when ssh_config says HashKnownHosts yes.
"""

from __future__ import annotations

import base64
import fcntl
import getpass
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from paramiko.hostkeys import HostKeys, InvalidHostKey

from .errors import TaskError
from .state import shown

USER_FILES = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
CERTIFICATE = "-cert-v01@openssh.com"  # a host key algorithm's certificate form
GLOBAL_FILES = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
_recording = threading.Lock()  # many hosts connect at once (clients.configure)


@dataclass(frozen=True)
class Entry:
    path: Path
    line: int
    patterns: tuple[str, ...]
    key: paramiko.PKey
    marker: str = ""  # "", "@revoked" or "@cert-authority"

    @property
    def revoked(self) -> bool:
        return self.marker == "@revoked"

    @property
    def where(self) -> str:
        return f"{shown(self.path)} line {self.line}"


@dataclass(frozen=True)
class Policy:
    """What ssh_config says about one host's key."""

    name: str  # how the host is looked up: HostKeyAlias, host, or [host]:port
    user_files: tuple[Path, ...]
    global_files: tuple[Path, ...]
    strict: str  # yes | accept-new
    hash_new: bool


# -- deciding ------------------------------------------------------------------------------
def lookup_name(host: str, port: int, alias: str = "") -> str:
    """The name OpenSSH looks a host up by in known_hosts (it lowercases the host)."""
    if alias:
        return alias
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def _expand(path: str, host: str) -> Path:
    home = os.path.expanduser("~")
    for token, value in (("%d", home), ("%u", getpass.getuser()), ("%h", host)):
        path = path.replace(token, value)
    return Path(os.path.expanduser(path.replace("%%", "%")))


def _files(value: str | list, host: str) -> tuple[Path, ...]:
    words = value.split() if isinstance(value, str) else [word for item in value
                                                            for word in item.split()]
    return tuple(_expand(word, host) for word in words if word.lower() != "none")


def policy_of(ssh_config: dict, host: str, port: int) -> Policy:
    """The policy for a host, from its ssh_config (paramiko's lookup: lowercase keys)."""
    strict = str(ssh_config.get("stricthostkeychecking", "")).lower()
    strict = "yes" if strict == "yes" else "accept-new"  # ask: there is no one to ask
    return Policy(
        name=lookup_name(host, port, ssh_config.get("hostkeyalias", "")),
        user_files=_files(ssh_config.get("userknownhostsfile", USER_FILES), host),
        global_files=_files(ssh_config.get("globalknownhostsfile", GLOBAL_FILES), host),
        strict=strict,
        hash_new=str(ssh_config.get("hashknownhosts", "no")).lower() == "yes")


def matches(patterns: tuple[str, ...], name: str) -> bool:
    """Whether a known_hosts line's host patterns name `name` (hashed, wildcards, !negated)."""
    found = False
    for pattern in patterns:
        if pattern.startswith("|1|"):
            try:
                if HostKeys.hash_host(name, pattern) == pattern:
                    found = True
            except (ValueError, AssertionError, base64.binascii.Error):
                continue
        elif pattern.startswith("!"):
            if _wildcard(pattern[1:]).fullmatch(name):
                return False
        elif _wildcard(pattern).fullmatch(name):
            found = True
    return found


def _wildcard(pattern: str) -> re.Pattern:
    """OpenSSH's host patterns: * and ? are wildcards; brackets are plain ([host]:port)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE)


def read_entries(path: Path, name: str) -> list[Entry]:
    """The entries of one known_hosts file for `name` (a missing file has none)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    entries = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            if marker not in ("@revoked", "@cert-authority"):
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line.strip(), number)
        except (InvalidHostKey, ValueError):
            continue
        if entry is not None and matches(tuple(entry.hostnames), name):
            entries.append(Entry(path, number, tuple(entry.hostnames), entry.key, marker))
    return entries


def known_line(name: str, key: paramiko.PKey, hashed: bool) -> str:
    shown_name = HostKeys.hash_host(name) if hashed else name
    return f"{shown_name} {key.get_name()} {key.get_base64()}\n"


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." as ssh-keygen -l shows it


# -- doing ---------------------------------------------------------------------------------
class _Checked(paramiko.MissingHostKeyPolicy):
    """Called by paramiko, before it logs in, for a key that no usable entry records:
    refuse a revoked key or a host only a CA vouches for, else record it or refuse."""

    def __init__(self, policy: Policy, shown_host: str, entries: list[Entry]):
        self.policy, self.shown_host, self.entries = policy, shown_host, entries

    def missing_host_key(self, client, hostname, key):
        policy = self.policy
        revoked = revocation_error(self.entries, self.shown_host, key)
        if revoked:
            raise revoked
        authorities = [entry for entry in self.entries if entry.marker == "@cert-authority"]
        if authorities:
            problem = certificate_problem(key, self.entries, principal(policy.name), time.time())
            if problem:
                raise RefusedHostKey(f"known_hosts vouches for {self.shown_host} only through an "
                                     f"SSH certificate authority ({authorities[0].where}), and "
                                     f"{problem}: do not use this host until its certificate "
                                     f"is put right")
            return  # vouched for by its authority: as OpenSSH, nothing is recorded
        if policy.strict == "yes" or not policy.user_files:
            where = shown(policy.user_files[0]) if policy.user_files else "a known_hosts file"
            raise UnknownHostKey(
                f"the SSH host key of {self.shown_host} is not known and ssh_config says "
                f"StrictHostKeyChecking yes: check its fingerprint ({fingerprint(key)}), add "
                f"it to {where} (ssh once, or ssh-keyscan) and run again")
        record(policy.user_files[0], known_line(policy.name, key, policy.hash_new))
        print(f"[{self.shown_host}] recorded its SSH host key ({key.get_name()} "
              f"{fingerprint(key)}) in {shown(policy.user_files[0])}", file=sys.stderr, flush=True)


class RefusedHostKey(paramiko.SSHException):
    """A host key known_hosts does not let us accept; the message says what to do."""


class UnknownHostKey(RefusedHostKey):
    """StrictHostKeyChecking yes, and the host is not in known_hosts."""


def principal(lookup: str) -> str:
    """The name a host certificate must list: the host as looked up, without a port."""
    return lookup[1:lookup.index("]")] if lookup.startswith("[") and "]" in lookup else lookup


def certificate_problem(key: paramiko.PKey, entries: list[Entry], name: str,
                        now: float) -> str | None:
    """What is wrong with the host certificate a host presented, as OpenSSH checks it
    against the @cert-authority entries for the host; None when nothing is."""
    blob = key.public_blob
    if blob is None or not blob.key_type.endswith(CERTIFICATE):
        return "it presents no host certificate"
    try:
        certificate = serialization.load_ssh_public_identity(
            blob.key_type.encode() + b" " + base64.b64encode(blob.key_blob))
        signer = certificate.signature_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1].decode()
    except (ValueError, UnsupportedAlgorithm) as error:
        return f"its certificate cannot be read ({error})"
    by_signer = [entry for entry in entries if entry.key.get_base64() == signer]
    if any(entry.revoked for entry in by_signer):
        return f"the authority that signed its certificate is revoked in {by_signer[0].where}"
    if not any(entry.marker == "@cert-authority" for entry in by_signer):
        return "its certificate is signed by another authority"
    try:
        certificate.verify_cert_signature()
    except InvalidSignature:
        return "its certificate's signature does not check"
    if certificate.type != serialization.SSHCertificateType.HOST:
        return "its certificate is a user's, not a host's"
    if certificate.valid_principals and name.encode() not in certificate.valid_principals:
        listed = ", ".join(p.decode(errors="replace") for p in certificate.valid_principals)
        return f"its certificate is for {listed}, not {name}"
    if not certificate.valid_after <= now < certificate.valid_before:
        return "its certificate is expired or not valid yet"
    if certificate.critical_options:
        return "its certificate carries critical options"
    return None


def certificates_only(sock, disabled_algorithms=None) -> paramiko.Transport:
    """A transport that takes only host certificates: for a host known_hosts knows only
    through an authority (OpenSSH asks for certificates first then)."""
    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    options.key_types = [kind + CERTIFICATE for kind in options.key_types]
    return transport


def revocation_error(entries: list[Entry], shown_host: str, key) -> RefusedHostKey | None:
    entry = next((entry for entry in entries if entry.revoked and entry.key == key), None)
    if entry is None:
        return None
    return RefusedHostKey(f"the SSH host key of {shown_host} ({fingerprint(key)}) is revoked "
                          f"in {entry.where}: do not use this host")


def record(path: Path, line: str) -> None:
    """Append a line to a known_hosts file (its folder 0700, the file 0600 if new)."""
    with _recording:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a") as known_hosts:
            fcntl.flock(known_hosts, fcntl.LOCK_EX)  # another run may append too
            known_hosts.write(line)


def prepare(connection, shown_host: str) -> Policy:
    """Give the connection's paramiko client the host's recorded keys and our policy for
    an unknown one, before it opens (its gateway too, when that is an SSH connection)."""
    gateway = getattr(connection, "gateway", None)
    if gateway is not None and hasattr(gateway, "client"):
        prepare(gateway, f"{shown_host}'s ProxyJump {gateway.original_host}")
    policy = policy_of(connection.ssh_config, connection.host, connection.port)
    entries = [entry for path in policy.user_files + policy.global_files
               for entry in read_entries(path, policy.name)]
    # Under the name paramiko looks the host up by: as typed (it knows no HostKeyAlias,
    # nor lowercases).
    host, port = connection.host, connection.port
    paramiko_name = host if port == 22 else f"[{host}]:{port}"
    keys = connection.client.get_host_keys()
    revoked = [entry.key for entry in entries if entry.revoked]
    for entry in entries:  # a revoked key is refused whatever other line names it
        if not entry.marker and entry.key not in revoked:
            keys.add(paramiko_name, entry.key.get_name(), entry.key)
    connection.client.set_missing_host_key_policy(_Checked(policy, shown_host, entries))
    vouched_for = any(entry.marker == "@cert-authority" for entry in entries)
    if vouched_for and not any(not entry.marker for entry in entries):
        connection.connect_kwargs = {**connection.connect_kwargs,
                                     "transport_factory": certificates_only}
    connection.ppc_known_entries = entries
    connection.ppc_host_policy = policy
    return policy


def no_certificate_error(connection, shown_host: str, reason: str) -> TaskError | None:
    """One line for a host that offered no certificate where only one would do."""
    authority = next((entry for entry in getattr(connection, "ppc_known_entries", [])
                      if entry.marker == "@cert-authority"), None)
    if authority is None or "no acceptable host key" not in reason:
        return None
    return TaskError(f"known_hosts vouches for {shown_host} only through an SSH certificate "
                     f"authority ({authority.where}), and it presents no host certificate: do "
                     f"not use this host until its certificate is put right")


def changed_key_error(connection, shown_host: str, error: paramiko.BadHostKeyException) -> TaskError:
    """One line for a key that is not the recorded one (or is revoked)."""
    revoked = revocation_error(connection.ppc_known_entries, shown_host, error.key)
    if revoked:
        return TaskError(str(revoked))
    policy: Policy = connection.ppc_host_policy
    entry = next((entry for entry in connection.ppc_known_entries
                  if not entry.revoked and entry.key == error.expected_key), None)
    where = entry.where if entry else "known_hosts"
    file = shown(entry.path) if entry else "~/.ssh/known_hosts"
    return TaskError(f"the SSH host key of {shown_host} has changed ({error.key.get_name()} "
                     f"{fingerprint(error.key)}; {where} holds another): someone may be in "
                     f"between; if the host was rebuilt, remove that line (ssh-keygen -R "
                     f"'{policy.name}' -f {file}) and run again")
