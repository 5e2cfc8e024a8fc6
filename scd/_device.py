"""Resolving the ``device`` parameter to torch devices."""

from __future__ import annotations

import torch

__all__ = ["resolve_devices"]


def resolve_devices(device: str) -> list[torch.device]:
    """Devices that train the votes: ``"auto"`` (every GPU, else the CPU), ``"cpu"``,
    ``"cuda"`` (every GPU) or ``"cuda:N"`` (that GPU).  Raises ``ValueError`` for a device
    that does not exist here.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if parsed.type == "cpu":
        return [torch.device("cpu")]
    if parsed.type != "cuda":
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device={device!r} was requested but no CUDA GPU is available; use device='cpu'.")
    if parsed.index is None:
        return [torch.device("cuda", i) for i in range(count)]
    if parsed.index >= count:
        raise ValueError(f"device={device!r} does not exist: this machine has {count} CUDA GPU(s).")
    return [parsed]
