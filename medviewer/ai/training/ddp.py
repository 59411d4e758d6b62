"""Process group under torchrun (DDP): gloo on the CPU, NCCL on CUDA; a no-op for one process.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous
address; without them the run is a single process. Only rank 0 prints, evaluates and writes;
the others train their DistributedSampler share and follow rank 0's decisions, which travel
as small tensors (no pickled objects).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistContext", "DistEnv", "dist_env", "setup", "threads_per_process", "use_local_gpu"]


def threads_per_process(local_world_size: int, threads: int | None = None) -> int:
    """torch CPU threads of one training process: ``threads`` (``--threads``; the app passes
    all cores but one, so the GUI keeps a core) shared by the node's processes, else every
    core the process may use shared by them."""
    from medviewer.ai.device import cpu_cores

    total = cpu_cores() if threads is None else int(threads)
    return max(1, total // max(1, local_world_size))


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun launch (one process: rank 0 of 1)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1


def dist_env(environ=None) -> DistEnv:
    """torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (no torch)."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    return DistEnv(int(env.get("RANK", "0") or 0), world, int(env.get("LOCAL_RANK", "0") or 0),
                   int(env.get("LOCAL_WORLD_SIZE", str(world)) or world))


def use_local_gpu(local_rank: int) -> bool:
    """Make ``cuda`` mean this process's GPU (local rank modulo the GPUs seen) when CUDA is
    available; False without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return False
    torch.cuda.set_device(local_rank % max(1, torch.cuda.device_count()))
    return True


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model):
        """DistributedDataParallel around ``model`` when distributed, else ``model``."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda:") else None
        return DDP(model, device_ids=ids)

    def broadcast_floats(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (same length everywhere)."""
        if not self.distributed:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(t, src=0)
        return [float(v) for v in t.cpu()]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks (e.g. the epoch's training loss)."""
        if not self.distributed:
            return float(value)
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _comm_device(self) -> str:
        return self.device if self.backend == "nccl" else "cpu"


def setup(device: str, threads: int | None = None) -> DistContext:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1; ``device`` is "cpu" or "cuda"
    (already resolved); each process gets its share of CPU threads (of ``threads``, default
    every core)."""
    import torch

    env = dist_env()
    world, rank, local_rank = env.world_size, env.rank, env.local_rank
    torch.set_num_threads(threads_per_process(env.local_world_size, threads))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if world <= 1:
        return DistContext(0, 1, 0, device, "")
    import datetime

    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank, world, local_rank, device, backend)
