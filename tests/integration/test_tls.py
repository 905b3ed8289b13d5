"""The TLS front door: certificate, trust store, nginx, proven from a separate client."""

from __future__ import annotations

import datetime
import http.client
import re
import signal
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ppc_tasks.plans import certs
from tests.own_certificate import write_own_certificate

from . import harness, web
from .conftest import SERVER_NAME, container_started_at, password_of, steps

INDEX = f"https://{SERVER_NAME}/simple/"


def nginx_pids(host) -> str:
    """Master and worker PIDs: a reload replaces the workers."""
    return host.out("pgrep -d, nginx")


def pip_install(client, password: str, requirement: str):
    """Debian's pip on the client, over HTTPS with verification, from the index only."""
    return client.exec(f"python3 -m pip install --break-system-packages --no-cache-dir "
                       f"--force-reinstall --no-deps {requirement}", check=False,
                       env={"PIP_INDEX_URL": f"https://admin:{password}@{SERVER_NAME}/simple/"})


def answers_over_https(host) -> bool:
    """The host (resolving the index to itself) fetches /health with verification on,
    within a few seconds (nginx reloads its workers asynchronously)."""
    host.exec(f"grep -q ' {SERVER_NAME}$' /etc/hosts || echo '127.0.0.1 {SERVER_NAME}' >> /etc/hosts")
    fetch = (f"python3 -c \"import urllib.request; "
             f"urllib.request.urlopen('https://{SERVER_NAME}/health')\"")
    try:
        harness.wait_for(lambda: host.exec(fetch, check=False).returncode == 0,
                         f"https://{SERVER_NAME}/health", 15)
    except TimeoutError:
        return False
    return True


def test_deploy_sets_up_tls_and_recaps(deployed, operator_home):
    result = deployed.result
    assert result.returncode == 0, result.stderr
    assert {step: change for step, change in steps(result.stdout).items()
            if step.split(".")[0] in ("certs", "nginx")} == {
        "certs.ca": "changed", "certs.server": "changed", "certs.install": "changed",
        "certs.metrics": "changed", "certs.trust": "changed", "nginx.install": "changed",
        "nginx.site": "changed",
        "nginx.service": "changed", "nginx.boot": "changed"}
    state = operator_home / "state" / SERVER_NAME
    assert f"index:       {INDEX}" in result.stdout
    assert str(state / "secrets.json") in result.stdout
    assert str(state / "ca.crt") in result.stdout
    assert oct((state / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_server_files_and_trust(deployed):
    server = deployed.host
    assert server.out(f"stat -c '%a %U' /etc/ssl/ppc-tasks/{SERVER_NAME}.key") == "600 root"
    assert server.out(f"stat -c '%a' /usr/local/share/ca-certificates/ppc-tasks-{SERVER_NAME}.crt") == "644"
    # The server itself now trusts the index (update-ca-certificates ran).
    assert answers_over_https(server)


def test_ca_key_never_reaches_the_host(deployed, operator_home):
    ca_key_line = (operator_home / "state" / SERVER_NAME / "ca.key").read_text().splitlines()[1]
    # Every file of the host, Docker's storage with it (image layers, containers, volumes);
    # not the kernel's views (proc, sys, dev, network namespaces), which are no files.
    found = deployed.host.exec(
        f"grep -rlF '{ca_key_line}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "
        f"--exclude-dir=netns", check=False)
    assert found.stdout.decode().strip() == ""
    # grep says 1 when it read everything and found nothing; 2 when it could not read
    # something, which fails the test, but for a file that went away while it searched.
    unread = [line for line in found.stderr.decode().splitlines()
              if not line.endswith(": No such file or directory")]
    assert found.returncode in (1, 2) and unread == [], found.stderr.decode()[-2000:]


def test_client_trusting_the_ca_uploads_and_installs_over_https(deployed, fab, client,
                                                                 operator_home, make_dists):
    password = password_of(operator_home)
    # Before certs.trust the client refuses the index's certificate...
    refused = pip_install(client, password, "ppc-tls-sample")
    assert refused.returncode != 0
    assert b"CERTIFICATE_VERIFY_FAILED" in refused.stdout + refused.stderr

    trusted = fab("certs.trust", host=client, settings=deployed.settings())
    assert trusted.returncode == 0, trusted.stderr
    assert steps(trusted.stdout) == {"certs.trust": "changed"}

    # ...after it, Debian's twine and pip verify it with no extra flags. The wheel is
    # bigger than nginx's default upload limit (1 MB): client_max_body_size 0 holds.
    client.copy_in(make_dists("ppc-tls-sample", payload_bytes=3_000_000), "/tmp/dist")
    upload = client.exec(f"twine upload --non-interactive --repository-url {INDEX} /tmp/dist/*",
                         check=False, env={"TWINE_USERNAME": "admin", "TWINE_PASSWORD": password})
    assert upload.returncode == 0, upload.stdout + upload.stderr
    install = pip_install(client, password, "ppc-tls-sample==0.1.0")
    assert install.returncode == 0, install.stdout + install.stderr
    assert b"Successfully installed ppc-tls-sample-0.1.0" in install.stdout

    # pypicloud learned the scheme and name from nginx: its links are https:// links.
    listing = client.out("python3 -", env={"PW": password}, input=(
        "import base64, os, urllib.request\n"
        "auth = base64.b64encode(b'admin:' + os.environb[b'PW']).decode()\n"
        f"request = urllib.request.Request('{INDEX}ppc-tls-sample/', "
        "headers={'Authorization': 'Basic ' + auth})\n"
        "print(urllib.request.urlopen(request).read().decode())\n").encode())
    links = re.findall(r'href="([^"]+)"', listing)
    assert links and all(link.startswith(f"https://{SERVER_NAME}/") for link in links), listing

    again = fab("certs.trust", host=client, settings=deployed.settings())
    assert steps(again.stdout) == {"certs.trust": "unchanged"}


@pytest.mark.parametrize("path", ["/", "/simple/ppc-sample/", "/api/package/"])
def test_plain_http_only_redirects(deployed, path):
    connection = http.client.HTTPConnection(deployed.host.address, 80, timeout=10)
    connection.request("GET", path, headers={"Host": SERVER_NAME,
                                             "Authorization": "Basic YWRtaW46eA=="})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 301
    assert response.getheader("Location") == f"https://{SERVER_NAME}{path}"
    assert b"ppc-sample" not in body and b"pypicloud" not in body.lower()


def test_plain_http_redirects_no_other_name(deployed):
    """Another name gets no redirect: dropped by ours, or answered by the host's default
    site (Debian's nginx has one) as if the index were not there."""
    for name in ("evil.example", "pypi.test.evil.example"):
        connection = http.client.HTTPConnection(deployed.host.address, 80, timeout=10)
        connection.request("GET", "/simple/", headers={"Host": name})
        try:
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            continue
        assert response.status < 300 or response.status >= 400, response.status
        assert response.getheader("Location") is None and b"pypicloud" not in response.read()
    # Ours alone, as when the host's nginx has no default site of its own.
    site = deployed.host.out("cat /etc/nginx/conf.d/ppc-tasks.conf")
    default = "listen 80 default_server;"
    deployed.host.exec("mkdir -p /root/sites-aside && mv /etc/nginx/sites-enabled/* "
                       "/root/sites-aside/ 2>/dev/null; nginx -s reload && sleep 1")
    try:
        assert default not in site
        connection = http.client.HTTPConnection(deployed.host.address, 80, timeout=10)
        connection.request("GET", "/simple/", headers={"Host": "evil.example"})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            connection.getresponse()  # dropped without an answer
    finally:
        deployed.host.exec("mv /root/sites-aside/* /etc/nginx/sites-enabled/ 2>/dev/null; "
                           "nginx -s reload && sleep 1", check=False)


@pytest.mark.parametrize("path", ["/", "/simple/", "/health", "/simple/no-such-project/"])
def test_no_page_is_sniffed_or_framed(deployed, operator_home, path):
    answer = web.request(deployed.host.address, path, ca=operator_home / "state" / SERVER_NAME /
                         "ca.crt", sni=SERVER_NAME, host=SERVER_NAME,
                         auth=("admin", password_of(operator_home)))
    assert answer.status in (200, 302, 404), answer  # 302: fallback redirect, to PyPI
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


def test_second_deploy_reloads_and_restarts_nothing(deployed, fab, operator_home):
    server = deployed.host
    pids = nginx_pids(server)
    started = container_started_at(server)

    again = fab("deploy", host=server, settings=deployed.settings())

    assert again.returncode == 0, again.stderr
    assert set(steps(again.stdout).values()) == {"unchanged"}, again.stdout
    assert "done: 0 changed," in again.stdout
    assert nginx_pids(server) == pids
    assert container_started_at(server) == started


def test_rejected_nginx_config_keeps_the_previous_site(deployed, fab, operator_home):
    server = deployed.host
    site = server.out("cat /etc/nginx/conf.d/ppc-tasks.conf")
    pids = nginx_pids(server)

    broken = fab("deploy", "--skip-build", host=server, settings=deployed.settings(tls_host_cert="/etc/ssl/missing.crt", tls_host_key="/etc/ssl/missing.key"))

    assert broken.returncode != 0
    assert "Traceback" not in broken.stdout + broken.stderr
    assert broken.stderr.strip().count("\n") == 0
    assert "nginx rejected" in broken.stderr and "/etc/ssl/missing.crt" in broken.stderr
    assert server.out("cat /etc/nginx/conf.d/ppc-tasks.conf") == site
    assert nginx_pids(server) == pids
    assert answers_over_https(server)  # still, with the previous certificate


def test_a_name_the_ca_may_not_sign_for_stops_before_the_host_changes(deployed, fab):
    server = deployed.host
    site = server.out("stat -c %Y /etc/nginx/conf.d/ppc-tasks.conf /etc/pypicloud/config.ini")
    settings = deployed.settings()
    settings["server_names"] = [*settings["server_names"], "other.test"]

    result = fab("deploy", host=server, settings=settings)

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "may not sign for other.test" in result.stderr
    assert server.out("stat -c %Y /etc/nginx/conf.d/ppc-tasks.conf /etc/pypicloud/config.ini") == site


def test_bring_your_own_certificate_and_back(deployed, fab, operator_home, tmp_path):
    """A certificate from a company CA replaces ours; the default brings ours back."""
    server = deployed.host
    files = write_own_certificate(tmp_path, (SERVER_NAME, server.address))
    own = deployed.settings(tls_cert=str(files["cert"]), tls_key=str(files["key"]),
                            tls_ca_cert=str(files["ca"]))

    result = fab("deploy", "--skip-build", host=server, settings=own)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "certs.ca" not in steps(result.stdout)  # no local CA involved
    assert {step: steps(result.stdout)[step] for step in ("certs.install", "certs.trust",
            "nginx.service")} == {"certs.install": "changed", "certs.trust": "changed",
                                  "nginx.service": "changed"}
    def serves_the_new_certificate() -> bool:  # nginx reloads its workers asynchronously
        served = server.out("python3 -c \"import ssl; "
                            "print(ssl.get_server_certificate(('127.0.0.1', 443)))\"")
        return served.strip() == files["cert"].read_text().strip()
    harness.wait_for(serves_the_new_certificate, "nginx to serve the new certificate", 15)
    assert answers_over_https(server)  # its trust store now holds the company CA

    back = fab("deploy", "--skip-build", host=server, settings=deployed.settings())
    assert back.returncode == 0, back.stdout + back.stderr
    assert steps(back.stdout)["certs.install"] == "changed"
    assert answers_over_https(server)


def test_an_index_named_by_its_address_alone_serves_https_and_its_ca_names_no_host(
        deployed, fab, start_host, operator_home, tmp_path):
    host = start_host("by-address")
    result = fab("deploy", host=host, settings=deployed.settings(server_names=[host.address]))
    assert result.returncode == 0, result.stdout + result.stderr
    # The host trusts the CA now (certs.trust): its own clients verify https://ADDRESS/.
    fetch = (f"python3 -c \"import urllib.request; "
             f"print(urllib.request.urlopen('https://{host.address}/health').status)\"")
    assert host.out(fetch) == "200"
    # The CA may sign for no DNS name: OpenSSL on the host refuses a pypi.org certificate
    # made with the CA's key (which never leaves this machine).
    state = operator_home / "state" / host.address
    ca = x509.load_pem_x509_certificate((state / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((state / "ca.key").read_bytes(), None)
    forged, _ = certs.new_server_certificate(ca, ca_key, ("pypi.org",),
                                             datetime.datetime.now(datetime.timezone.utc))
    host.exec("cat > /tmp/forged.pem", input=certs.pem(forged))
    verdict = host.exec(f"openssl verify -CAfile /usr/local/share/ca-certificates/"
                        f"ppc-tasks-{host.address}.crt /tmp/forged.pem", check=False)
    assert verdict.returncode != 0 and b"excluded subtree violation" in verdict.stdout + \
        verdict.stderr, verdict


def test_logs_show_the_server_and_nginx_and_follow_them(deployed, fab):
    shown = fab("logs", "--lines=5", "--since=24h", host=deployed.host, settings=deployed.settings())
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert any(line.startswith("pypicloud | ") for line in shown.stdout.splitlines()), shown.stdout
    following = fab("logs", "--lines=1", "--follow", host=deployed.host,
                    settings=deployed.settings(), background=True)
    seen: list[str] = []
    reading = threading.Thread(target=lambda: seen.extend(following.stdout), daemon=True)
    reading.start()
    try:
        harness.wait_for(lambda: any(line.startswith("pypicloud | ") for line in seen),
                         "the followed log's first line", 60)
        deployed.host.exec("docker exec pypicloud sh -c 'echo ppc-logs-marker > /proc/1/fd/1'")
        harness.wait_for(lambda: "pypicloud | ppc-logs-marker\n" in seen,
                         "the marker in the followed log", 30)
    finally:
        following.send_signal(signal.SIGINT)
        errors = following.stderr.read()
        following.wait(timeout=30)
    assert following.returncode == 0 and "Traceback" not in errors, errors

    def followers() -> str:  # what the followed run started on the host
        return deployed.host.out("pgrep -af 'docker log[s] .*--follow|tai[l] -n 1 -F' || true")

    harness.wait_for(lambda: not followers(), "the host's followers to end with the run", 15)
