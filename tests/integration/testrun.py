"""One run of the suite, shared by its processes: pytest itself and, with pytest-xdist,
its workers (tests/run starts several).

- Every container a run makes carries its run's id in its name and its labels, and the
  worker's id in its name: no two workers (nor two runs) ever name the same container,
  and no `docker rm -f` of one can take another's.
- `once(key, make)` does a thing once per run, whichever process asks first; the others
  wait for it and share its result (a JSON value in the run's folder).
- The process that started the run removes every container labelled with it at the end,
  and at the start those of runs whose process is gone (a run killed half-way).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

RUN_VARIABLE, DIR_VARIABLE, PID_VARIABLE = "PPC_TEST_RUN", "PPC_TEST_RUN_DIR", "PPC_TEST_RUN_PID"
RUN_LABEL, PID_LABEL = "ppc-test.run", "ppc-test.pid"


def begin() -> None:
    """In the process that starts the run (before any worker): its id and its folder,
    which the workers inherit through the environment."""
    if os.environ.get(RUN_VARIABLE):
        return
    os.environ[RUN_VARIABLE] = uuid.uuid4().hex[:8]
    os.environ[DIR_VARIABLE] = tempfile.mkdtemp(prefix="ppc-test-run-")
    os.environ[PID_VARIABLE] = str(os.getpid())


def end() -> None:
    """In the process that started the run, once every worker is done."""
    if os.environ.get(PID_VARIABLE) != str(os.getpid()):
        return
    remove_containers(f"label={RUN_LABEL}={run_id()}")
    shutil.rmtree(os.environ[DIR_VARIABLE], ignore_errors=True)


def remove_abandoned_containers() -> None:
    """Containers of earlier runs whose process is gone: a run killed before its end."""
    listed = subprocess.run(["docker", "ps", "-a", "--filter", f"label={PID_LABEL}", "--format",
                             f'{{{{.ID}}}} {{{{.Label "{PID_LABEL}"}}}}'],
                            capture_output=True, text=True, check=False).stdout.split("\n")
    abandoned = [container for container, pid in (line.split() for line in listed if line.strip())
                 if not Path(f"/proc/{pid}").exists()]
    if abandoned:
        subprocess.run(["docker", "rm", "-f", "-v", *abandoned], capture_output=True, check=False)


def remove_containers(docker_filter: str) -> None:
    found = subprocess.run(["docker", "ps", "-aq", "--filter", docker_filter],
                           capture_output=True, text=True, check=False).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", "-v", *found], capture_output=True, check=False)


def run_id() -> str:
    return os.environ[RUN_VARIABLE]


def worker_id() -> str:
    """gw0, gw1, ... under pytest-xdist; main in a run of one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def container_name(name: str, shared: bool = False) -> str:
    """A test's short name for a container, made unique: the run's id, and unless the
    container is the whole run's (shared), the worker's and a number of its own."""
    if shared:
        return f"ppc-it-{run_id()}-run-{name}"
    return f"ppc-it-{run_id()}-{worker_id()}-{next(_numbers)}-{name}"


_numbers = itertools.count(1)


def labels() -> list[str]:
    return ["--label", f"{RUN_LABEL}={run_id()}",
            "--label", f"{PID_LABEL}={os.environ[PID_VARIABLE]}"]


def folder() -> Path:
    """The run's own folder, shared by its processes."""
    return Path(os.environ[DIR_VARIABLE])


def once(key: str, make: Callable[[], object]) -> object:
    """make()'s result (JSON), made by the first process of the run to ask; the others
    wait for it. A make() that fails leaves nothing: the next one to ask tries again."""
    result = folder() / f"{key}.json"
    with exclusive(key):
        if result.exists():
            return json.loads(result.read_text())
        value = make()
        result.write_text(json.dumps(value))
        return value


def count(key: str) -> int:
    """1, then 2, 3, ...: a number of the run's that no other asker gets."""
    counter = folder() / f"{key}.count"
    with exclusive(key):
        number = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(number))
        return number


@contextlib.contextmanager
def exclusive(key: str):
    """Held by one process of the run at a time."""
    with open(folder() / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
