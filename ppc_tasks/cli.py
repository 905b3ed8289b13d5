"""The root task namespace, and the `ppc` command that bundles it.

`ppc` is Fabric's own `fab` program with this namespace bundled, so it works from any
directory once ppc-tasks is installed, and every core flag of `fab` works (-H, -i, -f,
--dry, --prompt-for-sudo-password, --list, --help TASK). It reads the configuration
files `fab` reads (/etc/fabric.yaml, ~/.fabric.yaml, -f FILE, FABRIC_* variables), and
a fabric.yaml in the directory it runs in, as `fab` reads the one beside its fabfile.

In a clone, `fab` finds the same namespace through fabfile.py and tasks.py; in an
operator's own fabfile, `from ppc_tasks import namespace` adds it beside their tasks.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

from fabric import Config, Executor
from fabric.main import Fab
from invoke import Collection

from . import (
    backup,
    balancer,
    bootstrap,
    certs,
    clients,
    data,
    image,
    nginx,
    packages,
    server,
    wiring,
)
from .deploy import deploy, migrate_storage, rollback
from .settings import DEFAULTS
from .status import audit, status

# `fab -H HOST backup` takes a backup; `fab backup.verify FILE` checks one.
backups = Collection("backup")
backups.add_task(backup.create, default=True)
backups.add_task(backup.verify)

# `fab -H HOST storage.migrate` moves a file-store index into S3 (a deploy that copies first).
storage = Collection("storage")
storage.add_task(migrate_storage, name="migrate")

# `fab -H HOST host.bootstrap` installs the Docker engine (ppc_tasks/bootstrap.py).
hosts = Collection("host")
hosts.add_task(bootstrap.bootstrap)

namespace = Collection(image, data, server, certs, nginx, clients, packages, backups, balancer,
                       storage, hosts)
for top_level in (deploy, rollback, status, audit, backup.restore):
    namespace.add_task(top_level)
# Registering every default makes each one overridable from any config layer,
# including FABRIC_PPC_<KEY> environment variables.
namespace.configure({"ppc": DEFAULTS, "timeouts": {"connect": 15}})


class Ppc(Fab):
    """`fab` with the namespace bundled."""

    def create_config(self) -> None:
        super().create_config()
        # The project file: fabric.yaml where ppc runs, as fab reads its fabfile's. Data
        # only (.yaml, .yml, .json): a fabric.py in whatever directory ppc runs in is
        # never executed (fab runs the one beside the fabfile it was asked to load).
        self.config.set_project_location(os.getcwd())
        suffixes = self.config._file_suffixes
        self.config._set(_file_suffixes=tuple(suffix for suffix in suffixes if suffix != "py"))
        try:
            self.config.load_project(merge=True)
        finally:
            self.config._set(_file_suffixes=suffixes)


def installed_version() -> str:
    try:
        return version("ppc-tasks")
    except PackageNotFoundError:  # a clone used without installing it
        return "unknown"


program = Ppc(name="ppc-tasks", namespace=namespace, executor_class=Executor,
              config_class=Config, version=installed_version())


def given_hosts() -> str | None:
    """The -H list of the running program: `ppc`, or Fabric's own `fab` with a fabfile."""
    from fabric.main import program as fab

    cores = [running.core for running in (program, fab) if getattr(running, "core", None)]
    return cores[0][0].args.hosts.value if cores else None


wiring.given_hosts = given_hosts  # the many-hosts tasks run on every -H host


def main() -> None:
    program.run()
