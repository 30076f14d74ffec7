"""How often a start's readiness wait looks (servers/services/launch.py): often
while a start is quick, less once it has taken long (a crowd on a busy node)."""

from __future__ import annotations

import pytest

from servers.services.launch import ready_poll_cap


@pytest.mark.parametrize(
    ("waited", "cap"),
    [
        (0.0, 0.05),
        (2.0, 0.05),
        (10.0, 0.05),
        (11.0, 0.07),
        (15.0, 0.15),
        (20.0, 0.25),
        (600.0, 0.25),
    ],
)
def test_readiness_polls_slow_down_only_once_a_start_has_taken_long(waited, cap):
    assert ready_poll_cap(waited) == pytest.approx(cap)
