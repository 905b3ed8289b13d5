"""The two headline commands exactly as a new user types them: hosts named by
~/.ssh/config aliases, and a ~/.fabric.yaml with nothing but what the network needs
(the proxy's CA for the image build). No -i, no -f, no server_names: the first deploy
says to take the alias as the index's name."""

from __future__ import annotations

import os
import subprocess

import pytest
from cryptography import x509

from .conftest import FAB, REPO, SYSTEM_CA_BUNDLE, steps
from .test_clients import as_dev, table


@pytest.fixture(scope="module")
def machines(start_host):
    server = start_host("pypi-internal")
    developers = []
    for name, can_sudo in (("dev1", True), ("dev2", False)):
        host = start_host(name, kind="client", add_hosts={"pypi-internal": server.address})
        host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
                  "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh")
        if can_sudo:
            host.exec("echo 'dev ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dev")
        developers.append(host)
    return server, *developers


@pytest.fixture(scope="module")
def home(tmp_path_factory, ssh_key, machines):
    server, dev1, dev2 = machines
    home = tmp_path_factory.mktemp("new-user")
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "config").write_text("".join(
        f"Host {alias}\n    HostName 127.0.0.1\n    Port {host.port}\n    User {user}\n"
        f"    IdentityFile {ssh_key}\n\n"
        for alias, host, user in (("pypi-internal", server, "root"), ("dev1", dev1, "dev"),
                                  ("dev2", dev2, "dev"))))
    (home / ".fabric.yaml").write_text(f"ppc:\n  build_ca_bundle: {SYSTEM_CA_BUNDLE}\n")
    return home


def fab(home, *args: str) -> subprocess.CompletedProcess:
    environment = {"PATH": f"{FAB.parent}:/usr/bin:/bin", "HOME": str(home),
                   "LANG": os.environ.get("LANG", "C.UTF-8")}
    return subprocess.run([str(FAB), *args], cwd=REPO, capture_output=True, text=True,
                          env=environment, timeout=900)


def test_a_first_deploy_takes_no_name_it_was_not_given(home, machines):
    """The alias is a name for this machine only, and a first deploy fixes the index's
    names for good: without server_names it asks (here, with no terminal, it cannot)."""
    server = machines[0]
    refused = fab(home, "-H", "pypi-internal", "deploy")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip() == (
        "Error: ppc.server_names: set the names clients will use (a first deploy fixes "
        "them: the CA signs for them only), or take pypi-internal with deploy "
        "--name-from-host"), refused.stderr
    assert not (home / ".local" / "state" / "ppc-tasks" / "pypi-internal").exists()
    assert server.out("ls /etc/pypicloud /var/log/ppc-tasks 2>&1 || true").count("No such") == 2


@pytest.fixture(scope="module")
def deployed_by_alias(home):
    return fab(home, "-H", "pypi-internal", "deploy", "--name-from-host")


def test_the_index_is_named_as_typed_after_h(deployed_by_alias, home):
    result = deployed_by_alias
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert all(line.startswith("[pypi-internal] ") for line in lines), result.stdout
    assert "[pypi-internal] index:       https://pypi-internal/simple/" in result.stdout
    state = home / ".local" / "state" / "ppc-tasks" / "pypi-internal"
    certificate = x509.load_pem_x509_certificate((state / "server.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(name.value) for name in names] == ["pypi-internal"]
    assert sorted(path.name for path in state.parent.iterdir()) == ["pypi-internal"]


def test_clients_find_the_index_by_themselves(deployed_by_alias, home, machines, make_dists):
    _, dev1, dev2 = machines
    configured = fab(home, "-H", "dev1,dev2", "clients.configure")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert table(configured.stdout) == {"dev1": "changed", "dev2": "changed"}
    assert {step for step in steps(configured.stdout)} >= {"clients.pypirc", "clients.pip"}

    dev1.copy_in(make_dists("ppc-as-typed", "1.0.0"), "/tmp/dist")
    dev1.exec("chown -R dev: /tmp/dist")
    upload = as_dev(dev1, "twine upload --disable-progress-bar -r internal /tmp/dist/*")
    assert upload.returncode == 0, upload.stdout + upload.stderr
    assert b"https://pypi-internal/simple/" in upload.stdout

    install = as_dev(dev2, "python3 -m venv ~/venv && ~/venv/bin/pip install --no-cache-dir "
                           "ppc-as-typed")
    assert install.returncode == 0, install.stdout + install.stderr
    assert b"Successfully installed ppc-as-typed-1.0.0" in install.stdout
    assert b"https://pypi-internal/" in install.stdout
    # uv: no flags where the CA is in the system store (sudo); without sudo, the
    # SSL_CERT_FILE that the report names.
    bundle = "/home/dev/.config/ppc-tasks/pypi-internal-ca-bundle.pem"
    assert f"SSL_CERT_FILE={bundle}" in configured.stdout
    for host, environment in ((dev1, ""), (dev2, f"SSL_CERT_FILE={bundle} ")):
        uv = as_dev(host, f"uv venv -q ~/uv-venv && . ~/uv-venv/bin/activate "
                          f"&& {environment}uv pip install --no-cache ppc-as-typed")
        assert uv.returncode == 0 and b"+ ppc-as-typed==1.0.0" in uv.stderr, uv.stdout + uv.stderr


def test_certs_trust_as_the_recap_says_finds_the_index_too(deployed_by_alias, home):
    trusted = fab(home, "-H", "dev1", "certs.trust")  # dev1 trusts it since clients.configure
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert steps(trusted.stdout) == {"certs.trust": "unchanged"}
    assert "ppc-tasks-pypi-internal.crt" in trusted.stdout
