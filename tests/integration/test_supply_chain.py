"""Who decides what `pip install NAME==V` installs: tried as a hostile plain account (its
password is in every developer machine's files) would try it, with real twine and pip
on a developer machine, over HTTPS with verification on.

One host, first deployed by the previous release with default settings (which gave
developer machines the admin's password) and upgraded by this one; then deployed with
owners granted, a short release window and private names.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from . import harness, web
from .conftest import SYSTEM_CA_BUNDLE, server_port, steps
from .test_clients import as_dev

NAME = "supply.test"
# Today's main when owners and private names arrived: developer machines got the admin.
PREVIOUS_RELEASE = "a33e074"
WINDOW = 15  # seconds: a release's window, short for the test


class Index:
    def __init__(self, host: harness.TestHost, state_dir):
        self.host, self.state_dir = host, state_dir

    def settings(self, **overrides) -> dict:
        return {"server_names": [NAME], "build_ca_bundle": SYSTEM_CA_BUNDLE,
                "state_dir": str(self.state_dir), **overrides}

    def guarded(self) -> dict:
        """The settings of this module's tests once the host is upgraded."""
        return self.settings(users=["client", "ci"], owners={"acme-*": ["ci"]},
                             release_window=f"{WINDOW}s", private_names=["acme-*"])

    def password(self, user: str) -> str:
        return json.loads((self.state_dir / NAME / "secrets.json").read_text())["passwords"][user]

    def request(self, path: str, user: str | None = "client", auth_override=None,
                **kwargs) -> web.Response:
        auth = auth_override or ((user, self.password(user)) if user else None)
        return web.request(self.host.address, path, ca=self.state_dir / NAME / "ca.crt",
                           sni=NAME, host=NAME, auth=auth, **kwargs)


@pytest.fixture(scope="module")
def index(start_host, tmp_path_factory) -> Index:
    return Index(start_host("supply", images="base"), tmp_path_factory.mktemp("supply-state"))


@pytest.fixture(scope="module")
def developer(start_host, index) -> harness.TestHost:
    """A developer machine: the user dev, with sudo, resolving the index's name."""
    host = start_host("supply-dev", kind="client", add_hosts={NAME: index.host.address})
    host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh && cp /root/.ssh/authorized_keys "
              "~dev/.ssh/ && chown -R dev: ~dev/.ssh && echo 'dev ALL=(ALL) NOPASSWD:ALL' "
              "> /etc/sudoers.d/dev")
    return host


def dev_files(developer) -> str:
    """Every file clients.configure writes with a password in it."""
    return as_dev(developer, "cat ~/.pypirc ~/.config/pip/pip.conf ~/.netrc "
                             "~/.config/pypoetry/auth.toml ~/.config/pdm/config.toml").stdout.decode()


@pytest.fixture(scope="module")
def upgraded(index, developer, fab, host_images, tmp_path_factory):
    """The previous release deploys with defaults and configures the developer machine
    (with the admin's password), the admin publishes ppc-legacy 1.0; then this release
    deploys the same settings."""
    target = f"dev@127.0.0.1:{developer.port}"
    with harness.previous_release(index.host, PREVIOUS_RELEASE,
                                  tmp_path_factory.mktemp("previous")) as tree:
        for task, host in (("deploy", index.host.target), ("clients.configure", target)):
            old = fab(task, host=host, cwd=tree, settings=index.settings())
            assert old.returncode == 0, old.stdout + old.stderr
    assert f"admin:{index.password('admin')}@" in dev_files(developer)
    wheel = harness.build_wheel("ppc-legacy", "1.0", tmp_path_factory.mktemp("legacy"))
    body, headers = web.upload_form({":action": "file_upload", "name": "ppc-legacy",
                                     "version": "1.0"}, wheel.name, wheel.read_bytes())
    assert index.request("/simple/", "admin", method="POST", body=body, headers=headers).status == 200
    harness.load_archive(index.host, host_images["server"])  # this release's, built once
    return fab("deploy", host=index.host, settings=index.settings())


def test_an_index_with_the_old_defaults_gets_a_client_account_and_says_so(
        upgraded, index, developer, fab):
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "the account 'client' is new: run `fab -H DEV1,DEV2,... clients.configure` again" \
        in upgraded.stdout
    assert steps(upgraded.stdout)["server.config"] == "changed"
    assert index.request("/simple/ppc-legacy/", "client").status == 200
    # The wheel the old release stored gets its metadata file (read once, on upgrade).
    assert steps(upgraded.stdout)["server.records"] == "changed"
    page = json.loads(index.request("/simple/ppc-legacy/", "client", headers={
        "Accept": "application/vnd.pypi.simple.v1+json"}).body)
    metadata = index.request("/api/package/ppc-legacy/ppc_legacy-1.0-py3-none-any.whl.metadata",
                             "client")
    assert metadata.status == 200 and metadata.body.startswith(b"Metadata-Version")
    assert page["files"][0]["core-metadata"] == {"sha256": hashlib.sha256(metadata.body).hexdigest()}

    configured = fab("clients.configure", host=f"dev@127.0.0.1:{developer.port}",
                     settings=index.settings())
    assert configured.returncode == 0, configured.stdout + configured.stderr
    files = dev_files(developer) + as_dev(developer, "cat ~/.*.ppc-tasks-backup "
                                                    "~/.config/*/*.ppc-tasks-backup").stdout.decode()
    assert f"client:{index.password('client')}@" in files and "username = client" in files
    assert index.password("admin") not in files
    again = fab("deploy", host=index.host, settings=index.settings())
    assert "is new" not in again.stdout and "done: 0 changed," in again.stdout, again.stdout


def test_clients_configure_refuses_an_admin_account_unless_told(upgraded, index, developer, fab):
    before = dev_files(developer)
    refused = fab("clients.configure", host=f"dev@127.0.0.1:{developer.port}",
                  settings=index.settings(client_user="admin"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        "Error: ppc.client_user: 'admin' is an admin, whose password would be on every "
        "developer machine: name a plain account (ppc.users), or set "
        "ppc.allow_admin_client: true")
    assert dev_files(developer) == before
    allowed = fab("--dry", "clients.configure", host=f"dev@127.0.0.1:{developer.port}",
                  settings=index.settings(client_user="admin", allow_admin_client=True))
    assert allowed.returncode == 0 and "would change" in allowed.stdout, allowed.stderr
    assert index.password("admin") not in allowed.stdout
    assert dev_files(developer) == before


@pytest.fixture(scope="module")
def guarded(upgraded, index, developer, fab):
    deployed = fab("deploy", host=index.host, settings=index.guarded())
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    configured = fab("clients.configure", host=f"dev@127.0.0.1:{developer.port}",
                     settings=index.guarded())
    assert configured.returncode == 0, configured.stdout + configured.stderr
    return deployed


def twine(developer, files, env: dict | None = None):
    """`twine upload -r internal` on the developer machine, as dev: with the client
    account configure wrote, or another account's credentials in the environment."""
    developer.copy_in(files, "/tmp/upload")
    developer.exec("chown -R dev: /tmp/upload")
    names = " ".join(f"/tmp/upload/{path.name}" for path in files)
    result = as_dev(developer, f"twine upload --disable-progress-bar -r internal {names}",
                    env={"COLUMNS": "1000", **(env or {})})  # one line per message
    developer.exec("rm -rf /tmp/upload")
    return result.returncode, (result.stdout + result.stderr).decode()


def as_admin(index) -> dict:
    return {"TWINE_USERNAME": "admin", "TWINE_PASSWORD": index.password("admin")}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def downloaded(developer, requirement: str) -> str:
    """The sha256 of what pip on the developer machine downloads for a requirement."""
    result = as_dev(developer, f"rm -rf /tmp/got && python3 -m pip download -q --no-deps "
                               f"--no-cache-dir -d /tmp/got '{requirement}' && sha256sum /tmp/got/*")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.decode().split("\n")
    assert len([line for line in lines if line.strip()]) == 1, lines
    return lines[0].split()[0]


def test_the_plain_account_cannot_shadow_a_published_release(guarded, index, developer, tmp_path):
    original = harness.build_wheel("ppc-shadowed", "1.0", tmp_path / "admin")
    code, output = twine(developer, [original], env=as_admin(index))
    assert code == 0, output
    build_tag = harness.build_wheel("ppc-shadowed", "1.0", tmp_path / "evil", build="1", value=666)
    platform = harness.build_wheel("ppc-shadowed", "1.0", tmp_path / "evil", value=666,
                                   tag="cp311-cp311-manylinux_2_17_x86_64")
    for shadow in (build_tag, platform):
        code, output = twine(developer, [shadow])
        assert code != 0 and "403" in output, output
        assert "ppc-shadowed belongs to admin and the admins: client may not upload to it" \
            in output, output
    listing = index.request("/simple/ppc-shadowed/").body.decode()
    assert build_tag.name not in listing and platform.name not in listing
    assert downloaded(developer, "ppc-shadowed==1.0") == sha256(original)
    installed = as_dev(developer, "rm -rf ~/v && python3 -m venv ~/v && ~/v/bin/pip install -q "
                                  "--no-cache-dir ppc-shadowed==1.0 && ~/v/bin/python -c "
                                  "'import ppc_shadowed; print(ppc_shadowed.VALUE)'")
    assert installed.stdout.decode().strip() == "42", installed.stdout + installed.stderr


def test_a_project_from_before_owners_belongs_to_its_recorded_uploader(guarded, developer, tmp_path):
    code, output = twine(developer, [harness.build_wheel("ppc-legacy", "2.0", tmp_path)])
    assert code != 0 and "ppc-legacy belongs to admin and the admins" in output, output


def test_an_owner_publishes_sdist_and_wheels_in_one_run_and_grants_hold(
        guarded, index, developer, make_dists, tmp_path):
    release = [*make_dists("ppc-owned", "1.0"),
               harness.build_wheel("ppc-owned", "1.0", tmp_path, tag="cp311-cp311-manylinux_2_17_x86_64")]
    code, output = twine(developer, release)
    assert code == 0, output
    listing = index.request("/simple/ppc-owned/").body.decode()
    assert all(path.name in listing for path in release)
    # ci owns nothing of it; acme-* is reserved for ci: no one else may be its first.
    ci = {"TWINE_USERNAME": "ci", "TWINE_PASSWORD": index.password("ci")}
    code, output = twine(developer, [harness.build_wheel("ppc-owned", "2.0", tmp_path)], env=ci)
    assert code != 0 and "ppc-owned belongs to client and the admins: ci may not" in output, output
    for spelled in ("acme-lib", "ACME_Lib", "acme.lib"):
        code, output = twine(developer, [harness.build_wheel(spelled, "1.0", tmp_path)])
        assert code != 0 and ("acme-lib is reserved for ci and the admins by ppc.owners: "
                              "client may not create it") in output, output
    code, output = twine(developer, [harness.build_wheel("acme-lib", "1.0", tmp_path)], env=ci)
    assert code == 0, output
    code, output = twine(developer, [harness.build_wheel("acme-lib", "2.0", tmp_path)])
    assert code != 0 and "acme-lib belongs to ci and the admins: client may not" in output, output


def test_a_release_closes_after_its_window_but_for_admins(guarded, index, developer, make_dists,
                                                          tmp_path):
    sdist, wheel = make_dists("ppc-window", "1.0")
    code, output = twine(developer, [sdist])
    assert code == 0, output
    time.sleep(WINDOW + 1)
    code, output = twine(developer, [wheel])
    assert code != 0 and "403" in output and "ppc-window 1.0 was published at" in output, output
    assert "is closed: files are added to a release only within 15 seconds of its first one" \
        in output
    # Every other spelling of 1.0 is that release: `pip install ppc-window==1.0` would take
    # a local version (1.0+evil) and prefer it.
    for spelling in ("1.0+evil", "1.0.0", "1.0.0+evil", "0!1.0+evil"):
        evil = harness.build_wheel("ppc-window", spelling, tmp_path / spelling, value=666)
        code, output = twine(developer, [evil])
        assert code != 0 and "403" in output and "was published at" in output, (spelling, output)
        assert "is closed" in output, (spelling, output)
    code, output = twine(developer, make_dists("ppc-window", "1.1"))
    assert code == 0, output
    code, output = twine(developer, [wheel], env=as_admin(index))
    assert code == 0, output
    assert downloaded(developer, "ppc-window==1.0") == sha256(wheel)  # pip takes the wheel


def pip_install(developer, requirement: str):
    return as_dev(developer, f"rm -rf ~/p && python3 -m venv ~/p && ~/p/bin/pip install -v "
                             f"--no-cache-dir '{requirement}' 2>&1")


def test_private_names_never_fall_back_to_pypi(guarded, index, developer):
    for path in ("/simple/acme-unpublished/", "/simple/ACME_Unpublished/"):
        response = index.request(path)
        assert response.status == 404, response
        assert b"acme-unpublished is a private name of this index" in response.body
    # A name nobody holds and no pattern covers still goes to PyPI (fallback: redirect).
    public = index.request("/simple/some-public-project/")
    assert (public.status, public.headers.get("location")) == (
        302, "https://pypi.org/simple/some-public-project/")
    install = pip_install(developer, "acme-unpublished")
    output = install.stdout.decode()
    assert install.returncode != 0 and "No matching distribution found for acme-unpublished" \
        in output and "pypi.org" not in output, output


def test_a_deleted_project_never_falls_back_and_keeps_its_owner(
        guarded, index, developer, make_dists, tmp_path):
    sdist, _ = make_dists("ppc-gone", "1.0")
    code, output = twine(developer, [sdist])
    assert code == 0, output
    deleted = index.request(f"/api/package/ppc-gone/{sdist.name}", "admin", method="DELETE")
    assert deleted.status == 200, deleted
    gone = index.request("/simple/ppc-gone/")
    assert gone.status == 404 and b"ppc-gone is a private name" in gone.body, gone
    install = pip_install(developer, "ppc-gone")
    assert install.returncode != 0 and b"pypi.org" not in install.stdout
    ci = {"TWINE_USERNAME": "ci", "TWINE_PASSWORD": index.password("ci")}
    code, output = twine(developer, [harness.build_wheel("ppc-gone", "2.0", tmp_path)], env=ci)
    assert code != 0 and "ppc-gone belongs to client and the admins" in output, output


def test_status_shows_the_fallback_and_the_private_names(guarded, index, fab):
    result = fab("status", host=index.host, settings=index.guarded())
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if " publishing " in line)
    assert ("fallback redirect: a name the index never held is redirected to PyPI; private "
            "names: acme-*, and every project ever published here; a release closes 15 s "
            "after its first file; owners granted: acme-*: ci") in line


def test_a_rollback_never_brings_back_a_removed_account_or_yesterdays_rules(guarded, index, fab):
    # Yesterday: an account more, looser rules (no private names, no owners granted, a
    # day's window) and a server of other options (its largest request); today takes
    # them away.
    yesterday = {**index.guarded(), "users": ["client", "ci", "temp"], "private_names": [],
                 "owners": {}, "release_window": "24h", "max_upload_size": "512m"}
    for settings in (yesterday, index.guarded()):
        result = fab("deploy", host=index.host, settings=settings)
        assert result.returncode == 0, result.stdout + result.stderr
    temp_login = ("temp", index.password("temp"))
    assert index.request("/simple/", user=None, auth_override=temp_login).status == 401

    rolled = fab("rollback", host=index.host, settings=index.guarded())
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rolled back to" in rolled.stdout
    assert index.request("/simple/", user=None, auth_override=temp_login).status == 401
    assert index.request("/simple/", "client").status == 200
    config = index.host.out("cat /etc/pypicloud/config.ini")
    assert "user.temp" not in config and "user.client" in config
    assert f"max_request_body_size = {512 * 1024 ** 2}" in config  # the retired server's own
    # The server that ran yesterday, today's rules: acme-* stays home (yesterday it went
    # to PyPI), ci owns it, and a release closes after WINDOW seconds.
    assert f"ppc_guard.release_window = {WINDOW}\n" in config + "\n"
    assert "ppc_guard.private_names = acme-*" in config and "acme-* = ci" in config
    private = index.request("/simple/acme-never-here/")
    assert private.status == 404 and b"acme-never-here is a private name" in private.body, private

    forward = fab("deploy", host=index.host, settings=index.guarded())
    assert forward.returncode == 0, forward.stdout + forward.stderr
    assert index.request("/simple/", user=None, auth_override=temp_login).status == 401


def test_a_preview_shows_no_credential_of_any_service(guarded, index, start_host, fab):
    """--dry shows the user's files in its diffs: their other services' tokens too."""
    host = start_host("supply-dry", kind="client", add_hosts={NAME: index.host.address})
    host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh ~dev/.config/pip "
              "~dev/.config/pypoetry && cp /root/.ssh/authorized_keys ~dev/.ssh/")
    secrets = {".netrc": "machine github.com login a password ghp_SECRET1\n",
               ".config/pypoetry/auth.toml": '[pypi-token]\npypi = "pypi-SECRET2"\n',
               ".config/pip/pip.conf": "[global]\nextra-index-url = https://:glpat-SECRET3@gitlab.example/simple/\n",
               ".pypirc": "[distutils]\nindex-servers = corp\n\n[corp]\nrepository = https://u:SECRET4@corp.example/\n"}
    for path, content in secrets.items():
        host.exec(f"cat > ~dev/{path}", input=content.encode())
    host.exec("chown -R dev: ~dev")
    preview = fab("--dry", "clients.configure", "--all-tools", host=f"dev@127.0.0.1:{host.port}",
                  settings=index.guarded())
    assert preview.returncode == 0, preview.stdout + preview.stderr
    shown = preview.stdout + preview.stderr
    for path in secrets:
        assert f"/home/dev/{path}" in shown, path  # each file is in the preview...
    assert "SECRET" not in shown and index.password("client") not in shown  # ...no secret is
    assert shown.count("<redacted>") >= 4


def test_a_host_account_with_the_servers_uid_stops_the_deploy(guarded, index, fab):
    """config.ini belongs to uid 10001 (the container must read it): an account of the
    host with that uid could read every hash and secret in it."""
    index.host.exec("useradd --uid 10001 --no-create-home intruder")
    try:
        before = index.host.out("sha256sum /etc/pypicloud/config.ini; "
                                "docker inspect --format '{{.State.StartedAt}}' pypicloud")
        result = fab("deploy", host=index.host, settings={**index.guarded(), "fallback": "none"})
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().endswith(
            "the account 'intruder' on " + index.host.target.split("@")[1] + " has uid 10001, "
            "which owns config.ini (password hashes, session keys) and the packages: give it "
            "another uid (usermod -u) and run again"), result.stderr
        assert index.host.out("sha256sum /etc/pypicloud/config.ini; docker inspect --format "
                              "'{{.State.StartedAt}}' pypicloud") == before
    finally:
        index.host.exec("userdel intruder")


def test_one_upload_limit_holds_for_nginx_and_the_server(guarded, index, developer, fab, tmp_path):
    limited = fab("deploy", host=index.host, settings={**index.guarded(), "max_upload_size": "1m"})
    assert limited.returncode == 0, limited.stdout + limited.stderr
    assert "max_request_body_size = 1048576" in index.host.out("cat /etc/pypicloud/config.ini")
    small = harness.build_wheel("ppc-sizes", "1.0", tmp_path / "small", payload=os.urandom(500_000))
    big = harness.build_wheel("ppc-sizes", "1.1", tmp_path / "big", payload=os.urandom(1_500_000))
    code, output = twine(developer, [small])
    assert code == 0, output
    code, output = twine(developer, [big])
    assert code != 0 and "413" in output, output
    # pypicloud's own server holds the same limit (a client on the host, past nginx): it
    # answers a body announced too large before a byte of it is sent.
    direct = index.host.exec(
        "python3 -c 'import http.client; c = http.client.HTTPConnection(\"127.0.0.1\", "
        f"{server_port(index.host)}); c.putrequest(\"POST\", \"/simple/\"); "
        "c.putheader(\"Content-Length\", \"1500000\"); c.endheaders(); "
        "print(c.getresponse().status)'", check=False)
    assert direct.stdout.decode().strip() == "413", direct
    unlimited = fab("deploy", host=index.host, settings=index.guarded())
    assert unlimited.returncode == 0, unlimited.stdout + unlimited.stderr
    code, output = twine(developer, [big])
    assert code == 0, output


def test_an_account_stores_no_more_than_its_quota(guarded, index, developer, fab, tmp_path):
    capped = fab("deploy", host=index.host, settings={**index.guarded(), "account_quota": "2m"})
    assert capped.returncode == 0, capped.stdout + capped.stderr
    ci = {"TWINE_USERNAME": "ci", "TWINE_PASSWORD": index.password("ci")}  # holds a few KB
    first = harness.build_wheel("ppc-quota", "1.0", tmp_path, payload=os.urandom(1_200_000))
    code, output = twine(developer, [first], env=ci)
    assert code == 0, output
    second = harness.build_wheel("ppc-quota-two", "1.0", tmp_path, payload=os.urandom(1_000_000))
    code, output = twine(developer, [second], env=ci)
    assert code != 0 and "413" in output and "the projects of ci hold " in output and \
        "of its 2.0 MiB (ppc.account_quota): this file of" in output, output
    assert b"ppc_quota_two" not in index.request("/simple/ppc-quota-two/").body
    # An admin has no cap; and the index keeps serving what it holds.
    admin = {"TWINE_USERNAME": "admin", "TWINE_PASSWORD": index.password("admin")}
    big = harness.build_wheel("ppc-quota-admin", "1.0", tmp_path, payload=os.urandom(3_000_000))
    code, output = twine(developer, [big], env=admin)
    assert code == 0, output
    assert b"ppc_quota-1.0" in index.request("/simple/ppc-quota/").body
    uncapped = fab("deploy", host=index.host, settings=index.guarded())
    assert uncapped.returncode == 0, uncapped.stdout + uncapped.stderr
    code, output = twine(developer, [second], env=ci)
    assert code == 0, output


def test_a_flood_of_wrong_passwords_is_throttled_and_a_right_one_gets_in(guarded, index, developer):
    """Last in this module: it leaves this machine's address throttled for a minute."""
    # A restart (every deploy, rollback or crash) empties the server's memory of logins:
    # the right password below is one it has not seen.
    index.host.exec("docker restart pypicloud")
    harness.wait_for(lambda: index.request("/health").status == 200, "pypicloud restarted", 60)
    statuses, took = [], []
    for number in range(12):
        started = time.monotonic()
        statuses.append(index.request("/simple/", auth_override=("client", f"guess-{number}"),
                                      timeout=60).status)
        took.append(time.monotonic() - started)
    # At most 10 wrong logins a minute are checked (earlier tests here sent a few), then
    # none: the address gets 429, trickled out by nginx so that it cannot ask again at once
    # (32 bytes a second, about 10 s: more than 5 s however idle the machine), and every
    # 429 takes longer than any answer before it, however busy.
    first_refused = statuses.index(429)
    assert 5 <= first_refused <= 10 and statuses == [401] * first_refused + [429] * (
        12 - first_refused), statuses
    tarpit = min(took[first_refused:])
    assert tarpit > 5 and max(took[:first_refused]) < tarpit, took
    # The right password gets in from that very address at the first try, after its one
    # slow hash, not held back with the guesses; then known, it costs no hash.
    for _ in range(2):
        started = time.monotonic()
        assert index.request("/simple/", "client").status == 200
        assert time.monotonic() - started < tarpit
    # A guess that keeps coming still gets the slow 429, checked or not.
    assert index.request("/simple/", auth_override=("client", "guess-late"), timeout=60).status == 429
    # From another address, nothing has changed.
    install = as_dev(developer, "rm -rf ~/f && python3 -m venv ~/f && ~/f/bin/pip install -q "
                                "--no-cache-dir ppc-owned==1.0")
    assert install.returncode == 0, install.stdout + install.stderr
