"""The phase table and the role model agree: each path's group and users come from one phase, the group
first, and no phase creates a role the model does not know."""

from evolution_pipeline.phases import PHASES, SQL_USERS
from evolution_pipeline.roles import APP_PATHS, GROUPS


def test_each_path_is_created_whole_by_one_phase():
    for path in APP_PATHS:
        (phase,) = [p for p in PHASES if set(path.users) & set(p.users)]
        assert set(path.users) <= set(phase.users) and path.group in phase.groups, phase.name


def test_no_phase_creates_an_unknown_role():
    for phase in PHASES:
        assert set(phase.groups) <= set(GROUPS), phase.name
        assert set(phase.users) <= set(SQL_USERS), phase.name


def test_only_the_first_user_of_a_path_has_an_initial_password():
    for path in APP_PATHS:
        assert SQL_USERS[path.users[0]] == path.initial_password_env and SQL_USERS[path.users[1]] is None
