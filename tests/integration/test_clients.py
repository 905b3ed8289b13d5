"""Developer machines: `clients.configure` on many hosts at once, and `packages.upload`."""

from __future__ import annotations

import subprocess

import pytest

from . import harness
from .conftest import REPO, SERVER_NAME, steps

OTHER_PYPIRC = ("[distutils]\nindex-servers =\n    company\n\n"
                "[company]\nrepository = https://company.example/\nusername = me\n")
OTHER_NETRC = "machine company.example login me password company-secret\n"
# PDM builds with it; an index that PyPI cannot reach serves it like any package.
PDM_BACKEND = "pdm-backend==2.5.0"


def as_dev(host, command: str, **kwargs):
    return host.exec(command, user="dev", check=False, **kwargs)


@pytest.fixture(scope="module")
def dev_hosts(start_host, deployed):
    """Three developer machines with a user `dev`: two may sudo, the third may not."""
    hosts = []
    for number, can_sudo in ((1, True), (2, True), (3, False)):
        host = start_host(f"dev{number}", kind="client",
                          add_hosts={SERVER_NAME: deployed.host.address})
        host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
                  "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh")
        if can_sudo:
            host.exec("echo 'dev ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dev")
        hosts.append(host)
    as_dev(hosts[0], "cat > ~/.pypirc && chmod 600 ~/.pypirc", input=OTHER_PYPIRC.encode())
    as_dev(hosts[0], "cat > ~/.netrc && chmod 600 ~/.netrc", input=OTHER_NETRC.encode())
    return hosts


def download_wheel(requirement: str, directory) -> list:
    """A pinned wheel, fetched on this machine (test hosts cannot reach PyPI)."""
    fetched = subprocess.run([str(REPO / ".venv" / "bin" / "pip"), "download", "-q", "--no-deps",
                              "-d", str(directory), requirement],
                             capture_output=True, text=True, check=False)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    return list(directory.glob("*.whl"))


def targets(hosts) -> str:
    return ",".join(f"dev@127.0.0.1:{host.port}" for host in hosts)


def table(output: str) -> dict[str, str]:
    """{host: ok|changed|failed} from the table that ends a many-hosts run."""
    rows = [line.split(None, 2) for line in output.split("\nhost ", 1)[-1].splitlines()[1:]]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


TOOL_FILES = "~/.config/uv/uv.toml ~/.netrc ~/.config/pypoetry/config.toml " \
             "~/.config/pypoetry/auth.toml ~/.config/pdm/config.toml"


def mtimes(host) -> str:
    return as_dev(host, f"stat -c '%n %Y' ~/.pypirc ~/.config/pip/pip.conf {TOOL_FILES}"
                  ).stdout.decode()


@pytest.fixture(scope="module")
def configured(fab, deployed, dev_hosts):
    with harness.closed_port() as port:
        unreachable = f"dev@127.0.0.1:{port}"
        return fab("clients.configure", host=f"{targets(dev_hosts)},{unreachable}",
                   settings=deployed.settings()), unreachable


def test_configure_runs_every_host_and_reports_the_unreachable_one(configured, dev_hosts):
    result, unreachable = configured
    assert result.returncode != 0
    outcomes = table(result.stdout)
    assert [outcomes[f"dev@127.0.0.1:{host.port}"] for host in dev_hosts] == ["changed"] * 3, \
        result.stdout
    assert outcomes[unreachable] == "failed"
    assert f"cannot reach {unreachable.split('@')[1]}" in result.stdout
    assert result.stderr.strip() == f"Error: 1 of 4 hosts failed: {unreachable}"
    assert "Traceback" not in result.stdout + result.stderr


def test_twine_and_pip_work_with_no_flags(configured, dev_hosts, make_dists):
    for number, host in enumerate(dev_hosts):
        host.copy_in(make_dists("ppc-client-sample", f"1.0.{number}"), "/tmp/dist")
        host.exec("chown -R dev: /tmp/dist")
        upload = as_dev(host, "twine upload --disable-progress-bar -r internal /tmp/dist/*")
        assert upload.returncode == 0, upload.stdout + upload.stderr
    for host in dev_hosts:
        install = as_dev(host, "python3 -m venv ~/venv && ~/venv/bin/pip install --no-cache-dir "
                               "ppc-client-sample==1.0.0")
        assert install.returncode == 0, install.stdout + install.stderr
        assert b"Successfully installed ppc-client-sample-1.0.0" in install.stdout


def test_credential_files_are_private_and_other_repositories_stay(configured, dev_hosts):
    for host in dev_hosts:
        modes = as_dev(host, f"stat -c '%a %U' ~/.pypirc ~/.config/pip/pip.conf {TOOL_FILES}")
        assert modes.stdout.decode().split() == ["600", "dev"] * 7, modes.stderr
    first = dev_hosts[0]
    pypirc = as_dev(first, "cat ~/.pypirc").stdout.decode()
    assert "[company]" in pypirc and "repository = https://company.example/" in pypirc
    assert as_dev(first, "cat ~/.pypirc.ppc-tasks-backup").stdout.decode() == OTHER_PYPIRC
    assert as_dev(first, "cat ~/.netrc").stdout.decode().startswith(OTHER_NETRC)


def run_as_dev(host, command: str) -> str:
    result = as_dev(host, f"set -e; {command}")
    assert result.returncode == 0, (command, result.stdout.decode() + result.stderr.decode())
    return result.stdout.decode() + result.stderr.decode()


def test_uv_poetry_and_pdm_publish_and_install_with_no_flags(configured, dev_hosts, tmp_path):
    """What a developer types, on a machine clients.configure set up: no credentials,
    no certificate, no index on the command line or in the environment."""
    host = dev_hosts[0]
    host.copy_in(download_wheel(PDM_BACKEND, tmp_path), "/tmp/backend")
    host.exec("chown -R dev: /tmp/backend")

    # uv: publish a project and a wheel (PDM's build backend), then install with uv pip.
    run_as_dev(host, "uv init -q --lib --name ppc-uv-sample ~/uv-sample && cd ~/uv-sample "
                     "&& uv build -q && uv publish && uv publish /tmp/backend/*.whl")
    # Poetry: publish to the `internal` repository.
    run_as_dev(host, "poetry new -q ~/ppc-poetry-sample && cd ~/ppc-poetry-sample "
                     "&& poetry build -q && poetry publish -r internal")
    # PDM: publish to `internal`; its build fetches pdm-backend from the default source.
    run_as_dev(host, "mkdir ~/ppc-pdm-sample && cd ~/ppc-pdm-sample "
                     "&& pdm init -n -q --backend pdm-backend --dist && pdm publish -r internal")

    uv_add = run_as_dev(host, "cd ~/uv-sample && uv add -v ppc-poetry-sample ppc-pdm-sample")
    assert f"https://{SERVER_NAME}/simple/" in uv_add and "pypi.org" not in uv_add
    uv_pip = run_as_dev(host, "cd ~/uv-sample && uv venv -q ~/venv-uv "
                              "&& . ~/venv-uv/bin/activate && uv pip install -v ppc-uv-sample")
    assert "+ ppc-uv-sample==0.1.0" in uv_pip and "pypi.org" not in uv_pip
    poetry_add = run_as_dev(host, f"cd ~/ppc-poetry-sample "
                                  f"&& poetry source add -q --priority=primary internal "
                                  f"https://{SERVER_NAME}/simple/ && poetry add -vvv ppc-uv-sample")
    assert "ppc-uv-sample" in poetry_add
    # -vvv: every connection Poetry opens and every request it sends (urllib3's log).
    assert f'https://{SERVER_NAME}:443 "GET /simple/ppc-uv-sample/' in poetry_add
    assert "pypi.org" not in poetry_add
    pdm_add = run_as_dev(host, "cd ~/ppc-pdm-sample && pdm add -v ppc-uv-sample")
    assert f"https://{SERVER_NAME}/simple/ppc-uv-sample/" in pdm_add
    assert "pypi.org/simple" not in pdm_add


def test_uv_without_sudo_trusts_the_index_with_ssl_cert_file(configured, dev_hosts):
    """No sudo, so the CA is not in the system store: uv (which reads no CA file from
    its config) verifies with the user's bundle named in SSL_CERT_FILE, as reported."""
    result, _ = configured
    bundle = f"/home/dev/.config/ppc-tasks/{SERVER_NAME}-ca-bundle.pem"
    assert f"SSL_CERT_FILE={bundle}" in result.stdout
    host = dev_hosts[2]
    run_as_dev(host, f"uv venv -q ~/venv-uv && . ~/venv-uv/bin/activate "
                     f"&& SSL_CERT_FILE={bundle} uv pip install ppc-client-sample==1.0.2")
    unverified = as_dev(host, ". ~/venv-uv/bin/activate && uv pip install --no-cache "
                              "ppc-client-sample==1.0.1")
    assert unverified.returncode != 0 and b"UnknownIssuer" in unverified.stderr


def test_ca_goes_to_the_system_store_with_sudo_and_a_user_bundle_without(configured, dev_hosts):
    store = f"/usr/local/share/ca-certificates/ppc-tasks-{SERVER_NAME}.crt"
    bundle = f"~/.config/ppc-tasks/{SERVER_NAME}-ca-bundle.pem"
    with_sudo, without = dev_hosts[0], dev_hosts[2]
    assert with_sudo.exec(f"test -f {store}", check=False).returncode == 0
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in as_dev(
        with_sudo, "cat ~/.config/pip/pip.conf").stdout.decode()
    assert without.exec(f"test -f {store}", check=False).returncode != 0
    assert as_dev(without, f"test -f {bundle}").returncode == 0


def test_second_run_changes_nothing(configured, fab, deployed, dev_hosts):
    before = [mtimes(host) for host in dev_hosts]

    again = fab("clients.configure", host=targets(dev_hosts), settings=deployed.settings())

    assert again.returncode == 0, again.stdout + again.stderr
    assert set(table(again.stdout).values()) == {"ok"}
    assert set(steps(again.stdout).values()) == {"unchanged"}
    assert [mtimes(host) for host in dev_hosts] == before


def test_pip_that_trusts_the_system_store_gets_no_cert_line(configured, fab, deployed, dev_hosts,
                                                            tmp_path):
    """Debian 12's pip 23 needs pip.conf's `cert`; pip 24.2+ on Python 3.10+ reads the
    system store (truststore), where certs.trust put the CA: the line goes."""
    host = dev_hosts[1]
    host.copy_in(download_wheel("pip==24.3.1", tmp_path), "/tmp/newer-pip")
    upgraded = as_dev(host, "python3 -m pip install -q --user --break-system-packages "
                            "/tmp/newer-pip/pip-*.whl")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

    result = fab("clients.configure", host=targets([host]), settings=deployed.settings())
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(result.stdout)["clients.pip"] == "changed"
    assert "cert" not in as_dev(host, "cat ~/.config/pip/pip.conf").stdout.decode()
    assert "ca_cert = /etc/ssl/certs/ca-certificates.crt" in as_dev(
        host, "cat ~/.pypirc").stdout.decode()  # twine reads certifi only
    download = as_dev(host, "python3 -m pip download -q --no-deps --no-cache-dir -d /tmp/got "
                            "ppc-client-sample==1.0.0")
    assert download.returncode == 0, download.stdout + download.stderr


def test_twenty_one_hosts_at_once(fab, deployed, start_host):
    """21 targets in one run: users of one machine, so each is a separate SSH login. No
    tool is on the machine's PATH; one user has uv where its installer puts it."""
    machine = start_host("many", kind="client", add_hosts={SERVER_NAME: deployed.host.address})
    users = [f"u{number:02}" for number in range(1, 22)]
    machine.exec(" && ".join(f"useradd -m {user} && mkdir ~{user}/.ssh && cp /root/.ssh/authorized_keys "
                             f"~{user}/.ssh/ && chown -R {user}: ~{user}/.ssh" for user in users))
    machine.exec("rm /usr/local/bin/uv /usr/local/bin/poetry /usr/local/bin/pdm "
                 "&& install -D -o u01 /opt/devtools/bin/uv ~u01/.local/bin/uv")
    hosts = ",".join(f"{user}@127.0.0.1:{machine.port}" for user in users)

    result = fab("clients.configure", host=hosts, settings=deployed.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert list(table(result.stdout).values()) == ["changed"] * 21
    for user in users:
        assert machine.out(f"stat -c %a ~{user}/.config/pip/pip.conf") == "600"
    assert machine.out("stat -c %a ~u01/.config/uv/uv.toml") == "600"
    assert machine.exec("test -e ~u02/.config/uv/uv.toml", check=False).returncode != 0
    assert "uv is not installed here (--all-tools configures it anyway)" in result.stdout


def test_packages_upload_from_the_operator_machine(configured, fab, deployed, tmp_path):
    harness.build_sample_dists("ppc-upload-sample", "2.0.0", tmp_path)
    # This machine reaches the server by its IP, which is one of the index's names.
    settings = deployed.settings(index_url=f"https://{deployed.host.address}/simple/")

    uploaded = fab("packages.upload", f"{tmp_path}/*", settings=settings)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert "ppc_upload_sample-2.0.0-py3-none-any.whl" in uploaded.stdout

    again = fab("packages.upload", f"{tmp_path}/*.whl", settings=settings)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "Error: ppc_upload_sample-2.0.0-py3-none-any.whl is already on the index, which never "
        "overwrites a release: build a new version")

    missing = fab("packages.upload", f"{tmp_path}/nothing-*", settings=settings)
    assert missing.returncode == 1 and "no files match" in missing.stderr


def test_a_broken_config_file_fails_that_host_in_one_line_and_changes_nothing(
        configured, fab, deployed, dev_hosts):
    host = dev_hosts[1]
    as_dev(host, "cp ~/.config/pdm/config.toml /tmp/pdm.toml && echo '[pypi' >> ~/.config/pdm/config.toml")
    before = mtimes(host)
    try:
        result = fab("clients.configure", host=targets([host]), settings=deployed.settings())
        after = mtimes(host)
    finally:
        as_dev(host, "cp /tmp/pdm.toml ~/.config/pdm/config.toml")
    assert result.returncode == 1
    assert table(result.stdout) == {f"dev@127.0.0.1:{host.port}": "failed"}
    assert "/home/dev/.config/pdm/config.toml cannot be read (" in result.stdout
    assert "fix or move it, then configure again" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert after == before


def test_unconfigure_puts_clients_back(configured, fab, deployed, dev_hosts):
    result = fab("clients.unconfigure", host=targets(dev_hosts), settings=deployed.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert set(table(result.stdout).values()) == {"changed"}
    first = dev_hosts[0]
    assert as_dev(first, "cat ~/.pypirc").stdout.decode() == OTHER_PYPIRC
    assert as_dev(first, "cat ~/.netrc").stdout.decode() == OTHER_NETRC
    for host in dev_hosts:
        assert as_dev(host, "test -e ~/.config/pip/pip.conf").returncode != 0
        left = as_dev(host, "find ~/.config/uv ~/.config/pypoetry ~/.config/pdm -type f")
        assert left.stdout.decode().split() == [], left.stdout
        assert host.exec(f"test -e /usr/local/share/ca-certificates/ppc-tasks-{SERVER_NAME}.crt",
                         check=False).returncode != 0
    assert as_dev(dev_hosts[1], "test -e ~/.pypirc").returncode != 0
    assert as_dev(dev_hosts[2], f"test -e ~/.config/ppc-tasks/{SERVER_NAME}-ca-bundle.pem").returncode != 0
