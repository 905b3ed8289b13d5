import pytest

from ppc_tasks.errors import TaskError
from ppc_tasks.facts import ContainerFacts, Facts
from ppc_tasks.plans import data
from ppc_tasks.plans.data import DataPlan, DataState
from ppc_tasks.settings import Settings

SETTINGS = Settings.from_config({}, host="pypi.test")
VOLUME = SETTINGS.data_volume
OLD = "3f1c" + "0" * 60  # an unnamed volume, as Docker names them


def test_data_state_comes_from_the_facts():
    facts = Facts(volumes={VOLUME: "missing"},
                  data_containers={"pypi_data:/var/lib/pypicloud": (OLD, "data")},
                  dangling=["a", "b"])
    assert data.data_state(SETTINGS, facts) == DataState("missing", OLD, True, ("a", "b"))
    facts = Facts(volumes={VOLUME: "data"},
                  data_containers={"pypi_data:/var/lib/pypicloud": ("missing", "")})
    assert data.data_state(SETTINGS, facts) == DataState("data", None, False)


def test_nothing_to_do_when_the_data_container_holds_the_named_volume():
    assert data.plan_data(SETTINGS, DataState("data", VOLUME, True)) is None
    assert data.plan_data(SETTINGS, DataState("empty", VOLUME, False)) is None


def test_a_fresh_host_gets_a_new_volume():
    plan = data.plan_data(SETTINGS, DataState("missing", None, False))
    assert plan == DataPlan(None, False, f"created pypi_data with the new volume {VOLUME}",
                            f"create pypi_data with a new volume {VOLUME}")


def test_a_data_container_removed_by_hand_is_made_again_on_the_same_volume():
    plan = data.plan_data(SETTINGS, DataState("data", None, False, (OLD,)))
    assert plan.copy_from is None and not plan.keep_old_container
    assert "the data container was missing" in plan.done


def test_an_index_in_an_unnamed_volume_moves_into_the_named_one_and_the_old_container_stays():
    plan = data.plan_data(SETTINGS, DataState("missing", OLD, True))
    assert plan.copy_from == OLD and plan.keep_old_container


def test_an_index_left_in_one_dangling_volume_is_reattached():
    plan = data.plan_data(SETTINGS, DataState("missing", None, False, (OLD,)))
    assert plan.copy_from == OLD and not plan.keep_old_container


def test_several_candidate_indexes_are_refused_not_guessed():
    with pytest.raises(TaskError, match="several unattached volumes hold an index"):
        data.plan_data(SETTINGS, DataState("missing", None, False, ("a", "b")))


def test_copy_compares_what_it_copied():
    argv = data.copy_argv(SETTINGS, OLD)
    assert argv[argv.index("--volume") + 1] == f"{OLD}:/from:ro"
    assert f"{VOLUME}:/to" in argv
    assert "diff -r /from /to" in argv[-1]


def legacy_facts(server_running: bool = True) -> Facts:
    """An index of the previous release: packages in the data container's unnamed volume."""
    return Facts(volumes={VOLUME: "missing"},
                 data_containers={"pypi_data:/var/lib/pypicloud": (OLD, "data")},
                 containers={"pypicloud": ContainerFacts("", server_running, 3031)})


def test_moving_an_index_stops_the_server_copies_compares_and_keeps_the_old_container():
    import datetime
    now = datetime.datetime(2026, 11, 25, 12, 0, 0)
    step = data.plan_data_step(SETTINGS, legacy_facts(), True, now)
    argvs = [command.argv for command in step.commands]
    assert argvs[0] == ("docker", "stop", "pypicloud")
    assert argvs[1] == ("docker", "volume", "create", VOLUME)
    assert argvs[2][:2] == ("docker", "run") and "diff -r /from /to" in argvs[2][-1]
    assert argvs[3] == ("docker", "rename", "pypi_data", "pypi_data-before-20261125120000")
    assert argvs[4] == tuple(data.create_argv(SETTINGS))
    assert not data.plan_data_step(SETTINGS, legacy_facts(server_running=False), True,
                                   now).commands[0].argv[1] == "stop"


def test_no_change_is_no_command():
    facts = Facts(volumes={VOLUME: "data"},
                  data_containers={"pypi_data:/var/lib/pypicloud": (VOLUME, "data")})
    step = data.plan_data_step(SETTINGS, facts, True, None)
    assert not hasattr(step, "commands")
