"""Forward-backward consistency (``inference/consistency.py``): occlusion masks and confidence."""

import numpy as np

from pwcflow.data import synthetic
from pwcflow.inference import consistency

SIZE = (64, 96)


def test_consistency_recovers_known_occlusions():
    """Ground-truth forward and backward flows of generated pairs: the check's occlusion mask agrees with
    the generator's known occlusions on >= 95 % of pixels and finds >= 97 % of the occluded ones."""
    spec = synthetic.SyntheticSpec(size=SIZE)
    agree, found = [], []
    for i in range(6):
        _, _, fwd, bwd, known = synthetic.make_pair_occlusion(spec, "val", i)
        assert known.any() and not known.all()
        occ, conf = consistency.occlusion(fwd, bwd)
        agree.append((occ == known).mean())
        found.append((occ & known).sum() / known.sum())
        assert conf[~occ].min() > np.exp(-1) - 1e-6 and conf[occ].max() <= np.exp(-1) + 1e-6
    assert min(agree) >= 0.95 and min(found) >= 0.97, (agree, found)


def test_consistency_constant_shift():
    """A 3 px shift right: only the last 3 columns leave the frame; an inconsistent backward flow fails."""
    fwd = np.zeros(SIZE + (2,), np.float32)
    fwd[..., 0] = 3.0
    occ, conf = consistency.occlusion(fwd, -fwd)
    assert occ[:, -3:].all() and not occ[:, :-3].any() and np.allclose(conf[:, :-3], 1.0)
    occ, _ = consistency.occlusion(fwd, np.zeros_like(fwd))  # |f+b|^2 = 9 > 0.01 * 9 + 0.5
    assert occ.all()
