"""Run metrics: WORKDIR/metrics.jsonl (one JSON object per log line), TensorBoard, and MFU.

On resume, lines logged after the restored checkpoint's step are dropped, so a run that was
interrupted between a log line and its next checkpoint never shows a step twice.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax

# Dense bf16 peak FLOP/s per chip, by a substring of jax.Device.device_kind (first match wins).
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),  # v5e
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v6 lite", 918e12),  # v6e (Trillium)
    ("TPU v6e", 918e12),
)


def peak_flops_per_device(device: jax.Device | None = None) -> float | None:
    """Peak bf16 FLOP/s of one device, or None where unknown (e.g. CPU), so MFU is reported as null."""
    device = device or jax.devices()[0]
    kind = getattr(device, "device_kind", "")
    for name, flops in PEAK_BF16_FLOPS:
        if name.lower() in kind.lower():
            return flops
    return None


def mfu(flops_per_token: float, tokens_per_sec: float, n_devices: int, peak: float | None) -> float | None:
    """Model FLOP utilisation: achieved model FLOP/s over the devices' combined peak."""
    if peak is None or tokens_per_sec <= 0:
        return None
    return flops_per_token * tokens_per_sec / (peak * n_devices)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """Appends metrics to metrics.jsonl and TensorBoard; only process 0 writes."""

    def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = jax.process_index() == 0
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._drop_records_after(resume_step)
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported lazily: optional at run time

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def _drop_records_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        kept = []
        with open(self.path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off by a crash mid-write
                if record.get("step", 0) <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _finite_or_none(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and value is not None and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
