"""What ppc-tasks asks of the index inside the server container:

    python -m ppc_guard CONFIG_INI record            record them (backfill.py)
    python -m ppc_guard CONFIG_INI release NAME VER  the release's state, as JSON
    python -m ppc_guard CONFIG_INI yank NAME VER     through the index's API: an admin's
    python -m ppc_guard CONFIG_INI unyank NAME VER   "user:password" line, then the reason,
                                                     on stdin
    python -m ppc_guard CONFIG_INI token-add         an API token (its JSON, on stdin:
                                                     tokens.Token's fields, no secret)
    python -m ppc_guard CONFIG_INI token-list        every API token, as JSON (no secret)
    python -m ppc_guard CONFIG_INI token-revoke ID   remove one; exit 3 if there is none

Reading commands open pypicloud's own cache as the server does; the yanks go through
its API, as an admin, so that the server checks the account and logs the change.
"""
import base64
import json
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import asdict

from . import backfill, registry, tokens
from .names import canonical
from .views import held_version, yank_reason

API = "http://127.0.0.1:3031"


def release_state(request, name, version):
    """{"held": false}, or the release's stored version and its yank reason (or None)."""
    name = canonical(name)
    held = held_version(request.db, name, version)
    if held is None:
        return {"held": False}
    return {"held": True, "version": held,
            "yanked": yank_reason(held, registry.of(request.db).yanks_of(name))}


def change_yank(method, name, version, login, reason):
    body = json.dumps({"reason": reason}).encode() if method == "PUT" else None
    request = urllib.request.Request(
        f"{API}/admin/yank/{name}/{version}", data=body, method=method,
        headers={"Authorization": "Basic " + base64.b64encode(login.encode()).decode(),
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as error:
        print(f"the index answered {error.code}: {error.reason}", file=sys.stderr)
        return 1


def api_tokens(request, command, arguments):
    with request.tm:
        stored = registry.of(request.db)
        if command == "token-add":
            fields = json.loads(sys.stdin.read())
            stored.add_api_token(tokens.Token(**{**fields, "scope": tuple(fields["scope"])}))
            return 0
        if command == "token-list":
            print(json.dumps([{key: value for key, value in asdict(token).items()
                               if key != "secret_sha256"} for token in stored.api_tokens()]))
            return 0
        if command == "token-revoke":
            return 0 if stored.revoke_api_token(arguments[0]) else 3
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


def main(argv):
    warnings.filterwarnings("ignore", "pkg_resources is deprecated")  # pyramid's import
    config, command, *arguments = argv
    if command in ("yank", "unyank"):
        login = sys.stdin.readline().rstrip("\n")
        reason = sys.stdin.readline().rstrip("\n")
        return change_yank("PUT" if command == "yank" else "DELETE", *arguments, login, reason)

    from pyramid.paster import bootstrap

    with bootstrap(config) as env:
        request = env["request"]
        if command == "record":
            lines, complete = backfill.record_all(request)
            print("\n".join(lines))
            return 0 if complete else 1
        if command == "release":
            with request.tm:
                print(json.dumps(release_state(request, *arguments)))
            return 0
        if command.startswith("token-"):
            return api_tokens(request, command, arguments)
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
