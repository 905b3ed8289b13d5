"""Two index hosts serve one index from S3 and a shared cache, behind a balancer: the
client, configured with clients.configure for the shared name, uploads and installs
through the balancer, and keeps installing while one index host's server is down. The
balancer tells its own figures (nginx's) to the scrape credential and metrics_allow."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from invoke.vendor import yaml

from . import harness, prometheus, web
from .conftest import SYSTEM_CA_BUNDLE, steps
from .engines import PG_PASSWORD, REDIS_PASSWORD, S3_SECRET, Stores

INDEX = "pypi-cluster.test"
HOST_NAMES = ("pypi1.cluster.test", "pypi2.cluster.test")  # each index host's own name
INSTALLS = 10  # through the balancer while an index host is down


@pytest.fixture(scope="module")
def index_home(tmp_path_factory) -> Path:
    """This module's index keeps its state (CA, secrets) in state/ here, apart from every
    other module's: a host of another index may get an address this one named."""
    return tmp_path_factory.mktemp("index-home")


@pytest.fixture(scope="module")
def index_hosts(start_host):
    return start_host("idx1"), start_host("idx2")


def names_of(index_hosts) -> dict[str, str]:
    """The index hosts' DNS names, as /etc/hosts of the balancer and the client has them."""
    return {name: host.address for name, host in zip(HOST_NAMES, index_hosts)}


@pytest.fixture(scope="module")
def balancer_host(start_host, index_hosts):
    return start_host("lb", add_hosts=names_of(index_hosts), images=None)  # nginx only


@pytest.fixture(scope="module")
def client(start_host, balancer_host, index_hosts):
    """A developer machine that resolves the index's name to the balancer."""
    client = start_host("cluster-client", kind="client",
                        add_hosts={INDEX: balancer_host.address, **names_of(index_hosts)})
    client.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
                "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh")
    return client


def cluster_settings(engines: Stores, index_hosts, balancer_host, index_home, cache: str) -> dict:
    cache_url = {"postgresql": engines.postgres_url, "redis": engines.redis_url}[cache]
    return {"server_names": [INDEX], "index_hosts": list(names_of(index_hosts)),
            "users": ["dev"], "build_ca_bundle": SYSTEM_CA_BUNDLE,
            "state_dir": str(index_home / "state"), "storage": "s3",
            "s3_bucket": engines.bucket, "s3_endpoint_url": engines.s3_endpoint_url,
            "s3_addressing_style": "path", "s3_access_key_id": "test:tester",
            "cache_url": cache_url, "metrics_allow": [harness.gateway_address()],
            "trusted_proxies": [balancer_host.address]}


def on_all(hosts) -> str:
    return ",".join(host.target for host in hosts)


def as_dev(client, command: str, **env: str):
    return client.exec(command, user="dev", check=False, env=env)


def client_ca(client) -> str:
    """The CA file clients.configure gave the developer (as .pypirc names it)."""
    return as_dev(client, "sed -n 's/^ca_cert = //p' ~/.pypirc").stdout.decode().strip()


def dev_password(index_home) -> str:
    return json.loads((index_home / "state" / INDEX / "secrets.json").read_text())["passwords"]["dev"]


def installs_through_the_balancer(client, requirement: str, times: int = INSTALLS) -> list[bytes]:
    """pip installs of `requirement` (pip.conf names the balancer), one after another;
    their failures. pip asks once (--retries 0): a request the balancer lets fail fails
    the install, where pip would otherwise try it again five times."""
    failures = []
    for _ in range(times):
        result = as_dev(client, f"~/venv/bin/pip install --retries 0 --no-cache-dir "
                                f"--force-reinstall --no-deps {requirement}")
        if result.returncode != 0:
            failures.append(result.stdout + result.stderr)
    return failures


def versions_on(client, host_name: str, project: str, password: str, asked: int = 1) -> str:
    """The versions one index host's page lists, as pip reads them, as the last of
    `asked` answers (the second of two is the page the host kept)."""
    url = f"https://dev:{urllib.parse.quote(password, safe='')}@{host_name}/simple/"
    answers = [as_dev(client, f"pip index versions --retries 0 {project}", PIP_INDEX_URL=url)
               for _ in range(asked)]
    assert answers[-1].returncode == 0, answers[-1].stdout + answers[-1].stderr
    return answers[-1].stdout.decode()


def upload(client, make_dists, name: str, version: str, repository: str = "-r internal", **env):
    client.copy_in(make_dists(name, version), f"/tmp/dist-{version}")
    client.exec(f"chown -R dev: /tmp/dist-{version}")
    result = as_dev(client, f"twine upload --disable-progress-bar {repository} "
                            f"/tmp/dist-{version}/*", **env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def cluster(fab, engines, index_hosts, balancer_host, client, index_home, make_dists):
    """Both index hosts deployed with one command (on S3 and PostgreSQL), the balancer in
    front, the client configured for the shared name and a release uploaded through it."""
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "postgresql")
    deployed = fab("deploy", host=on_all(index_hosts), settings=settings,
                   env={"PPC_S3_SECRET_ACCESS_KEY": S3_SECRET, "PPC_CACHE_PASSWORD": PG_PASSWORD})
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    balanced = fab("balancer.deploy", host=balancer_host, settings=settings)
    assert balanced.returncode == 0, balanced.stdout + balanced.stderr
    configured = fab("clients.configure", host=f"dev@127.0.0.1:{client.port}", settings=settings)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    upload(client, make_dists, "ppc-cluster-sample", "1.0.0")
    install = as_dev(client, "python3 -m venv ~/venv && ~/venv/bin/pip install --no-cache-dir "
                             "ppc-cluster-sample==1.0.0")
    assert install.returncode == 0, install.stdout + install.stderr
    return balanced


def test_both_hosts_serve_one_index_with_one_certificate(cluster, fab, engines, index_hosts,
                                                         balancer_host, client, index_home,
                                                         make_dists):
    # Same accounts and session keys (one config.ini), one certificate for every name.
    configs = {host.out("sha256sum /etc/pypicloud/config.ini") for host in index_hosts}
    assert len(configs) == 1, configs
    certificate = f"/etc/ssl/ppc-tasks/{INDEX}.crt"
    assert len({host.out(f"sha256sum {certificate}") for host in (*index_hosts, balancer_host)}) == 1
    names = index_hosts[0].out(f"openssl x509 -in {certificate} -noout -ext subjectAltName")
    for name in (f"DNS:{INDEX}", *(f"DNS:{name}" for name in HOST_NAMES)):
        assert name in names, names
    # Secrets stay off the balancer: it holds the certificate's key (0600) and no config.
    assert balancer_host.out(f"stat -c '%a' /etc/ssl/ppc-tasks/{INDEX}.key") == "600"
    assert balancer_host.exec("test -e /etc/pypicloud/config.ini", check=False).returncode != 0

    # An upload through one host is installable through the other on the very next
    # request once the upload returned (one shared cache): no window to wait out, not
    # even for the page the other host gave just before and keeps.
    password = dev_password(index_home)
    assert "2.0.0" not in versions_on(client, HOST_NAMES[1], "ppc-cluster-sample", password,
                                      asked=2)
    ca = client_ca(client)
    upload(client, make_dists, "ppc-cluster-sample", "2.0.0",
           repository=f"--repository-url https://{HOST_NAMES[0]}/simple/ --cert {ca}",
           TWINE_USERNAME="dev", TWINE_PASSWORD=password)
    other = f"https://dev:{urllib.parse.quote(password, safe='')}@{HOST_NAMES[1]}/simple/"
    found = as_dev(client, "pip download --retries 0 --no-deps --no-cache-dir -d /tmp/other "
                           "ppc-cluster-sample==2.0.0", PIP_INDEX_URL=other)
    assert found.returncode == 0, found.stdout + found.stderr
    # A second run changes nothing anywhere; a preview of one says so.
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "postgresql")
    preview = fab("--dry", "balancer.deploy", host=balancer_host, settings=settings)
    assert "dry run: 0 would change," in preview.stdout, preview.stdout
    for task, hosts in (("deploy", on_all(index_hosts)), ("balancer.deploy", balancer_host)):
        again = fab(task, host=hosts, settings=settings)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("done: 0 changed,") == (2 if task == "deploy" else 1), again.stdout


def test_status_checks_the_balancer_as_a_balancer(cluster, fab, engines, index_hosts,
                                                   balancer_host, index_home):
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "postgresql")
    every_host = on_all([*index_hosts, balancer_host])
    status = fab("status", host=every_host, settings=settings)
    assert status.returncode == 0, status.stdout + status.stderr
    rows = re.findall(rf"^\[127.0.0.1:{balancer_host.port}\] (\S+) +(\S+) ", status.stdout,
                      re.MULTILINE)
    assert rows == [("role", "ok"), ("certificate", "ok"), ("nginx", "ok"), ("metrics", "ok"),
                    ("upstreams", "ok")]
    site = "/etc/nginx/conf.d/ppc-tasks.conf"
    balancer_host.exec(f"cp -p {site} /tmp/site && echo '# edited' >> {site}")
    try:
        drifted = fab("status", host=balancer_host, settings=settings)
    finally:
        balancer_host.exec(f"cp -p /tmp/site {site}")
    assert drifted.returncode == 1
    assert "nginx: the site differs from what the settings render" in drifted.stderr


def scrape_balancer(balancer_host, index_home, authorization: str | None = None) -> web.Response:
    """/metrics of the balancer, from this machine (an address of metrics_allow)."""
    return web.request(balancer_host.address, "/metrics", sni=INDEX, host=INDEX,
                       ca=index_home / "state" / INDEX / "ca.crt",
                       headers={"Authorization": authorization} if authorization else {})


def test_the_balancer_tells_nginx_figures_to_the_credential_and_allowed_addresses(
        cluster, fab, engines, index_hosts, balancer_host, client, index_home, tmp_path):
    # The job metrics.scrape-config prints for it: the index's name, which reaches it.
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "postgresql")
    made = fab("metrics.scrape-config", "--directory", str(tmp_path), settings=settings)
    assert made.returncode == 0, made.stdout + made.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(made.stdout)}
    assert jobs[f"ppc-{INDEX}-balancer"]["static_configs"] == [{"targets": [f"{INDEX}:443"]}]
    token = (tmp_path / f"{INDEX}-metrics-token").read_text()
    # From the client (no address of metrics_allow): the exact credential only.
    ca = client_ca(client)
    for refused in (None, "Bearer not-the-credential", f"Bearer {token.swapcase()}",
                    f"Bearer {token}x", f"Basic {token}"):
        status, answer = web.from_host(client, f"https://{INDEX}/metrics", ca,
                                       headers={"Authorization": refused} if refused else {})
        assert status == 401 and "metrics credential" in answer, (refused, status, answer)
    # Every spelling of the path is refused alike (the balancer's, or an index host's login).
    for path in ("/%6Detrics", "/%256Detrics", "/METRICS", "//metrics", "/./metrics",
                 "/metrics?format=text", "/metrics/"):
        status, answer = web.from_host(client, f"https://{INDEX}{path}", ca)
        assert status == 401 and "nginx_" not in answer and "ppc_" not in answer, (path, answer)
    status, answer = web.from_host(client, f"https://{INDEX}/metrics", ca,
                                   headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and "nginx_up 1" in answer, answer
    # From this machine (named by metrics_allow): without it too. Requests move them.
    before = web.figures(scrape_balancer(balancer_host, index_home))
    assert before[("nginx_up", ())] == 1
    for _ in range(3):
        web.from_host(client, f"https://{INDEX}/simple/", ca)
    after = web.figures(scrape_balancer(balancer_host, index_home, "Bearer not-the-credential"))
    assert after[("nginx_http_requests_total", ())] >= before[("nginx_http_requests_total", ())] + 3
    # (prometheus_client's parser names a counter's sample with _total, as OpenMetrics does.)
    accepted = ("nginx_connections_accepted_total", ())
    assert after[accepted] > before[accepted]
    # The exporter and nginx's counters listen on the loopback address only.
    listening = balancer_host.out("awk '$4 == \"0A\" { print $2 }' /proc/net/tcp /proc/net/tcp6")
    for port in ("2398", "2399"):  # 9112 (stub_status), 9113 (the exporter)
        assert [address for address in listening.split() if address.endswith(f":{port}")] == [
            f"0100007F:{port}"], listening
    # The site holds the credential: only root reads it.
    assert balancer_host.out("stat -c '%a %u' /etc/nginx/conf.d/ppc-tasks.conf") == "600 0"
    # A killed exporter is back by itself (its unit restarts it).
    exporter = "pgrep -x prometheus-ngin"  # the kernel keeps 15 letters of its name
    killed = balancer_host.out(exporter)
    balancer_host.exec(f"kill -KILL {killed}")
    harness.wait_for(lambda: balancer_host.exec(exporter, check=False).stdout.strip() not in (
        b"", killed.encode()) and scrape_balancer(balancer_host, index_home).status == 200,
        "the exporter back after it was killed", 30)

    # A real Prometheus with the printed jobs, as written: both index hosts and the balancer.
    names = {INDEX: balancer_host.address, **names_of(index_hosts)}
    with prometheus.running(tmp_path, list(jobs.values()), names) as (url, _):
        harness.wait_for(lambda: prometheus.all_targets_up(url, 3),
                         "Prometheus scraping both index hosts and the balancer", timeout=60)
        assert prometheus.query(url, f'nginx_up{{job="ppc-{INDEX}-balancer"}}') == 1
        assert prometheus.query(url, f'sum(ppc_http_requests_total{{job="ppc-{INDEX}"}})') > 0


def failover(fab, settings, client, down, up, requirement: str) -> None:
    """Stop `down`'s server: the client keeps installing through the balancer; `fab
    deploy` brings it back, and changes nothing on `up`."""
    down.exec("docker stop pypicloud")
    failures = installs_through_the_balancer(client, requirement)
    assert failures == [], failures[0].decode(errors="replace")
    back = fab("deploy", host=down, settings=settings)
    assert back.returncode == 0, back.stdout + back.stderr
    assert steps(back.stdout)["server.container"] == "changed", back.stdout
    other = fab("deploy", host=up, settings=settings)
    assert "done: 0 changed," in other.stdout, other.stdout
    assert installs_through_the_balancer(client, requirement) == []


def test_a_client_keeps_installing_while_an_index_host_is_down(cluster, fab, engines, index_hosts,
                                                                balancer_host, client, index_home):
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "postgresql")
    failover(fab, settings, client, *index_hosts, "ppc-cluster-sample==1.0.0")


def test_the_same_with_redis_as_the_cache(cluster, fab, engines, index_hosts, balancer_host,
                                          client, index_home, make_dists):
    settings = cluster_settings(engines, index_hosts, balancer_host, index_home, "redis")
    moved = fab("deploy", host=on_all(index_hosts), settings=settings,
                env={"PPC_CACHE_PASSWORD": REDIS_PASSWORD})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    unchanged = fab("balancer.deploy", host=balancer_host, settings=settings)
    assert "done: 0 changed," in unchanged.stdout, unchanged.stdout
    # Each host keeps the page it gave; an upload through the balancer shows on both.
    password = dev_password(index_home)
    for name in HOST_NAMES:
        assert "3.0.0" not in versions_on(client, name, "ppc-cluster-sample", password, asked=2)
    upload(client, make_dists, "ppc-cluster-sample", "3.0.0")
    for name in HOST_NAMES:  # the very first answer after the upload
        assert "3.0.0" in versions_on(client, name, "ppc-cluster-sample", password)
    # Every host reports both shared stores healthy.
    status = fab("status", host=on_all(index_hosts), settings=settings)
    assert status.returncode == 0, status.stdout + status.stderr
    for host in index_hosts:
        for part in ("storage", "cache"):
            assert re.search(rf"^\[127.0.0.1:{host.port}\] {part} +ok ", status.stdout,
                             re.MULTILINE), status.stdout
    second, first = index_hosts
    failover(fab, settings, client, first, second, "ppc-cluster-sample==3.0.0")


def test_a_guesser_behind_the_balancer_is_throttled_alone(cluster, balancer_host, client,
                                                         index_home):
    """The index hosts take the client's address from the balancer (trusted_proxies): a
    client that guesses passwords is throttled, and nobody else behind the same balancer."""
    def login(password: str) -> int:  # from this machine, through the balancer
        return web.request(balancer_host.address, "/simple/", sni=INDEX, host=INDEX,
                           ca=index_home / "state" / INDEX / "ca.crt",
                           auth=("dev", password)).status

    # Ten wrong logins a minute per client and host: the balancer spreads them over two.
    answers = []
    while 429 not in answers and len(answers) < 30:  # a 429 comes slowly: one is enough
        answers.append(login(f"guess-{len(answers)}"))
    assert answers[-1] == 429 and set(answers[:-1]) == {401}, answers
    ca = client_ca(client)
    wrong = web.from_host(client, f"https://{INDEX}/simple/", ca,
                          headers={"Authorization": "Basic ZGV2Om5vdC1pdA=="})  # dev:not-it
    assert wrong[0] == 401  # the client's own count: not throttled by the guesser's
    # A client cannot pass for another: X-Forwarded-For of its own is not believed.
    spoofed = web.from_host(client, f"https://{INDEX}/simple/", ca, headers={
        "Authorization": "Basic ZGV2Om5vdC1pdA==", "X-Forwarded-For": harness.gateway_address()})
    assert spoofed[0] == 401
    assert login(dev_password(index_home)) == 200  # a right password always gets in


def test_the_balancer_serves_again_after_a_reboot_by_itself(cluster, balancer_host, client,
                                                             index_home):
    harness.reboot(balancer_host)
    # A server keeps its address across a reboot; a restarted container may get another,
    # so the client's name for the index follows it, as DNS would.
    client.exec(f"sed -E '/[[:space:]]{re.escape(INDEX)}$/d' /etc/hosts > /tmp/hosts "
                f"&& echo '{balancer_host.address} {INDEX}' >> /tmp/hosts "
                f"&& cat /tmp/hosts > /etc/hosts")
    # Back by itself: 180 s is a busy machine's margin on the 8 s a reboot takes idle.
    harness.wait_for(lambda: not installs_through_the_balancer(client, "ppc-cluster-sample==1.0.0",
                                                               times=1),
                     "an install through the rebooted balancer", 180)
    assert installs_through_the_balancer(client, "ppc-cluster-sample==1.0.0") == []
    # Its figures too: the exporter starts at boot, after nginx.
    harness.wait_for(lambda: scrape_balancer(balancer_host, index_home).status == 200,
                     "the rebooted balancer's /metrics", 60)
    assert web.figures(scrape_balancer(balancer_host, index_home))[("nginx_up", ())] == 1
