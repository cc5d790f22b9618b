"""The optimisers' lazy row updates (fitted initial states) against torch's SparseAdam."""

import copy

import torch

from physdyn.training._optim import Adam, AdamW


def _batches(n_rows: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_rows, generator=g)[:3] for _ in range(steps)]


def _loss(picked: torch.Tensor) -> torch.Tensor:
    """A loss of the rows a batch picked (the fitted states of its windows)."""
    target = torch.arange(picked.shape[1], dtype=picked.dtype)
    return (picked - target).pow(2).sum() + picked.pow(3).sum()


def test_lazy_rows_follow_sparse_adam_and_leave_other_rows_alone():
    torch.manual_seed(0)
    start = torch.randn(10, 4, dtype=torch.float64)
    # Reference: SparseAdam on an embedding with sparse gradients, which updates only the rows present.
    table = torch.nn.Embedding(10, 4, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        table.weight.copy_(start)
    reference = torch.optim.SparseAdam(table.parameters(), lr=0.05)
    ours = torch.nn.Parameter(start.clone())
    extra = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))  # an ordinary dense parameter beside it
    optimizer = Adam([{"params": [extra]}, {"params": [ours], "lazy_rows": True}], lr=0.05)
    for rows in _batches(10, 40):
        before = ours.detach().clone()
        reference.zero_grad()
        _loss(table(rows)).backward()
        reference.step()
        optimizer.zero_grad()
        (_loss(ours[rows]) + extra.pow(2).sum()).backward()
        optimizer.step()
        untouched = torch.ones(10, dtype=torch.bool)
        untouched[rows] = False
        assert torch.equal(ours.detach()[untouched], before[untouched])  # no drift on stale momentum
    torch.testing.assert_close(ours.detach(), table.weight.detach(), rtol=1e-12, atol=1e-12)
    assert not torch.equal(ours.detach(), start)


def test_dense_groups_step_as_torch_does():
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = AdamW([a], lr=0.1, weight_decay=0.01), torch.optim.AdamW([b], lr=0.1, weight_decay=0.01)
    for _ in range(20):
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            (p.pow(4).sum() - p.sum()).backward()
            opt.step()
    assert torch.equal(a, b)


def test_state_survives_a_round_trip_through_state_dict():
    p = torch.nn.Parameter(torch.randn(6, 2, dtype=torch.float64))
    opt = Adam([{"params": [p], "lazy_rows": True}], lr=0.1)
    for rows in _batches(6, 5, seed=2):
        opt.zero_grad()
        _loss(p[rows]).backward()
        opt.step()
    twin = torch.nn.Parameter(p.detach().clone())
    restored = Adam([{"params": [twin], "lazy_rows": True}], lr=0.1)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))  # as a checkpoint file would: no shared tensors
    for q, o in ((p, opt), (twin, restored)):
        o.zero_grad()
        _loss(q[torch.tensor([0, 4])]).backward()
        o.step()
    assert torch.equal(p, twin)
