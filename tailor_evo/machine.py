"""How fast the machine was: a short matmul probe recorded with every run.

The same job takes 11 minutes on one day and 15 on another on machines of the same
kind, so a run's times only compare with another's next to a figure of the machine's
speed at the time. The probe times an fp32 matmul of the shape that dominates a small
model's training step (tokens x hidden @ hidden x 8/3 hidden, the MLP's up-projection)
on the threads torch uses, and reports GFLOP/s: a run that took longer on a machine
with a lower figure was slowed by the machine, not by the code.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, fields


@dataclass
class MachineSpeed:
    cpu: str            # the processor's model name, as the OS reports it
    cores: int          # logical CPUs this process may use
    threads: int        # torch's intra-op threads during the probe
    gflops: float       # fp32 matmul GFLOP/s of the probe's shape

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MachineSpeed":
        """The record back from a run's summary (whose stage entries carry extra keys such as ``_seconds``)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def summary(self) -> str:
        return (f"{self.cpu}, {self.cores} cores, {self.threads} torch threads; "
                f"fp32 matmul {self.gflops:.0f} GFLOP/s")


def matmul_gflops(hidden: int = 192, tokens: int = 4096, threads: int | None = None, repeats: int = 20) -> float:
    """GFLOP/s of ``repeats`` fp32 matmuls (tokens x hidden @ hidden x 8/3 hidden), after three
    untimed warm-up products. ``threads`` sets torch's intra-op threads for the probe and
    restores them after."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(tokens, hidden), torch.randn(hidden, hidden * 8 // 3)
        for _ in range(3):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return 2 * tokens * hidden * (hidden * 8 // 3) * repeats / seconds / 1e9


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def probe_machine() -> MachineSpeed:
    """The machine's speed now (under a second): the figure a run records beside its times."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return MachineSpeed(cpu=cpu_name(), cores=cores, threads=torch.get_num_threads(),
                        gflops=round(matmul_gflops(repeats=60), 1))
