"""inclavare.testing.containers: the integration tests' status and wait helpers, kept once."""

from __future__ import annotations

import json
import subprocess

import pytest

from inclavare.testing.containers import status, wait_for, wait_status


class Script:
    """Answers ``rune state`` from a list of statuses (None: the container does not exist)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)

    def __call__(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert args[0] == "state"
        now = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if now is None:
            return subprocess.CompletedProcess(args, 1, "", "container does not exist\n")
        return subprocess.CompletedProcess(args, 0, json.dumps({"id": args[1], "status": now}), "")


def test_status_and_gone():
    assert status(Script("running"), "c") == "running"
    assert status(Script(None), "c") == "gone"


def test_wait_status_polls_until_the_status_and_names_the_last_one_otherwise():
    assert wait_status(Script("running", "running", "stopped"), "c", "stopped") >= 0
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for c to be stopped \(it is running\)$"):
        wait_status(Script("running"), "c", "stopped", timeout=0.1)


def test_wait_for_returns_the_first_true_value():
    values = iter([0, "", "done"])
    assert wait_for(lambda: next(values), "a value", interval=0) == "done"
    with pytest.raises(AssertionError, match="waiting for nothing"):
        wait_for(lambda: None, "nothing", timeout=0.05)
