"""ppc-tasks: Fabric tasks that turn a bare Linux host into a private Python package index."""
