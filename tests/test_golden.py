"""Outputs bit for bit as before the pipeline was restructured (issue 19): tests/golden/cases.py
runs each case; tests/golden/outputs.npz holds what the code gave before."""
import json

import numpy as np
import pytest

from golden.cases import OUTPUTS, run_all


@pytest.fixture(scope="module")
def results(small_files, depth_pairs):
    return run_all(small_files, depth_pairs)


def test_outputs_and_tags_are_bitwise_the_golden_ones(results):
    saved = np.load(OUTPUTS)
    assert sorted(saved.files) == sorted(results)
    for name in saved.files:
        want, got = saved[name], results[name]
        if want.dtype.kind == "U":
            assert json.loads(str(got)) == json.loads(str(want)), name
            continue
        assert got.shape == want.shape, name
        differ = ~((got == want) | (np.isnan(got) & np.isnan(want)))
        assert not differ.any(), f"{name}: {int(differ.sum())} pixels differ, by up to {np.nanmax(abs(got - want))}"
