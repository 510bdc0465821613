"""Every release gate of every profile that names a run directory, one test each, through the
plugin's ``judge_gate`` fixture (the one line another project writes to gate its own judges)."""

import pytest

pytestmark = pytest.mark.release


def test_gate(judge_gate) -> None:
    judge_gate.check()
