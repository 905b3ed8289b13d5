"""`ppc --list` and `ppc --help TASK` as an operator reads them: each task's first line a
whole sentence, and every example a command the real parser takes."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
from fabric import Config, Executor

from ppc_tasks.cli import Ppc, namespace
from ppc_tasks.errors import program


def tasks(collection=namespace, prefix=""):
    for name, task in sorted(collection.tasks.items()):
        yield prefix + name, task
    for name, child in sorted(collection.collections.items()):
        yield from tasks(child, f"{prefix}{name}.")


TASKS = dict(tasks())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_listed_line_is_a_whole_sentence(name):
    summary = TASKS[name].__doc__.strip().split("\n\n")[0]
    assert "\n" not in summary and summary.endswith("."), summary  # --list shows line one
    assert "fab " not in summary and "-H " not in summary  # examples go below it


def parsing_program() -> Ppc:
    """The `ppc` program, on a copy of the tasks: Invoke's parser takes each task's option
    help as it reads it (Task.get_arguments pops it), which the real run does once."""
    return Ppc(name="ppc", namespace=copy.deepcopy(namespace), executor_class=Executor,
               config_class=Config)


EXAMPLES = [(name, line.strip().removeprefix("Example: "))
            for name, task in TASKS.items() for line in task.__doc__.splitlines()
            if line.strip().startswith("Example: ")]


def test_the_tasks_an_operator_runs_show_an_example():
    shown = {name for name, _ in EXAMPLES}
    for name in ("restore", "status", "trust", "backup.create", "backup.verify",
                 "clients.configure", "clients.unconfigure", "packages.upload", "packages.yank",
                 "packages.unyank"):
        assert name in shown, name


@pytest.mark.parametrize("name, example", EXAMPLES)
def test_every_example_is_a_command_ppc_takes(name, example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no project file here
    argv = shlex.split(example)
    assert argv[0] == "ppc"
    program = parsing_program()
    program.create_config()
    program.parse_core(argv)
    program.parse_collection()
    program.parse_tasks()  # a ParseError for an unknown task, flag or missing value
    called = [call.name for call in program.tasks]
    assert called and namespace[called[0]].body is TASKS[name].body, (example, called)


def test_the_json_list_names_each_task_as_it_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parsing_program().run(["ppc", "--list", "-F", "json"], exit=False)
    listed = json.loads(capsys.readouterr().out)

    def names(collection, prefix=""):
        yield from (prefix + task["name"] for task in collection["tasks"])
        for child in collection["collections"]:
            yield from names(child, f"{prefix}{child['name']}.")

    found = sorted(names(listed))
    assert "storage.migrate" in found and found == sorted(TASKS)


@pytest.mark.parametrize("argv0, shown", [("/home/me/.local/bin/ppc", "ppc"),
                                          ("/repo/.venv/bin/fab", "fab"), ("pytest", "ppc")])
def test_messages_name_the_command_that_runs(argv0, shown, monkeypatch):
    monkeypatch.setattr("sys.argv", [argv0])
    assert program() == shown


def test_an_option_means_one_thing_and_its_help_says_which():
    def help_of(task, option):
        return {argument.name: argument.help for argument in copy.deepcopy(task).get_arguments()
                }[option]

    assert "data volume" in help_of(TASKS["data.destroy"], "confirm")
    assert "index's name" in help_of(TASKS["restore"], "confirm")
    # One name for one thing: a rebuild from scratch is --rebuild wherever it is offered.
    assert help_of(TASKS["image.build"], "rebuild") == help_of(TASKS["deploy"], "rebuild")
