"""A client kit: what one developer or CI machine needs to use the index, and no more.

`clients.export` writes it on the operator's machine: the index's names and URL, the
client account with its password, and the CA to trust. Not the CA's key, no admin's
password, not the backup key: a lost kit gives away what every developer machine holds
already, never the index. `clients.setup` reads it where it is handed over and writes
what `clients.configure` would, for the user running it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .certificates import ca_permits
from .errors import TaskError
from .index import with_index
from .settings import Settings, SettingsError
from .values import is_host_name

KIND = "ppc-tasks client kit"
VERSION = 1
# The settings clients.configure reads, as the operator's machine has them.
CLIENT_SETTINGS = ("server_names", "index_url", "admins", "users", "client_user",
                   "client_index", "allow_admin_client")


@dataclass(frozen=True)
class Kit:
    settings: Settings
    password: str
    ca: bytes | None  # None: the index has a certificate the machine's roots trust


def content(settings: Settings, password: str, ca: bytes | None) -> bytes:
    chosen = {key: getattr(settings, key) for key in CLIENT_SETTINGS}
    chosen["index_url"] = settings.index_url
    return (json.dumps({"kind": KIND, "version": VERSION, "index": settings.index_name,
                        "settings": chosen, "password": password,
                        "ca": ca.decode() if ca is not None else None}, indent=2) + "\n").encode()


def read(path: Path) -> Kit:
    """The kit at `path`; anything else is one line naming the file."""
    def refuse(why: str) -> TaskError:
        return TaskError(f"{path} is not a client kit ({why}): ask the index's operator for "
                         f"one (ppc clients.export)")

    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise refuse(f"not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise refuse("no kind: " + KIND)
    if data.get("version") != VERSION:
        raise refuse(f"version {data.get('version')!r}; this ppc reads version {VERSION}: "
                     f"update one of the two")
    chosen, password, ca = data.get("settings"), data.get("password"), data.get("ca")
    if not isinstance(chosen, dict) or set(chosen) - set(CLIENT_SETTINGS):
        raise refuse("its settings are not those of a client")
    if not isinstance(password, str) or not password:
        raise refuse("no password")
    try:
        settings = Settings.from_config(chosen, environ={})
    except SettingsError as error:
        raise refuse(str(error)) from None
    # The index names the folder of the user's CA bundle: a name, never a path.
    if not isinstance(data.get("index"), str) or not is_host_name(data["index"]):
        raise refuse("its index is no DNS name or IP address")
    return Kit(with_index(settings, data["index"], ()), password,
               ca_certificate(ca, settings.server_names, refuse))


def ca_certificate(pem, names: tuple[str, ...], refuse) -> bytes | None:
    """The kit's CA, when the index has one: a CA certificate, as PEM, that may sign for
    the index's names (a kit whose CA cannot was not made for this index)."""
    if pem is None:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (AttributeError, ValueError, x509.ExtensionNotFound):
        raise refuse("its CA is no PEM certificate") from None
    if not is_ca:
        raise refuse("its CA certificate is not a CA's")
    if not ca_permits(certificate, names):
        raise refuse(f"its CA may not sign for {', '.join(names)}")
    return pem.encode()
