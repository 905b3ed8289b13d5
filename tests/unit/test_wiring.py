"""Tasks as Fabric sees them (ppc_tasks/wiring.py)."""

import copy

from fabric import Config, Connection

from ppc_tasks import wiring
from ppc_tasks.cli import Ppc, namespace


def test_every_task_option_has_a_help_line():
    """`fab --help TASK` explains each option, not only the docstring."""
    def tasks(collection, prefix=""):
        yield from ((prefix + name, task) for name, task in collection.tasks.items())
        for name, child in collection.collections.items():
            yield from tasks(child, f"{prefix}{name}.")

    bare = {name: [argument.name for argument in task.get_arguments() if not argument.help]
            for name, task in tasks(namespace)}
    assert {name: options for name, options in bare.items() if options} == {}


def expanded(*tasks: str, hosts: str = "a,b,c") -> list:
    """The calls `ppc -H HOSTS TASK...` makes, as ppc's executor expands them (parsed in an
    empty folder: a fabric.yaml here is none of the test's business)."""
    program = Ppc(name="ppc", namespace=copy.deepcopy(namespace), executor_class=wiring.Executor,
                  config_class=Config)
    program.create_config()
    program.parse_core(["ppc", "-H", hosts, *tasks])
    program.parse_collection()
    program.parse_tasks()
    executor = wiring.Executor(program.collection, program.config, program.core)
    return executor.expand_calls(executor.normalize(program.tasks))


def test_a_task_for_many_hosts_is_called_once_with_every_host(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = expanded("clients.configure", "status", "deploy")
    assert [type(call).__name__ for call in calls] == ["Call", "Call", "ConnectionCall",
                                                      "ConnectionCall", "ConnectionCall"]
    assert calls[0].kwargs["hosts"] == calls[1].kwargs["hosts"] == ["a", "b", "c"]
    assert [call.init_kwargs["host"] for call in calls[2:]] == ["a", "b", "c"]


def test_under_fabric_s_own_fab_the_first_host_s_call_works_on_every_host(monkeypatch):
    """Fabric's executor calls a task once per host: the first host's call takes them all."""
    class Core:
        class args:
            class hosts:
                value = "dev@127.0.0.1:2201,dev2"

    monkeypatch.setattr(wiring, "fabric_program", type("Fab", (), {"core": [Core]}))
    first, second = Connection("dev@127.0.0.1:2201"), Connection("dev2")
    assert wiring.hosts_to_work_on(first, None) == ["dev@127.0.0.1:2201", "dev2"]
    assert wiring.hosts_to_work_on(second, None) == []
    assert wiring.hosts_to_work_on(second, ["x", "y"]) == ["x", "y"]  # ppc's executor
