# `fab` looks for a collection named "fabfile" before it reads any project config, so
# this is how plain `fab -H HOST deploy` finds tasks.py in the repo root.
from tasks import ns  # noqa: F401
