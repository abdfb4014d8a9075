"""Parameter + optimizer memory of full fine-tuning, LoRA, int8-LoRA and nf4-LoRA for model presets,
computed from abstract shapes (no allocation). Prints a markdown table (GiB) and writes JSON if asked.

    python -m experiments.adapt_memory --presets=biomedlm_2p7b,llama2_7b [--param_dtype=bfloat16]
        [--lora_rank=8 --lora_targets=attention_mlp] [--json=OUT.json]
"""

from absl import flags

from biomed_jax import cli
from biomed_jax.adapt.lora import LoraSettings
from biomed_jax.kinds import Method
from biomed_jax.adapt.memory import memory_report
from biomed_jax.models.config import ModelConfig
from biomed_jax.run_dir import write_json
from configs.models import model_preset

_PRESETS = flags.DEFINE_list("presets", ["biomedlm_2p7b", "llama2_7b"], "configs/models.py presets.")
_DTYPE = flags.DEFINE_string("param_dtype", "", "Override the presets' param_dtype (e.g. bfloat16).")
_RANK = flags.DEFINE_integer("lora_rank", 8, "LoRA rank.")
_TARGETS = flags.DEFINE_string("lora_targets", "attention_mlp", "LoRA targets (a TARGETS name or regex).")
_JSON = flags.DEFINE_string("json", "", "Also write the reports here.")

GIB = 1024 ** 3


def main(argv):
    del argv
    settings = LoraSettings(rank=_RANK.value, alpha=2.0 * _RANK.value, targets=_TARGETS.value)
    rows = []
    print("| model | method | trainable params | frozen GiB | trainable GiB | optimizer GiB | total GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in _PRESETS.value:
        values = model_preset(preset)
        if _DTYPE.value:
            values["param_dtype"] = _DTYPE.value
        cfg = ModelConfig.from_dict(values)
        for method in Method:
            r = dict(memory_report(cfg, method, settings), model=preset, param_dtype=cfg.param_dtype)
            rows.append(r)
            print(f"| {preset} ({cfg.param_dtype}) | {method} | {r['trainable_params']:,} | "
                  f"{r['frozen_bytes'] / GIB:.2f} | {r['trainable_bytes'] / GIB:.2f} | "
                  f"{r['optimizer_bytes'] / GIB:.2f} | {r['total_bytes'] / GIB:.2f} |")
    if _JSON.value:
        write_json(_JSON.value, rows)


if __name__ == "__main__":
    cli.run(main)
