"""Sharding a run across processes and nodes on torch.distributed.

``torchrun --nproc_per_node N -m egobench run ...`` or ``accelerate launch -m
egobench run ...`` set ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; each process
takes the samples at positions ``rank, rank + world, ...`` of the split (a
deterministic shard), writes its images (one file per sample), scores its
shard, and rank 0 gathers the per-sample rows and the set metrics' features
(FID) and writes the results, which equal a single-process run. The run
directory must be on a file system every process sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def cuda_device(self) -> str:
        """This process's GPU: ``cuda:<local rank>``, wrapping round when processes outnumber GPUs
        (several processes on one GPU need a backend that allows it: gloo, see ``backend_for``)."""
        import torch

        device = f"cuda:{self.local_rank % max(1, torch.cuda.device_count())}"
        torch.cuda.set_device(device)  # NCCL's object collectives use the current device
        return device

    def shard(self, items: list) -> list:
        return items[self.rank :: self.world] if self.active else items

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()

    def gather(self, obj: Any) -> list[Any] | None:
        """All ranks' ``obj`` on rank 0 (``None`` elsewhere)."""
        if not self.active:
            return [obj]
        import torch.distributed as td

        out: list[Any] | None = [None] * self.world if self.is_main else None
        td.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj if self.is_main else None]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.initialized_here:
            import torch.distributed as td

            td.destroy_process_group()
            self.initialized_here = False


def from_env(device: str) -> Dist:
    """Join the process group the launcher described (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    import torch.distributed as td

    here = False
    if not td.is_initialized():
        backend = backend_for(device)
        td.init_process_group(backend=backend)
        here = True
    return Dist(rank, world, local_rank, here)


def backend_for(device: str) -> str:
    """The process-group backend: ``EGOBENCH_DIST_BACKEND`` when set (``gloo`` lets several
    processes share one GPU, which NCCL refuses), else NCCL for CUDA and gloo for the CPU.
    Only Python objects on the CPU cross processes (per-sample rows, FID features), so
    either backend gives the same results."""
    chosen = os.environ.get("EGOBENCH_DIST_BACKEND", "").strip().lower()
    if chosen:
        if chosen not in ("nccl", "gloo"):
            from .errors import UserError

            raise UserError(f"EGOBENCH_DIST_BACKEND={chosen!r} is not a backend; use nccl or gloo")
        return chosen
    return "nccl" if device.startswith("cuda") else "gloo"
