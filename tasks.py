"""The root task namespace: it only assembles the collections.

`fab` finds it through fabfile.py; `invoke` reads it directly.
"""

from invoke import Collection

from ppc_tasks import certs, clients, data, image, nginx, packages, server
from ppc_tasks.deploy import deploy
from ppc_tasks.status import audit, status
from ppc_tasks.settings import DEFAULTS

ns = Collection(image, data, server, certs, nginx, clients, packages)
ns.add_task(deploy)
ns.add_task(status)
ns.add_task(audit)
# Registering every default makes each one overridable from any config layer,
# including FABRIC_PPC_<KEY> environment variables.
ns.configure({"ppc": DEFAULTS, "timeouts": {"connect": 15}})
