"""trainables.optim.AdamW against torch.optim.AdamW: the same parameters after every step, the same
state dicts both ways, and no torch._dynamo import in a fresh process that trains a trial."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import torch

from trainables.optim import AdamW

SETTINGS = {"lr": 3e-3, "weight_decay": 0.05}
ROOT = Path(__file__).resolve().parents[1]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def train(net: torch.nn.Module, opt, steps: range) -> None:
    """`steps` updates on fixed batches; on odd steps only the last layer gets a gradient, so
    per-parameter step counts differ (the first layer's bias correction lags)."""
    for step in steps:
        gen = torch.Generator().manual_seed(step)
        x, y = torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad()
        if step % 2:
            hidden = net[1](net[0](x)).detach()
            loss = torch.nn.functional.cross_entropy(net[2](hidden), y)
        else:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_steps_match_torch_adamw_exactly():
    ours, ref = model(), model()
    opt, ref_opt = (
        AdamW(ours.parameters(), **SETTINGS),
        torch.optim.AdamW(ref.parameters(), **SETTINGS),
    )
    for start in range(0, 30, 5):
        train(ours, opt, range(start, start + 5))
        train(ref, ref_opt, range(start, start + 5))
        assert same(ours, ref), f"parameters differ after step {start + 5}"
    assert not same(ours, model()), "nothing was trained"


def test_state_dicts_load_both_ways():
    """Train 7 steps with one, hand the state to the other, train 7 more: as if never switched."""
    base = model()
    for first, second in ((AdamW, torch.optim.AdamW), (torch.optim.AdamW, AdamW)):
        ref = copy.deepcopy(base)
        ref_opt = torch.optim.AdamW(ref.parameters(), **SETTINGS)
        train(ref, ref_opt, range(14))

        net = copy.deepcopy(base)
        opt = first(net.parameters(), **SETTINGS)
        train(net, opt, range(7))
        state = copy.deepcopy(opt.state_dict())
        resumed = copy.deepcopy(net)
        opt2 = second(resumed.parameters(), **SETTINGS)
        opt2.load_state_dict(state)
        train(resumed, opt2, range(7, 14))
        assert same(resumed, ref), f"{first.__module__} -> {second.__module__}"


def test_a_fresh_trial_process_does_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from trainables.params import TrialParams\n"
        "from trainables.synthetic import SyntheticSpec, make_synthetic\n"
        "from trainables.trial import train\n"
        "data = make_synthetic(SyntheticSpec(n_train=200, n_val=100, n_test=50, reviewers=10))\n"
        "params = TrialParams.from_flat({'train.max_epochs': 2, 'loss.kind': 'focal'})\n"
        "train(params, data, lambda metrics, state: None, torch.device('cpu'))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
