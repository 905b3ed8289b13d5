"""`nginx`: the TLS front door on the server (manual step 5)."""

from __future__ import annotations

from . import certs
from .errors import TaskError
from .facts import Facts
from .host import host_task
from .plan import Change, Command, Plan, Step, Unchanged, boot_step, file_step
from .render import render, script, script_argv
from .settings import Settings
from .system import nginx_service

SITE_PATH = "/etc/nginx/conf.d/ppc-tasks.conf"  # read by Debian's and RHEL's nginx.conf


def render_site(settings: Settings) -> bytes:
    certificate_path, key_path = certs.host_cert_paths(settings)
    return render("nginx-site.conf.j2", server_names=settings.server_names,
                  upstream_port=settings.port, certificate_path=certificate_path,
                  key_path=key_path)


def queries() -> list[str]:
    return ["nginx", f"text={SITE_PATH}", "unit=nginx"]


def plan_nginx(settings: Settings, facts: Facts, plan: Plan, host_name: str) -> None:
    """nginx.install, nginx.site, nginx.service (reloaded when notified), nginx.boot."""
    installed, running = facts.nginx
    family = facts.platform.family
    if installed:
        plan.add(Unchanged("nginx.install", "nginx is installed"))
    elif family is None:
        raise TaskError(f"cannot install nginx on {host_name} ({facts.platform.os}): "
                        f"install it by hand and run again")
    else:
        plan.add(Change("nginx.install", done=f"installed nginx ({family.name} packages)",
                        would=f"install nginx ({family.name} packages)",
                        commands=[Command.of(*family.install_nginx)]))
    plan.add(site_step(settings, facts))
    nginx = nginx_service(facts.platform)
    if not running:
        plan.add(Change("nginx.service", done="started nginx", would="start nginx",
                        commands=[Command.of(*nginx.start)]))
    elif plan.notified("nginx.reload"):
        plan.add(Change("nginx.service", done="reloaded nginx",
                        would="reload nginx: its site or certificate changes",
                        commands=[Command.of("nginx", "-t", failure="nginx rejects the new "
                                                                   "certificate"),
                                  Command.of(*nginx.reload)]))
    else:
        plan.add(Unchanged("nginx.service", "nginx is running with this configuration"))
    plan.add(boot_step("nginx.boot", "nginx", facts))


def site_step(settings: Settings, facts: Facts) -> Step:
    """The site, written only if `nginx -t` accepts it (else the previous one stays)."""
    site = render_site(settings)
    step = file_step("nginx.site", SITE_PATH, site, facts.file(SITE_PATH), mode="644",
                     owner="0:0", notifies=("nginx.reload",))
    if isinstance(step, Change):
        step.commands = [Command.of(*script_argv("put-checked", script("put-file"), SITE_PATH,
                                                 "644", "nginx", "-t"),
                                    stdin=site,
                                    failure="nginx rejected the new configuration, the "
                                            "previous one stays live")]
    return step


@host_task(docker=False)
def configure(host):
    """Install nginx if missing and serve the index over HTTPS; HTTP only redirects.

    The site proxies to pypicloud on 127.0.0.1, with TLS 1.2+, no upload size limit and
    the forwarded headers pypicloud needs for https:// links. It is checked with
    `nginx -t` before it goes live (a rejected one is rolled back), and nginx is
    reloaded only when the site changed. Needs the certificate from certs.install (or
    tls_host_cert/tls_host_key).
    """
    facts = host.read_facts(["platform", *queries()])
    plan = Plan()
    plan_nginx(host.settings, facts, plan, host.name)
    host.carry_out(plan)
