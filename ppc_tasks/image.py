"""`image`: build the data and server images on the host (manual step 1)."""

from __future__ import annotations

from .facts import DOCKER, PLATFORM
from .plan import Plan
from .plans.image import plan_images, queries
from .wiring import host_task


@host_task
def build(host, rebuild=False, verbose=False):
    """Build the data and server images on the host; skipped when already up to date.

    The images are rebuilt when the files in docker/, the base image or the build
    options change. --rebuild rebuilds from scratch (no layer cache), e.g. to pick up
    security updates of the base image's packages. --verbose shows the build's own
    output as it comes.
    """
    host.verbose = verbose
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *queries(host.settings)])
    host.require_docker(facts)
    plan = Plan()
    plan.add(*plan_images(host.settings, facts, force=rebuild))
    host.carry_out(plan)
