import re

import pytest

from ppc_tasks.errors import TaskError
from ppc_tasks.facts import Facts
from ppc_tasks.plans import nginx
from ppc_tasks.settings import Settings
from ppc_tasks.system import parse_platform


@pytest.fixture
def site():
    settings = Settings.from_config({"server_names": ["pypi.example.com", "10.1.2.3"]}, host="h")
    return nginx.render_site(settings, 3031).decode()


def server_blocks(site: str) -> list[str]:
    return re.findall(r"^server \{.*?^\}", site, flags=re.S | re.M)


def test_behind_a_balancer_only_its_forwarded_address_is_believed(site):
    assert "real_ip" not in site  # no balancer named: the connecting address is the client
    settings = Settings.from_config({"server_names": ["pypi.example.com"],
                                     "trusted_proxies": ["10.0.0.9", "fd00::1/64"]}, host="h")
    https = server_blocks(nginx.render_site(settings, 3031).decode())[2]
    assert ["set_real_ip_from 10.0.0.9/32;", "set_real_ip_from fd00::/64;",
            "real_ip_header X-Forwarded-For;"] == [
        line.strip() for line in https.splitlines() if "real_ip" in line]
    assert "real_ip_recursive" not in https  # the last entry, the one the balancer appended
    with pytest.raises(Exception, match=r"ppc.trusted_proxies: 'lb1' is no IP address"):
        Settings.from_config({"trusted_proxies": ["lb1"]}, host="h")
    for everyone in ("0.0.0.0/0", "::/0"):
        with pytest.raises(Exception, match=rf"^ppc.trusted_proxies: {everyone} would believe "
                                            rf"every client's own X-Forwarded-For"):
            Settings.from_config({"trusted_proxies": ["10.0.0.9", everyone]}, host="h")


def test_site_follows_the_manual_block(site):
    upstream = re.search(r"^upstream pypicloud \{.*?^\}", site, flags=re.S | re.M).group(0)
    assert "server 127.0.0.1:3031;" in upstream
    assert "keepalive 16;" in upstream  # and the location clears Connection for it:
    https = server_blocks(site)[2]
    assert "listen 443 ssl;" in https
    assert "server_name pypi.example.com 10.1.2.3;" in https
    assert "ssl_certificate     /etc/ssl/ppc-tasks/pypi.example.com.crt;" in https
    assert "ssl_certificate_key /etc/ssl/ppc-tasks/pypi.example.com.key;" in https
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
    assert f"client_max_body_size {1024 ** 3};" in https  # max_upload_size: 1g by default
    for header in ('Strict-Transport-Security "max-age=31536000"',
                   'X-Content-Type-Options "nosniff"', 'X-Frame-Options "DENY"',
                   'Content-Security-Policy "frame-ancestors \'none\'"'):
        assert f"add_header {header} always;" in https
    assert "chunked_transfer_encoding on;" in https
    assert 'proxy_set_header Connection "";' in https
    for header in ("Host $host", "X-Real-IP $remote_addr",
                   "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in https


def test_plain_http_only_redirects_and_only_the_indexs_names(site):
    http = server_blocks(site)[0]
    assert "listen 80;" in http and "default_server" not in http  # the host's may be
    assert "return 301 https://$host$request_uri;" in http
    assert "proxy_pass" not in http
    # Whichever server is the default on port 80, this one redirects only its names.
    assert "if ($ppc_tasks_own_name = 0) {\n        return 444;\n    }" in http
    names = re.search(r"^map \$host \$ppc_tasks_own_name \{.*?^\}", site, flags=re.S | re.M)[0]
    assert names.splitlines()[1:] == ["    default 0;", '    "pypi.example.com" 1;',
                                      '    "10.1.2.3" 1;', "}"]


def test_own_certificate_on_the_host():
    settings = Settings.from_config({"tls_host_cert": "/etc/letsencrypt/live/x/fullchain.pem",
                                     "tls_host_key": "/etc/letsencrypt/live/x/privkey.pem"}, host="h")
    site = nginx.render_site(settings, 3031).decode()
    assert "ssl_certificate     /etc/letsencrypt/live/x/fullchain.pem;" in site


def test_other_names_never_reach_pypicloud(site):
    default = server_blocks(site)[1]
    assert "listen 443 ssl default_server;" in default
    assert "return 444;" in default and "proxy_pass" not in default


def test_an_index_is_served_only_from_the_families_ppc_tasks_knows_nginx_on(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path)},
                                    host=None)
    facts = Facts(platform=parse_platform("os=arch\nsystemd=1"), nginx=(True, True))
    with pytest.raises(TaskError, match=r"^ppc-tasks serves an index from Debian/Ubuntu and "
                                        r"RHEL/Fedora hosts; box is arch \(arch\): use it as a "
                                        r"client"):
        nginx.plan_nginx(settings, facts, "box", b"site")
