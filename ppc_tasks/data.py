"""`data`: where the packages and the database live (manual step 2).

They live in a named Docker volume (setting data_volume) that outlives every container.
The data container of the manual procedure holds it (so `docker volume prune` never
takes it) and the server container mounts it. Nothing but `data.destroy`, with an
explicit confirmation, ever removes it. A deploy never points the server at an empty
store while an index exists elsewhere on the host: it moves the data of an index made
before named volumes (or left behind by a data container removed by hand) into the
named volume, or refuses.
"""

from __future__ import annotations

import datetime

from .facts import (
    DOCKER,
    PLATFORM,
)
from .plan import Plan
from .plans.data import destroy_queries, plan_data_step, plan_destroy, queries
from .wiring import host_task


# -- tasks ---------------------------------------------------------------------------------
@host_task
def create(host):
    """Create the data container and its named volume; never replaces an index.

    Also moves an index made before named volumes into one, keeping the old container.
    """
    settings = host.settings
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *queries(settings)])
    host.require_docker(facts)
    plan = Plan()
    plan.add(plan_data_step(settings, facts, facts.images[settings.data_image] is not None,
                            datetime.datetime.now(datetime.timezone.utc)))
    host.carry_out(plan)


@host_task(option_help={"confirm": "the data volume's name (ppc.data_volume), to delete it "
                                   "and every package in it"})
def destroy(host, confirm=""):
    """Delete the data container, its volume and ALL uploaded packages; needs --confirm=VOLUME.

    The server container must be removed first (server.remove), so nothing is
    serving from the volume while it disappears.
    """
    settings = host.settings
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *destroy_queries(settings)])
    host.require_docker(facts)
    plan = Plan()
    plan.add(*plan_destroy(settings, facts, confirm))
    host.carry_out(plan)
