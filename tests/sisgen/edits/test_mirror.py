"""mirror (cv2.flip where it applies) equals numpy's reversed copy for every layout."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen.edits.geometric import mirror


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.bool_, np.float32])
def test_mirror_equals_numpy_flip(dtype):
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (1, 9), (6, 1), (4, 5, 3), (4, 5, 1), (3, 4, 6), (0, 3)]:
        a = rng.integers(0, 3, shape).astype(dtype)
        for axis in (0, 1):
            out = mirror(a, axis)
            assert out.dtype == a.dtype and out.shape == a.shape
            np.testing.assert_array_equal(out, np.flip(a, axis))
            assert not np.shares_memory(out, a)
    view = rng.integers(0, 3, (6, 8)).astype(dtype)[:, ::2]
    np.testing.assert_array_equal(mirror(view, 1), np.flip(view, 1))
