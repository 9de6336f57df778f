"""Outputs bit for bit as before the pipeline was restructured (issue 19): tests/golden/cases.py
runs each case; tests/golden/outputs.json holds the digests and tags of what the code gave before.

Float kernels differ between CPU instruction sets (torch picks AVX2 or AVX-512 code at run time), so
the bitwise check holds on the instruction set the digests were made on (``_platform``); on another
one, the shape and NaN count must match exactly and the statistics to 1e-5 relative."""
import json

import numpy as np
import pytest

from golden.cases import OUTPUTS, run_all


@pytest.fixture(scope="module")
def results(small_files, depth_pairs):
    return run_all(small_files, depth_pairs)


def test_outputs_and_tags_are_bitwise_the_golden_ones(results):
    import torch

    saved = json.loads(OUTPUTS.read_text())
    made_on = saved.pop("_platform")["torch_cpu_capability"]
    bitwise = torch.backends.cpu.get_cpu_capability() == made_on
    assert sorted(saved) == sorted(results)
    for name, want in saved.items():
        got = results[name]
        if name.endswith(".tags"):
            assert got == want, name
            continue
        assert got["shape"] == want["shape"] and got["nan"] == want["nan"], name
        if bitwise:
            assert got["sha256"] == want["sha256"], f"{name} is not bitwise the golden output: now {got}, was {want}"
        else:
            for stat in ("mean", "min", "max"):
                np.testing.assert_allclose(got[stat], want[stat], rtol=1e-5, err_msg=f"{name} {stat} (made on {made_on})")
