"""Fixtures for the KBS unit tests."""

from __future__ import annotations

import pytest

from .helpers import Broker, make_broker


@pytest.fixture
def broker(tmp_path) -> Broker:
    b = make_broker(str(tmp_path))
    yield b
    b.service.close()
