"""The root task namespace, and the `ppc` command that bundles it.

`ppc` is Fabric's own `fab` program with this namespace bundled, so it works from any
directory once ppc-tasks is installed, and every core flag of `fab` works (-H, -i, -f,
--dry, --prompt-for-sudo-password, --list, --help TASK). It reads the operator's own
configuration as `fab` does (/etc/fabric.yaml, ~/.fabric.yaml, -f FILE, FABRIC_*
variables), and the `ppc:` settings of the directory's fabric.yaml once the operator
trusted that file (project.py).

In a clone, `fab` finds the same namespace through fabfile.py and tasks.py; in an
operator's own fabfile, `from ppc_tasks import namespace` adds it beside their tasks.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fabric import Config
from fabric.main import Fab
from invoke import Collection
from invoke.exceptions import Exit

from . import (
    backup,
    balancer,
    bootstrap,
    certs,
    clients,
    data,
    effective,
    image,
    init,
    metrics,
    nginx,
    packages,
    project,
    server,
    tokens,
    trust,
    wiring,
)
from .deploy import deploy, migrate_storage, rollback
from .settings import DEFAULTS
from .status import audit, logs, status

# `ppc -H HOST backup` takes a backup; `ppc backup.verify FILE` checks one.
backups = Collection("backup")
backups.add_task(backup.create, default=True)
backups.add_task(backup.verify)

# `ppc -H HOST storage.migrate` moves a file-store index into S3 (a deploy that copies first).
storage = Collection("storage")
storage.add_task(migrate_storage, name="migrate")

# `ppc -H HOST host.bootstrap` installs the Docker engine (ppc_tasks/bootstrap.py).
hosts = Collection("host")
hosts.add_task(bootstrap.bootstrap)

namespace = Collection(image, data, server, certs, nginx, clients, packages, tokens, backups,
                       balancer, storage, hosts, metrics)
for top_level in (init.init, deploy, rollback, status, audit, logs, backup.restore,
                  trust.trust, effective.config):
    namespace.add_task(top_level)
# Registering every default makes each one overridable from any config layer,
# including FABRIC_PPC_<KEY> environment variables.
namespace.configure({"ppc": DEFAULTS, "timeouts": {"connect": 15}})


class Ppc(Fab):
    """`fab` with the namespace bundled."""

    project_refusal: str | None = None  # why the directory's fabric.yaml is not read

    def create_config(self) -> None:
        super().create_config()
        # The project file: the fabric.yaml where ppc runs, its ppc: settings only, and
        # only once trusted. Data only: a fabric.py there is never executed.
        found = project.project_file(Path.cwd())
        if found is None:
            return
        try:
            settings = project.trusted_settings(found)
        except (project.Untrusted, OSError) as refusal:
            self.project_refusal = str(refusal)
            return
        self.config._set(_project=settings, _project_path=str(found), _project_found=True)
        self.config.merge()

    def update_config(self) -> None:
        # After parsing: --list and --help work anywhere, `ppc trust` is how the
        # operator answers, and every other task stops before it reads a setting.
        if self.project_refusal and any(call.name != "trust" for call in self.tasks):
            raise Exit(f"Error: {self.project_refusal}", code=2)
        super().update_config()


def installed_version() -> str:
    try:
        return version("ppc-tasks")
    except PackageNotFoundError:  # a clone used without installing it
        return "unknown"


program = Ppc(name="ppc-tasks", namespace=namespace, executor_class=wiring.Executor,
              config_class=Config, version=installed_version())


def main() -> None:
    program.run()
