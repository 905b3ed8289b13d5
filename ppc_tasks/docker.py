"""Labels ppc-tasks puts on what it creates, to tell later whether it is up to date, and
the width of the content hash in an image's tag.

The scripts that read them (files/sh/facts.sh, retire.sh) get them as arguments from
here: one definition on both sides."""

CONTEXT_LABEL = "ppc-tasks.context-hash"  # on an image: the hash of its build context
SPEC_LABEL = "ppc-tasks.spec-hash"  # on the server container: the hash of what it runs
# Hex digits of the context hash in an image's tag by content (ppc/pypicloud:1.3.12-3f2a9c41d0e7).
CONTENT_TAG_WIDTH = 12
