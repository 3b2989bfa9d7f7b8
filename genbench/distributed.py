"""Devices and the process group, in one place for eval, sampling, training and the tokenizer comparison.

Under `torchrun` (WORLD_SIZE > 1 in the environment) `init_distributed` joins the process group; every other
helper here works unchanged in one process (rank 0 of 1), where collectives are no-ops.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.distributed as dist

from genbench.errors import GenbenchError


def local_device(device: str) -> str:
    """The torch device this process uses. "auto" (every command's default) picks cuda when available;
    under torchrun "auto"/"cuda" become cuda:LOCAL_RANK. A device this machine cannot use is an error
    here, before any work starts, not a traceback from deep inside torch."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise GenbenchError(f"--device {device!r}: unknown device; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GenbenchError(f"--device {device}: CUDA is not available on this machine; use --device cpu "
                                "(or auto)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        if int(device.partition(":")[2] or 0) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise GenbenchError(f"--device {device}: this machine has {count} CUDA device(s)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise GenbenchError("--device mps: MPS is not available on this machine; use --device cpu (or auto)")
    return device


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1); joins nothing."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str | None = None) -> tuple[int, int]:
    """Join the process group that `torchrun` describes in the environment (nccl for a cuda `device`, gloo
    otherwise; device None: cuda when available); (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return rank_and_world()


def rank_slice(count: int, rank: int, world_size: int) -> range:
    """The contiguous slice of `count` sample indices that `rank` takes."""
    per_rank = -(-count // world_size)
    return range(min(rank * per_rank, count), min((rank + 1) * per_rank, count))


def gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """All ranks' rows [n_rank, D] with their sample indices [n_rank], put back into sample order (one
    process: returned as they are, not copied)."""
    if not is_distributed():
        return rows
    gathered: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (rows.cpu(), index.cpu()))
    all_rows = torch.cat([r for r, _ in gathered])  # type: ignore[misc]
    all_index = torch.cat([i for _, i in gathered])  # type: ignore[misc]
    return all_rows[torch.argsort(all_index)]


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value` (picklable, made by genbench itself), in rank order; [value] in one process."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_from_rank0(value: Any) -> Any:
    """Rank 0's `value` on every rank (e.g. the path of rank 0's temporary folder)."""
    if not is_distributed():
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def barrier() -> None:
    """Wait for every rank; a no-op in one process."""
    if is_distributed():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of each process's input is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of every rank's `tensor`, differentiable (synchronised BatchNorm statistics); in one process
    the tensor itself."""
    return _AllReduceSum.apply(tensor) if is_distributed() else tensor
