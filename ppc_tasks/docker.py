"""Labels ppc-tasks puts on what it creates, to tell later whether it is up to date.

files/sh/facts.sh reads them back (by these names) for the planners."""

CONTEXT_LABEL = "ppc-tasks.context-hash"  # on an image: the hash of its build context
SPEC_LABEL = "ppc-tasks.spec-hash"  # on the server container: the hash of what it runs
