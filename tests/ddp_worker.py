"""Run under torchrun by tests/test_distributed.py: train a tiny dcgan run data-parallel, then check that every
process ended with the same weights and that each trained on its own examples and drew its own noise."""

import json
import sys

import torch
import torch.distributed as dist

from gancore import distributed
from gancore.loop import prepare, train
from tests.conftest import tiny

out = sys.argv[1]
state = prepare("dcgan", tiny(train={"steps": 6, "batch_size": 16}), out=out)
first_example = state.data.x[0].clone()
train(state, progress=False)
world = state.world
weights = torch.cat([p.detach().flatten() for m in state.nets.named().values() for p in m.parameters()])
gathered = [torch.zeros_like(weights) for _ in range(world.size)]
dist.all_gather(gathered, weights)
firsts = [torch.zeros_like(first_example) for _ in range(world.size)]
dist.all_gather(firsts, first_example)
noise = torch.rand(8)  # the global stream D's noise layers and random shifts draw from
noises = [torch.zeros_like(noise) for _ in range(world.size)]
dist.all_gather(noises, noise)
if world.main:
    report = {"world": world.size, "in_sync": all(torch.equal(gathered[0], w) for w in gathered),
              "shards_differ": not torch.equal(firsts[0], firsts[1]),
              "noise_differs": not torch.equal(noises[0], noises[1]), "examples": len(state.data),
              "run_dir": str(state.run_dir)}
    with open(f"{out}.report.json", "w") as f:
        json.dump(report, f)
distributed.finish(state.nets)
