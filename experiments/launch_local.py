"""Starts one command as N cooperating JAX processes on this machine, as N hosts would run it.

    python -m experiments.launch_local --processes=2 --devices_per_process=4 -- \\
        experiments.pretrain --config=configs/pretrain.py:tiny --workdir=/tmp/run

Each process gets JAX_COORDINATOR_ADDRESS (process 0 on a free localhost port), JAX_NUM_PROCESSES and
JAX_PROCESS_ID, which biomed_jax.distributed.initialize reads (distributed.mode 'auto'), and
  --platform=cpu  (default) `--devices_per_process` simulated CPU devices; collectives over gloo.
                  How the multi-process path is tested without a cluster.
  --platform=gpu  the machine's GPUs split between processes (JAX_LOCAL_DEVICE_IDS), e.g. one process
                  per GPU, the layout of a multi-node GPU job on a single node.
On real hosts no launcher is needed: run the same command on every host (see docs/sharding.md).

Output lines are prefixed with [pN]. SIGINT/SIGTERM are passed on to every process (the training
loop saves a checkpoint and stops); if one process fails, the others are stopped. The exit status is
the first non-zero one.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from biomed_jax import cli
from biomed_jax.distributed import process_env

_PROCESSES = flags.DEFINE_integer("processes", 2, "Number of processes to start.")
_DEVICES = flags.DEFINE_integer("devices_per_process", 4, "cpu: simulated devices per process; gpu: GPUs "
                                "per process (0 = all GPUs split evenly).")
_PLATFORM = flags.DEFINE_enum("platform", "cpu", ["cpu", "gpu"], "The devices each process uses.")
_PORT = flags.DEFINE_integer("port", 0, "Coordinator port on localhost; 0 = a free one.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _count_gpus() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise ValueError("--platform=gpu: nvidia-smi found no GPU on this machine") from None
    return sum(line.startswith("GPU ") for line in out.splitlines())


def _relay(index: int, stream, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"[p{index}] {line}")
        out.flush()


def launch(command: list[str], processes: int, devices: int, platform: str = "cpu", port: int = 0) -> int:
    """Runs `python -m <command...>` as `processes` processes; returns the first non-zero exit status."""
    if not command:
        raise ValueError("give the module to run after --, e.g. -- experiments.pretrain --config=...")
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    n_gpus = _count_gpus() if platform == "gpu" else 0
    port = port or _free_port()
    argv = [sys.executable, "-m", *command]
    children, relays = [], []
    for index in range(processes):
        child = subprocess.Popen(argv, env=process_env(index, processes, port, platform, devices, n_gpus),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        children.append(child)
        relays.append(threading.Thread(target=_relay, args=(index, child.stdout, sys.stdout), daemon=True))
        relays[-1].start()

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while any(child.poll() is None for child in children):
            failed = [c.returncode for c in children if c.returncode not in (None, 0)]
            if failed and not status:
                status = failed[0]
                for child in children:  # the others would wait for the failed one until the timeout
                    if child.poll() is None:
                        child.terminate()
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for relay in relays:
        relay.join(timeout=5)
    return status or next((c.returncode for c in children if c.returncode), 0)


def main(argv):
    sys.exit(launch(argv[1:], _PROCESSES.value, _DEVICES.value, _PLATFORM.value, _PORT.value))


if __name__ == "__main__":
    cli.run(main)
