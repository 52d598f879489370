"""The container lifecycle table (runtime/state.py): every allowed move, and a test per refused one."""

from __future__ import annotations

import pytest

from inclavare.errors import InvalidTransition
from inclavare.runtime import state as st

VERBS = ("start", "pause", "resume", "kill", "exec", "update", "attest", "ps", "events", "delete", "delete --force")
STATUSES = (st.CREATING, st.CREATED, st.RUNNING, st.PAUSED, st.STOPPED)

ALLOWED = {
    (st.CREATING, "delete --force"): None,
    (st.CREATED, "start"): st.RUNNING,
    (st.CREATED, "kill"): st.STOPPED,
    (st.CREATED, "exec"): st.CREATED,
    (st.CREATED, "update"): st.CREATED,
    (st.CREATED, "attest"): st.CREATED,
    (st.CREATED, "ps"): st.CREATED,
    (st.CREATED, "events"): st.CREATED,
    (st.CREATED, "delete --force"): None,
    (st.RUNNING, "pause"): st.PAUSED,
    (st.RUNNING, "kill"): st.STOPPED,
    (st.RUNNING, "exec"): st.RUNNING,
    (st.RUNNING, "update"): st.RUNNING,
    (st.RUNNING, "attest"): st.RUNNING,
    (st.RUNNING, "ps"): st.RUNNING,
    (st.RUNNING, "events"): st.RUNNING,
    (st.RUNNING, "delete --force"): None,
    (st.PAUSED, "resume"): st.RUNNING,
    (st.PAUSED, "kill"): st.STOPPED,
    (st.PAUSED, "update"): st.PAUSED,
    (st.PAUSED, "ps"): st.PAUSED,
    (st.PAUSED, "events"): st.PAUSED,
    (st.PAUSED, "delete --force"): None,
    (st.STOPPED, "delete"): None,
    (st.STOPPED, "delete --force"): None,
}
PHRASES = {"exec": "exec in", "ps": "list the processes of", "events": "watch the events of"}
HINTS = {"delete": " (use --force)", "kill": " (container not running)"}  # containerd matches the latter
REFUSED = [(s, v) for s in STATUSES for v in VERBS if (s, v) not in ALLOWED]


def test_the_table_is_exactly_the_lifecycle():
    table = {(s, v): to for s, row in st.TRANSITIONS.items() for v, to in row.items()}
    assert table == ALLOWED


@pytest.mark.parametrize(("status", "verb"), list(ALLOWED))
def test_allowed(status, verb):
    assert st.transition("c1", status, verb) == ALLOWED[(status, verb)]


@pytest.mark.parametrize(("status", "verb"), REFUSED)
def test_refused(status, verb):
    with pytest.raises(InvalidTransition) as err:
        st.transition("c1", status, verb)
    assert str(err.value) == f"cannot {PHRASES.get(verb, verb)} container c1: it is {status}{HINTS.get(verb, '')}"
    assert (err.value.status, err.value.op, err.value.exit_code) == (status, verb, 1)


def test_statuses_are_strings_of_their_own_type():
    assert isinstance(st.RUNNING, st.Status)
    assert st.RUNNING == "running"
    assert f"{st.PAUSED}" == "paused"
