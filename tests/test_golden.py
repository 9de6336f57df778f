"""Outputs bit for bit as before the pipeline was restructured (issue 19): tests/golden/cases.py
runs each case; tests/golden/outputs.json holds the digests and tags of what the code gave before."""
import json

import pytest

from golden.cases import OUTPUTS, run_all


@pytest.fixture(scope="module")
def results(small_files, depth_pairs):
    return run_all(small_files, depth_pairs)


def test_outputs_and_tags_are_bitwise_the_golden_ones(results):
    saved = json.loads(OUTPUTS.read_text())
    assert sorted(saved) == sorted(results)
    for name, want in saved.items():
        got = results[name]
        if name.endswith(".tags"):
            assert got == want, name
            continue
        assert got["shape"] == want["shape"], name
        assert got["sha256"] == want["sha256"], f"{name} is not bitwise the golden output: now {got}, was {want}"
