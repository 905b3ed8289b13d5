"""An index that keeps its packages in S3 and its cache in a shared database, on real
engines (OpenStack Swift's S3 API, PostgreSQL, Redis; all from Debian packages), proven
with a client configured by clients.configure: twine upload, pip install over HTTPS."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from . import harness, web
from .conftest import SYSTEM_CA_BUNDLE, password_of, steps
from .engines import PG_PASSWORD, REDIS_PASSWORD, S3_SECRET, Stores
from .oidc_issuer import Issuer

INDEX = "pypi-shared.test"


@pytest.fixture(scope="module")
def index_home(tmp_path_factory) -> Path:
    """This module's index keeps its state (CA, secrets) in state/ here, apart from every
    other module's: a host of another index may get an address this one named."""
    return tmp_path_factory.mktemp("index-home")


JOB = {"repository": "acme/shared", "sub": "repo:acme/shared:ref:refs/heads/main",
       "job_workflow_ref": "acme/shared/.github/workflows/release.yml@refs/heads/main"}


@pytest.fixture(scope="module", autouse=True)
def issuer(index_home):
    """A CI's OIDC issuer whose keys the settings pin (github-jwks.json in index_home):
    trusted publishing on the shared stores, PostgreSQL and Redis."""
    issuer = Issuer(index_home, JOB)
    yield issuer
    issuer.close()


@pytest.fixture(scope="module")
def server(start_host):
    """Its first test needs it without our images; the deploy loads them (below)."""
    return start_host("shared", images="base")


@pytest.fixture(scope="module")
def client(start_host, server):
    """A developer machine that resolves the index's name to the server."""
    client = start_host("shared-client", kind="client", add_hosts={INDEX: server.address})
    client.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
                "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh")
    return client


def shared_settings(engines: Stores, server, index_home, **overrides) -> dict:
    return {"server_names": [INDEX, server.address], "users": ["dev"],
            "build_ca_bundle": SYSTEM_CA_BUNDLE, "state_dir": str(index_home / "state"),
            "storage": "s3", "s3_bucket": engines.bucket,
            "s3_endpoint_url": engines.s3_endpoint_url, "s3_addressing_style": "path",
            "s3_access_key_id": "test:tester", "cache_url": engines.postgres_url,
            "trusted_publishers": [{"issuer": "github", "repository": "acme/shared",
                                    "workflow": "release.yml", "projects": ["ppc-shared-*"],
                                    "jwks_file": str(index_home / "github-jwks.json")}],
            **overrides}


def mint(server, index_home, token: str) -> tuple[int, dict]:
    """A CI job's OIDC token traded at the index, through nginx."""
    answer = web.request(server.address, "/_/oidc/mint-token", ca=index_home / "state" / INDEX
                         / "ca.crt", sni=INDEX, host=INDEX, method="POST",
                         body=json.dumps({"token": token}).encode(),
                         headers={"Content-Type": "application/json"})
    return answer.status, json.loads(answer.body)


def used_once_in_the_shared_cache(server, index_home, issuer) -> str:
    """Mint with a job's token, then again with the same: refused. The minted token."""
    job_token = issuer.github_job_token(INDEX)
    status, minted = mint(server, index_home, job_token)
    assert status == 200, minted
    status, again = mint(server, index_home, job_token)
    assert status == 422 and again["errors"][0]["code"] == "invalid-reuse-token", again
    return minted["token"]


SECRETS_GIVEN = {"PPC_S3_SECRET_ACCESS_KEY": S3_SECRET, "PPC_CACHE_PASSWORD": PG_PASSWORD}


def as_dev(host, command: str):
    return host.exec(command, user="dev", check=False)


def test_s3_without_its_secret_stops_before_anything_changes(fab, engines, server, index_home):
    result = fab("deploy", host=server, settings=shared_settings(engines, server, index_home))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error on 127.0.0.1:{server.port}: ppc.storage = s3 needs the S3 secret access "
        f"key: set PPC_S3_SECRET_ACCESS_KEY in the environment of one deploy; it is then kept "
        f"in {index_home / 'state' / INDEX / 'secrets.json'}"], result.stderr
    assert server.out("docker images -q 'ppc/*'; docker ps -aq") == ""


@pytest.fixture(scope="module")
def sample_dists(make_dists):
    return make_dists("ppc-shared-sample", "1.0.0")


@pytest.fixture(scope="module")
def deployed_shared(fab, engines, server, client, index_home, sample_dists, host_images):
    """Deployed on S3 + PostgreSQL (the secrets given once, in the environment); the client
    configured and a release uploaded from it with twine."""
    harness.load_archive(server, host_images["server"])
    result = fab("deploy", host=server, settings=shared_settings(engines, server, index_home),
                 env=SECRETS_GIVEN)
    assert result.returncode == 0, result.stdout + result.stderr
    configure = fab("clients.configure", host=f"dev@127.0.0.1:{client.port}",
                    settings=shared_settings(engines, server, index_home))
    assert configure.returncode == 0, configure.stdout + configure.stderr
    client.copy_in(sample_dists, "/tmp/dist")
    client.exec("chown -R dev: /tmp/dist")
    upload = as_dev(client, "twine upload --disable-progress-bar -r internal /tmp/dist/*")
    assert upload.returncode == 0, upload.stdout + upload.stderr
    return result


def test_an_index_on_s3_and_postgresql(deployed_shared, engines, server, client, index_home):
    output = deployed_shared.stdout + deployed_shared.stderr
    for secret in (S3_SECRET, PG_PASSWORD, "p%40ss"):
        assert secret not in output
        assert secret not in server.out("cat /var/log/ppc-tasks/audit.log")
    assert server.out("stat -c '%a %u' /etc/pypicloud/config.ini") == "600 10001"
    secrets = json.loads((index_home / "state" / INDEX / "secrets.json").read_text())
    assert (secrets["s3_secret_access_key"], secrets["cache_password"]) == (S3_SECRET, PG_PASSWORD)

    install = as_dev(client, "python3 -m venv ~/venv && ~/venv/bin/pip install --no-cache-dir "
                             "ppc-shared-sample==1.0.0")
    assert install.returncode == 0, install.stdout + install.stderr
    assert b"Successfully installed ppc-shared-sample-1.0.0" in install.stdout
    # The files are in the bucket, the releases in PostgreSQL, nothing in the data volume.
    objects = engines.bucket_listing()
    assert any(name.endswith("ppc_shared_sample-1.0.0-py3-none-any.whl") for name in objects), objects
    assert any(name.endswith("ppc_shared_sample-1.0.0.tar.gz") for name in objects), objects
    rows = engines.sql("select filename from packages")
    assert sorted(rows.split()) == ["ppc_shared_sample-1.0.0-py3-none-any.whl",
                                    "ppc_shared_sample-1.0.0.tar.gz"]
    assert server.out("docker run --rm -v pypicloud-data:/data debian:bookworm-slim "
                      "find /data/packages -type f") == ""


def test_trusted_publishing_keeps_its_records_in_postgresql(deployed_shared, engines, server,
                                                            index_home, issuer):
    """Every index host sees the used `jti`s and the minted tokens: they are in the cache."""
    minted = used_once_in_the_shared_cache(server, index_home, issuer)
    assert engines.sql("select count(*) from ppc_used_jtis") == "1"
    assert engines.sql(f"select account from ppc_tokens where id = "
                       f"$${minted.split('-')[1]}$$") == "dev"


def test_metrics_on_postgresql_count_the_files_and_the_connection_pool(deployed_shared, engines,
                                                                      server, index_home):
    found = scraped(server, index_home)
    assert found["ppc_store_files"] == int(engines.sql("select count(*) from packages")) >= 2
    # The pool pypicloud's requests use: the scrape's own connection is back in it.
    assert found["ppc_cache_pool_size"] >= 1 and found["ppc_cache_connections_idle"] >= 1
    assert "ppc_cache_connections_in_use" in found


def test_a_warm_deploy_needs_no_secret_again(deployed_shared, fab, engines, server, index_home):
    again = fab("deploy", host=server, settings=shared_settings(engines, server, index_home))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done: 0 changed," in again.stdout, again.stdout


def test_dry_run_shows_the_config_with_its_secrets_redacted(deployed_shared, fab, engines,
                                                            server, index_home):
    dry = fab("--dry", "deploy", host=server, settings=shared_settings(
        engines, server, index_home, cache_url=engines.redis_url),
        env={"PPC_CACHE_PASSWORD": REDIS_PASSWORD})
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (f"+db.url = redis://:<redacted>@{engines.engines.redis}:6379/{engines.redis_db}"
            f"?socket_connect_timeout=5&socket_timeout=15") in dry.stdout, dry.stdout
    assert (f"-db.url = postgresql://pypi:<redacted>@{engines.engines.postgres}:5432/"
            f"{engines.database}?connect_timeout=5") in dry.stdout
    for secret in (REDIS_PASSWORD, PG_PASSWORD, S3_SECRET, "r%40d", "p%40ss"):
        assert secret not in dry.stdout + dry.stderr
    secrets = json.loads((index_home / "state" / INDEX / "secrets.json").read_text())
    assert secrets["cache_password"] == PG_PASSWORD  # --dry keeps nothing


def test_moving_the_cache_to_redis_keeps_every_release(deployed_shared, fab, engines, server,
                                                       client, index_home):
    settings = shared_settings(engines, server, index_home, cache_url=engines.redis_url)
    moved = fab("deploy", host=server, settings=settings, env={"PPC_CACHE_PASSWORD": REDIS_PASSWORD})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert steps(moved.stdout)["server.container"] == "changed"
    # An empty cache is filled from the bucket when the server starts.
    install = as_dev(client, "~/venv/bin/pip install --no-cache-dir --force-reinstall "
                             "ppc-shared-sample==1.0.0")
    assert install.returncode == 0, install.stdout + install.stderr
    keys = engines.redis_cli("--scan")
    assert any("ppc_shared_sample-1.0.0.tar.gz" in key for key in keys.split()), keys
    # The new server read every file from the bucket once for its records, into Redis.
    assert steps(moved.stdout)["server.records"] == "changed", moved.stdout
    recorded = engines.redis_cli("hkeys ppc-tasks:files:ppc-shared-sample")
    assert sorted(recorded.split()) == ["ppc_shared_sample-1.0.0-py3-none-any.whl",
                                        "ppc_shared_sample-1.0.0.tar.gz"], recorded
    metadata = engines.redis_cli("hget ppc-tasks:metadata ppc_shared_sample-1.0.0-py3-none-any.whl")
    assert "Name: ppc-shared-sample" in metadata, metadata
    again = fab("deploy", host=server, settings=settings)
    assert "done: 0 changed," in again.stdout, again.stdout


def test_api_tokens_live_in_the_shared_cache(deployed_shared, fab, engines, server, client,
                                             index_home):
    """On Redis (where the previous test moved the cache): made, used, revoked."""
    settings = shared_settings(engines, server, index_home, cache_url=engines.redis_url)
    made = fab("tokens.create", "--project", "ppc-shared-*", host=server, settings=settings)
    assert made.returncode == 0, made.stdout + made.stderr
    token = re.search(r"user __token__\): (ppc1-\S+)", made.stdout)[1]
    assert token.split("-")[1] in engines.redis_cli("hkeys ppc-tasks:tokens").split()
    assert token.split("-", 2)[2] not in engines.redis_cli("hgetall ppc-tasks:tokens")

    def download():
        return client.exec("~/venv/bin/pip download -q --no-deps --no-cache-dir -d /tmp/tok "
                           "ppc-shared-sample==1.0.0", user="dev", check=False,
                           env={"PIP_INDEX_URL": f"https://__token__:{token}@{INDEX}/simple/"})

    assert download().returncode == 0
    revoked = fab("tokens.revoke", token.split("-")[1], host=server, settings=settings)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert engines.redis_cli("hkeys ppc-tasks:tokens").strip() == ""
    assert download().returncode != 0


def scraped(server, index_home) -> dict[str, float]:
    """/metrics of the index host, read with the scrape credential: {sample: value} of the
    series without labels."""
    state = index_home / "state" / INDEX
    token = json.loads((state / "secrets.json").read_text())["metrics_token"]
    answer = web.request(server.address, "/metrics", ca=state / "ca.crt", sni=INDEX, host=INDEX,
                         headers={"Authorization": f"Bearer {token}"})
    return {name: value for (name, labels), value in web.figures(answer).items() if not labels}


def test_metrics_count_the_files_the_shared_cache_records(deployed_shared, engines, server,
                                                         index_home):
    """On Redis: /metrics reads the store's figures from the registry there."""
    found = scraped(server, index_home)
    recorded = engines.redis_cli("--scan --pattern 'ppc-tasks:files:*'").split()
    assert found["ppc_store_projects"] == len(recorded) >= 1
    assert found["ppc_store_files"] == sum(
        int(engines.redis_cli(f"hlen {key}")) for key in recorded) >= 2


def test_trusted_publishing_keeps_its_records_in_redis(deployed_shared, engines, server,
                                                       index_home, issuer):
    minted = used_once_in_the_shared_cache(server, index_home, issuer)
    [used] = engines.redis_cli("--scan --pattern 'ppc-tasks:used-jti:*'").split()
    assert 0 < int(engines.redis_cli(f"ttl {used}")) <= 300 + 61  # forgotten when it expires
    assert minted.split("-")[1] in engines.redis_cli("hkeys ppc-tasks:tokens").split()


def test_status_reports_the_bucket_and_the_cache_as_the_server_sees_them(
        deployed_shared, fab, engines, server, index_home):
    settings = shared_settings(engines, server, index_home, cache_url=engines.redis_url)
    healthy = fab("status", host=server, settings=settings)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert re.search(rf"\] storage +ok +s3 bucket {engines.bucket} at "
                     rf"{engines.s3_endpoint_url}: ok$", healthy.stdout, re.MULTILINE), healthy.stdout
    cache = re.escape(engines.redis_url)
    assert re.search(rf"\] cache +ok +{cache}: ok$", healthy.stdout, re.MULTILINE)
    # The cache stopped, as the server sees it: its port refuses connections. (The Redis
    # of the run serves other modules meanwhile: only this host loses it.)
    refused = (f"iptables -I DOCKER-USER -d {engines.engines.redis} -p tcp --dport 6379 "
               f"-j REJECT --reject-with tcp-reset")
    server.exec(refused)
    try:
        broken = fab("status", host=server, settings=settings)
    finally:
        server.exec(refused.replace("-I", "-D"))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    # In seconds, and saying why: pypicloud's cache URL carries connect timeouts.
    assert re.search(rf"\] cache +PROBLEM +{cache}: (Timeout|Error)",
                     broken.stdout, re.MULTILINE), broken.stdout


def test_files_on_s3_answer_byte_ranges_streamed_or_redirected(
        deployed_shared, fab, engines, server, index_home, sample_dists):
    """What a client that reads a wheel's end (its zip directory) gets from an index on S3:
    nginx's ranges when pypicloud streams the file, the store's own behind a redirect."""
    wheel = next(path for path in sample_dists if path.suffix == ".whl")
    path = f"/api/package/ppc-shared-sample/{wheel.name}"
    ca = index_home / "state" / INDEX / "ca.crt"

    def request(suffix: str = "", **kwargs) -> web.Response:
        return web.request(server.address, path + suffix, ca=ca, sni=INDEX, host=INDEX,
                           auth=("dev", password_of(index_home, "dev", INDEX)), **kwargs)

    def deploy(stream_files: bool) -> None:
        result = fab("deploy", host=server, settings=shared_settings(
            engines, server, index_home, cache_url=engines.redis_url,
            stream_files=stream_files))
        assert result.returncode == 0, result.stdout + result.stderr
        assert steps(result.stdout)["server.container"] == "changed", result.stdout

    deploy(stream_files=True)
    head = request(method="HEAD")
    assert head.status == 200 and head.headers.get("accept-ranges") == "bytes", head.headers
    tail = request(headers={"Range": "bytes=-100"})
    assert tail.status == 206 and tail.body == wheel.read_bytes()[-100:], tail.headers
    whole = request()
    assert whole.status == 200 and whole.body == wheel.read_bytes()
    # The metadata file comes from the records, whichever way the files go.
    metadata = request(".metadata")
    assert metadata.status == 200 and b"Name: ppc-shared-sample" in metadata.body, metadata

    deploy(stream_files=False)
    redirected = request(headers={"Range": "bytes=-100"})
    assert redirected.status == 302, redirected
    signed = urllib.request.Request(redirected.headers["location"], headers={"Range": "bytes=-100"})
    with web.DIRECT.open(signed, timeout=15) as tail:
        assert tail.status == 206 and tail.read() == wheel.read_bytes()[-100:]
