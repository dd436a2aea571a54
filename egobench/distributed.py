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
        backend = "nccl" if device.startswith("cuda") else "gloo"
        td.init_process_group(backend=backend)
        here = True
    return Dist(rank, world, local_rank, here)
