"""DistributedDataParallel on CPU: two gloo processes keep identical replicas and share the data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from waveflow_py.config import ExperimentConfig, from_dict


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from waveflow_py.train.loop import Trainer

    trainer = Trainer(from_dict(ExperimentConfig, cfg))
    try:
        adversary = trainer.parts.adversary
        init = {} if adversary is None else {k: v.clone() for k, v in adversary.critic.state_dict().items()}
        res = trainer.run()
        params = {k: v.detach().clone() for k, v in trainer.parts.model.state_dict().items()}
        if adversary is not None:  # the discriminators' replicas too, and where they started
            params |= {f"critic.{k}": v.detach().clone() for k, v in adversary.critic.state_dict().items()}
            params |= {f"init.critic.{k}": v for k, v in init.items()}
        params["__losses"] = torch.tensor([x for _, x in res.losses])
        save_file(params, os.path.join(out, f"rank{rank}.safetensors"))
    finally:
        from waveflow_py.train.distributed import cleanup_distributed

        cleanup_distributed(trainer.dist)


# the adversarial stage: the discriminators in their own DDP, stepped after each generator step
ADVERSARIAL = {
    "adversarial": 1.0,
    "feature_matching": 2.0,
    "adversarial_from": 1,
    "crop": 256,
    "items": 1,
    "disc_lr": 1e-3,
    "disc_periods": [2, 3],
    "disc_period_channels": [4, 4],
    "disc_resolutions": [[64, 16]],
    "disc_resolution_channels": [4, 4],
}


@pytest.mark.parametrize("objective", [{}, ADVERSARIAL], ids=["nll", "adversarial"])
def test_two_gloo_replicas_stay_identical(corpus, tiny_experiment, tmp_path: Path, objective: dict) -> None:
    from waveflow_py.config import to_dict

    exp = tiny_experiment(corpus, tmp_path / "run", steps=4, val_every=2, ckpt_every=2, objective=objective)
    mp.spawn(_worker, args=(2, _free_port(), to_dict(exp), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    l0, l1 = r0.pop("__losses"), r1.pop("__losses")
    assert not torch.equal(l0, l1)  # each rank saw its own shard of the data
    from waveflow_py.models import WaveFlow

    torch.manual_seed(exp.train.seed)
    init = WaveFlow(exp.model_config()).state_dict()
    for name in [n for n in r0 if n.startswith("init.")]:
        init[name[5:]] = r0.pop(name)
        r1.pop(name)
    assert any(name.startswith("critic.") for name in r0) == bool(objective)
    moved = {"model": False, "critic": False}
    for name in r0:
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=1e-7, msg=name)
        moved["critic" if name.startswith("critic.") else "model"] |= not torch.allclose(r0[name], init[name])
    assert moved["model"] and moved["critic"] == bool(objective)  # training changed the weights
    ckpt = tmp_path / "run" / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step_00000004"
    import json

    state = json.loads((ckpt / "step_00000004" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
