"""The root task namespace: it only assembles the collections.

`fab` finds it through fabfile.py; `invoke` reads it directly.
"""

from invoke import Collection

from ppc_tasks import backup, balancer, certs, clients, data, image, nginx, packages, server
from ppc_tasks.deploy import deploy, migrate_storage, rollback
from ppc_tasks.settings import DEFAULTS
from ppc_tasks.status import audit, status

# `fab -H HOST backup` takes a backup; `fab backup.verify FILE` checks one.
backups = Collection("backup")
backups.add_task(backup.create, default=True)
backups.add_task(backup.verify)

# `fab -H HOST storage.migrate` moves a file-store index into S3 (a deploy that copies first).
storage = Collection("storage")
storage.add_task(migrate_storage, name="migrate")

ns = Collection(image, data, server, certs, nginx, clients, packages, backups, balancer, storage)
for top_level in (deploy, rollback, status, audit, backup.restore):
    ns.add_task(top_level)
# Registering every default makes each one overridable from any config layer,
# including FABRIC_PPC_<KEY> environment variables.
ns.configure({"ppc": DEFAULTS, "timeouts": {"connect": 15}})
