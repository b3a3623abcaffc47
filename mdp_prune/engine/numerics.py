"""What a run's numbers depend on besides its configuration.

Training is bitwise deterministic for a given configuration only within one numerical environment: the torch
build, the CPU kernels it dispatches to (AVX2 and AVX-512 kernels round differently), the number of torch threads
and the device. Runs record it so that a figure that changes between machines can be explained.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import torch

# The fields that change results bitwise; the rest (Python, machine) only help to tell environments apart.
NUMERIC_FIELDS = ("torch", "cpu_capability", "threads", "device")


def environment(device: torch.device) -> dict[str, Any]:
    """The current process's numerical environment, for `device`."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'field: before -> now' for each numeric field that differs."""
    return [f"{f}: {before.get(f)} -> {now[f]}" for f in NUMERIC_FIELDS if str(before.get(f)) != str(now[f])]
