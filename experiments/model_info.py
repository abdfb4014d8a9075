"""Prints one JSON object describing a preset's model, computed from abstract shapes only.

    python -m experiments.model_info --config=configs/pretrain.py:biomedlm_2p7b
    {"preset": "biomedlm_2p7b", "n_params": 2594247680, ...}
"""

import json

from absl import flags

from biomed_jax import cli
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.info import model_info

_CONFIG = cli.define_config_file("config", None, "Config file and preset, e.g. configs/pretrain.py:tiny",
                                          lock_config=True)


def main(argv):
    del argv
    cfg = _CONFIG.value
    model_cfg = ModelConfig.from_dict(cfg.model)
    seq_len = cfg.train.seq_len if "train" in cfg else None
    print(json.dumps({"preset": cfg.get("preset"), **model_info(model_cfg, seq_len)}))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    cli.run(main)
