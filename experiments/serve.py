"""Serves a biomed_jax run directory over an OpenAI-compatible HTTP API, with a chat page at /.

    python -m experiments.serve --checkpoint=RUN_DIR [--host=127.0.0.1] [--port=8000] \
        [--api_key=KEY | BIOMED_API_KEY=KEY] [--config=configs/serve.py --config.slots=16 ...]

Binds 127.0.0.1 unless told otherwise; another address needs an API key. SIGTERM (or Ctrl-C) stops
accepting connections, lets the requests in flight finish (config.shutdown_grace_s), then exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "serve.py")
_CONFIG = cli.define_config_file("config", _DEFAULT_CONFIG, "Serving config.", lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run directory to serve (checkpoints/ and tokenizer.json).")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer.json to use instead of RUN_DIR/tokenizer.json.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to bind; beyond this machine only with an API key.")
_PORT = flags.DEFINE_integer("port", 8000, "Port to listen on.")
_API_KEY = flags.DEFINE_string("api_key", None, "Clients must send Authorization: Bearer KEY (default: "
                               "$BIOMED_API_KEY).")


def main(argv):
    del argv
    quiet_library_logs()
    cfg = _CONFIG.value
    api_key = _API_KEY.value or os.environ.get("BIOMED_API_KEY") or None
    import uvicorn

    from biomed_jax import sharding as shd
    from biomed_jax.run_dir import load_run
    from biomed_jax.serving.server import check_bind, create_app, served

    check_bind(_HOST.value, api_key)
    mesh = shd.make_mesh(dict(cfg.mesh))
    run = load_run(_CHECKPOINT.value, step=None if cfg.step < 0 else cfg.step, mesh=mesh, tokenizer=_TOKENIZER.value)
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"loading {_CHECKPOINT.value} step {run.step}; compiling {cfg.slots} slots ...", file=sys.stderr)
    server = served(run, cfg, mesh)
    print(f"serving {server.name!r} (template {server.template}, context {server.engine.max_len} tokens, "
          f"{server.engine.slots} slots) at http://{_HOST.value}:{_PORT.value}/ ; everything runs on this machine",
          file=sys.stderr)
    # uvicorn finishes the requests in flight on SIGTERM / Ctrl-C, then re-raises the signal to the handler
    # found at start: a no-op one, so that a clean shutdown exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(create_app(server, api_key, grace_s=cfg.shutdown_grace_s), host=_HOST.value, port=_PORT.value,
                log_level=cfg.log_level, timeout_graceful_shutdown=int(cfg.shutdown_grace_s))


if __name__ == "__main__":
    flags.mark_flags_as_required(["checkpoint"])
    cli.run(main)
