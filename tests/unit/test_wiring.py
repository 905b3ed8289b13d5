"""Tasks as Fabric sees them (ppc_tasks/wiring.py)."""



from ppc_tasks.cli import namespace


def test_every_task_option_has_a_help_line():
    """`fab --help TASK` explains each option, not only the docstring."""
    def tasks(collection, prefix=""):
        yield from ((prefix + name, task) for name, task in collection.tasks.items())
        for name, child in collection.collections.items():
            yield from tasks(child, f"{prefix}{name}.")

    bare = {name: [argument.name for argument in task.get_arguments() if not argument.help]
            for name, task in tasks(namespace)}
    assert {name: options for name, options in bare.items() if options} == {}
