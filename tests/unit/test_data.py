import pytest

from ppc_tasks import data
from ppc_tasks.data import DataPlan, DataState
from ppc_tasks.host import TaskError
from ppc_tasks.settings import Settings

SETTINGS = Settings.from_config({}, host="pypi.test")
VOLUME = SETTINGS.data_volume
OLD = "3f1c" + "0" * 60  # an unnamed volume, as Docker names them


def test_data_state_is_parsed():
    output = f"volume missing\ncontainer {OLD}\ncontainer-data data\ndangling a\ndangling b\n"
    assert data.parse_data_state(output) == DataState("missing", OLD, True, ("a", "b"))
    assert data.parse_data_state("volume data\ncontainer missing\n") == DataState("data", None, False)


def test_nothing_to_do_when_the_data_container_holds_the_named_volume():
    assert data.plan_data(SETTINGS, DataState("data", VOLUME, True)) is None
    assert data.plan_data(SETTINGS, DataState("empty", VOLUME, False)) is None


def test_a_fresh_host_gets_a_new_volume():
    plan = data.plan_data(SETTINGS, DataState("missing", None, False))
    assert plan == DataPlan(None, False, f"created pypi_data with the new volume {VOLUME}")


def test_a_data_container_removed_by_hand_is_made_again_on_the_same_volume():
    plan = data.plan_data(SETTINGS, DataState("data", None, False, (OLD,)))
    assert plan.copy_from is None and not plan.keep_old_container
    assert "the data container was missing" in plan.detail


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
