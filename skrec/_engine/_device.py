"""Device policy, written in one place."""

import os

import torch

DEVICE_ENV_VAR = "SKREC_DEVICE"


def resolve_device(device="auto"):
    """Turn a device request into an available ``torch.device``.

    ``"auto"`` means the ``SKREC_DEVICE`` environment variable if set, else CUDA,
    else Apple MPS, else CPU. An explicit device that this machine cannot use is a
    ``ValueError`` rather than a failure deep inside the first tensor operation.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        device = os.environ.get(DEVICE_ENV_VAR) or _best_available_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda', 'cuda:<index>' or 'mps'."
        ) from exc
    if not device_is_available(resolved):
        raise ValueError(
            f"device={device!r} was requested but is not available on this machine "
            f"(available: {', '.join(available_devices())}). Use device='auto' to "
            "pick the best available device."
        )
    return resolved


def device_is_available(device):
    """Whether tensors can be placed on ``device`` here."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    backend = getattr(torch, device.type, None)
    return bool(backend is not None and backend.is_available())


def available_devices():
    """Names of the devices this machine offers, best first."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return [*names, "cpu"]


def _best_available_device():
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
