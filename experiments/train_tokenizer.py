"""Trains the domain byte-level BPE tokenizer on the cleaned corpus and reports its fertility.

    python -m experiments.train_tokenizer --config=configs/data.py:synthetic --workdir=/tmp/tok \
        [--config.tokenizer.vocab_size=28896 --config.tokenizer.path=HF_TOKENIZER_JSON --overwrite]

Writes WORKDIR/config.json, WORKDIR/clean/ (the cleaned corpus, reused when present),
WORKDIR/tokenizer.json (with --config.tokenizer.path: nothing trained, only the report),
WORKDIR/tokenizer_training.json and WORKDIR/fertility.json. Rerunning reuses tokenizer.json
unless --overwrite.
"""

from __future__ import annotations

import os

from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import write_json

_CONFIG = cli.define_config_file("config", None, "Data config and preset, e.g. configs/data.py:synthetic",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder: tokenizer.json, fertility.json, clean/.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Retrain even if WORKDIR/tokenizer.json exists.")


def main(argv):
    del argv
    quiet_library_logs()
    from biomed_jax.data.corpus import check_data_config, clean_corpus
    from biomed_jax.data.tokenizer import build_or_load, tokenizer_options

    cfg, workdir = _CONFIG.value, _WORKDIR.value
    check_data_config(cfg)
    tokenizer_options(cfg)  # fail on a bad tokenizer section before the (long) clean stage
    # The record of the latest run, not run_dir.ensure_same_settings: what WORKDIR holds checks its own
    # settings (clean/ refuses other ones, the tokenizer is retrained with --overwrite), and settings that
    # change nothing there (held_out_docs, terms_file: only the report) may change between runs.
    write_json(os.path.join(workdir, "config.json"), cfg.to_dict(), sort_keys=True)
    corpus = clean_corpus(cfg, workdir, progress=True)
    totals = corpus.report["filters"]["total"]
    print(f"clean corpus: kept {totals['kept']} of {totals['seen']} documents ({corpus.directory})")
    _, path, report = build_or_load(cfg, corpus, workdir, overwrite=_OVERWRITE.value, show_progress=True)

    training = report["tokenizer"]["training"]
    if training["status"] == "reused":
        print(f"tokenizer: {path} already exists; skipped training (--overwrite retrains)")
    elif training["status"] == "loaded":
        print(f"tokenizer: loaded {path} (tokenizer.path); nothing trained")
    else:
        asked = training["requested_vocab_size"]
        note = "" if training["vocab_size"] == asked else f" (asked for {asked}: the corpus is too small)"
        print(f"tokenizer: trained in {training['seconds']} s -> {path}{note}")
    summary, held = report["summary"], report["held_out"]
    print(f"vocab size {summary['vocab_size']}, eos id {report['tokenizer']['eos_id']}")
    print(f"held-out: {held['docs']} docs, {held['words']} words -> {held['tokens']} tokens: "
          f"{summary['tokens_per_word']} tokens/word, {summary['chars_per_token']} chars/token, "
          f"{summary['single_token_word_fraction']} of words one token")
    print(f"terms: {summary['mean_tokens_per_term']} tokens per term on average, "
          f"{summary['single_token_terms']} of {summary['terms']} single tokens")
    rows = report["terms"]
    for row in rows if len(rows) <= 8 else rows[:5] + rows[-3:]:   # built-in terms first, the corpus's last
        print(f"  {row['term']:<24} {row['tokens']:>2}  {'|'.join(row['pieces']).lstrip()}")
    print(f"report: {os.path.join(workdir, 'fertility.json')}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
