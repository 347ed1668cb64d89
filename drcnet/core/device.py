"""Which device and precision to run on, and how to describe the machine (logs, cards, benchmark headers)."""
from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

import torch


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """An explicit name wins; otherwise CUDA, then Apple's MPS, then the CPU."""
    if name is not None and str(name) != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """bf16 convolutions only pay off on CPUs with native bf16 dot products (AVX512-BF16 or AMX)."""
    if "AMX" in torch.backends.cpu.get_cpu_capability().upper():
        return True
    try:                  # a oneDNN build without bf16 kernels would emulate them, slower than fp32
        if torch.ops.mkldnn._is_mkldnn_bf16_supported() is False:
            return False
    except Exception:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:       # not Linux: no cheap way to tell, stay on the safe side
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(device: torch.device, precision: str | None = None) -> str:
    """"bf16" or "fp32". None / "auto" picks bf16 where the hardware runs it fast."""
    if precision not in (None, "auto"):
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be 'bf16', 'fp32' or 'auto', got {precision!r}")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"      # MPS: bf16 support varies by macOS version


def machine() -> dict:
    """torch and CUDA versions, the device and its memory: the first line of every burst and every leg."""
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, memory_gb=round(p.total_memory / 2 ** 30, 1), capability=f"{p.major}.{p.minor}")
    else:
        info["device"] = "cpu"
        info["cpu"] = cpu_name()
    return info


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_device(device: torch.device, world: int = 1) -> str:
    """One line naming the device a run used: the GPU's name, or the CPU model with its cores and threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{world} x {name}" if world > 1 else name
    desc = f"CPU {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    return f"{world} processes on {desc}" if world > 1 else desc


def lower_thread_priority(niceness: int) -> None:
    """Raise the calling thread's niceness (Linux schedules threads one by one; the threads and processes it
    starts inherit it), so background work gives way to requests. A no-op where that is not supported."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass
