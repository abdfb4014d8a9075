"""Data preparation as one resumable call: clean + dedup -> tokenizer -> TFDS token dataset.

Used by experiments.prepare_data and experiments.quickstart; each stage skips what is already done.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

from absl import logging

from biomed_jax import files
from biomed_jax.data import token_dataset
from biomed_jax.data.corpus import check_data_config, clean_corpus, world_dir
from biomed_jax.data.tokenizer import build_or_load


def prepare(cfg, data_dir: str, beam_options: str = "") -> token_dataset.TokenDataset:
    """Runs every stage not yet done; returns the finished dataset. With `engine` beam the clean and
    dataset stages run as Beam pipelines with `beam_options` (TFDS's comma-separated format)."""
    check_data_config(cfg)
    if files.is_remote(data_dir):
        raise ValueError(f"--data_dir={data_dir}: the dataset's array_record files are written through local "
                         f"paths only (google/array_record#120); give a local or mounted folder (NFS, gcsfuse) "
                         f"and put the work files in the bucket with --config.work_dir")
    path = token_dataset.dataset_dir(data_dir, cfg.name)
    if os.path.exists(os.path.join(path, "dataset_info.json")):
        print(f"dataset already prepared: {path} (delete it to rebuild)")
        return token_dataset.TokenDataset(data_dir, cfg.name)
    work_dir = work_folder(cfg, data_dir)
    if cfg.get("engine", "local") == "beam" and not beam_options:
        beam_options = "runner=DirectRunner"
    corpus = clean_corpus(cfg, work_dir, progress=True, beam_options=beam_options)
    filters = corpus.report["filters"]["total"]
    print(f"clean: kept {filters['kept']} of {filters['seen']} documents "
          f"({json.dumps({k: v for k, v in filters.items() if k not in ('seen', 'kept')})}); "
          f"report: {corpus.directory}/clean_report.json")
    tokenizer, tokenizer_path, _ = build_or_load(cfg, corpus, files.join(work_dir, "tokenizer"))
    for stale in glob.glob(os.path.join(os.path.dirname(path), "incomplete.*")):
        logging.info("removing %s, left by an interrupted build", stale)
        shutil.rmtree(stale, ignore_errors=True)
    return token_dataset.build_token_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir, beam_options)


def work_folder(cfg, data_dir: str) -> str:
    """Where the stages keep their work files: `work_dir`, or DATA_DIR/biomed_work/<name>."""
    return cfg.get("work_dir") or os.path.join(data_dir, "biomed_work", cfg.name)


def world_folder(cfg, data_dir: str) -> str:
    """Where the raw files are: `manual_dir`, or where the synthetic world is generated."""
    return cfg.get("manual_dir") or world_dir(work_folder(cfg, data_dir))
