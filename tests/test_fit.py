"""The optimiser is set up as the paper's code does it."""
import torch

from geosr.methods.fit import Schedule, masked_cycle_l1
from geosr.methods.nn.mmsr_net import MMSRNet


def test_schedule_matches_the_papers_loop():
    lr, seen = 0.002, []
    for epoch in range(40):  # the published loop: decay in place before the step of every 5th epoch
        if (epoch + 1) % 5 == 0:
            lr *= 0.9998
        seen.append(lr)
    s = Schedule(epochs=40, lr=0.002, decay=0.9998, decay_every=5)
    assert all(abs(s.lr_at(e) - seen[e]) < 1e-15 for e in range(40))


def test_weight_decay_only_on_the_guide_branch():
    net = MMSRNet(3, 8, 5, 3)
    groups = net.param_groups(5e-4)
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    guide_ids = {id(p) for p in net.guide_branch.parameters()}
    assert {id(p) for p in groups[0]["params"]} == guide_ids
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_paper_network_shape():
    net = MMSRNet(3, 64, 11, 5)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    guide = [m for m in net.guide_branch.modules() if isinstance(m, torch.nn.Conv2d)]
    source = [m for m in net.source_branch.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(guide) == len(source) == 6  # 2 convolutions + 2 residual blocks of 2
    assert all(c.kernel_size == (3, 3) for c in guide) and all(c.kernel_size == (1, 1) for c in source)
    assert len(convs) == 6 + 6 + 3 + 7  # branches, modulation (2 projections + fusion), 3 blocks + output
    assert net.head[-1].out_channels == 1


def test_loss_ignores_invalid_cells():
    pred = torch.zeros(1, 1, 8, 8)
    target = torch.zeros(1, 1, 2, 2)
    target[..., 0, 0] = 100.0
    valid = torch.ones(1, 1, 2, 2)
    assert masked_cycle_l1(pred, target, valid, 4).item() == 25.0
    valid[..., 0, 0] = 0
    assert masked_cycle_l1(pred, target, valid, 4).item() == 0.0


def test_fits_on_threads_at_once_equal_fits_one_at_a_time(depth_pairs):
    """A dask worker with several threads fits several tiles at once (geosr.runtime.cluster.fit_slot).
    torch's random generator is one per process: seeding it in each fit let a neighbour's
    seed or draws reach this fit's weights, so a tile's output depended on what ran beside it."""
    import threading

    import numpy as np

    from geosr.api import superresolve_array

    target, guides = depth_pairs
    lr = target[0, :32, :32].reshape(8, 4, 8, 4).mean(axis=(1, 3))
    guide = guides[0][:, :32, :32]

    def fit(seed):
        return superresolve_array(lr, guide, 4, "mmsr", epochs=2, seed=seed, channels=8, align="none", progress=False)

    alone = {seed: fit(seed) for seed in range(4)}
    for _ in range(3):
        start, together = threading.Barrier(4), {}

        def run(seed):
            start.wait()
            together[seed] = fit(seed)

        threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for seed in range(4):
            np.testing.assert_array_equal(together[seed], alone[seed])
