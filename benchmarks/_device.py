"""``--device`` for the benchmarks: a checked torch.device, and a barrier for timing on it."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """torch.device(name), or a one-line SystemExit when it cannot run here (CUDA absent, bad name)."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise SystemExit(f"--device: {name!r} is not a torch device ({e}); use cpu or cuda[:i]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device {name}: torch {torch.__version__} sees no CUDA device here "
                f"(torch.cuda.is_available() is False; built with CUDA {torch.version.cuda}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise SystemExit(f"--device {name}: the benchmarks run on cpu or cuda; got device type {dev.type!r}")
    return dev


def sync(device: torch.device) -> None:
    """Wait for queued kernels (CUDA launches are asynchronous), so that a wall-clock reading covers them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
