"""Clean stage, mixture, TFDS token dataset and the grain loader, on corpora the tests write."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest

from biomed_jax.data import mixture, token_dataset
from biomed_jax.data.corpus import clean_corpus, split_of
from biomed_jax.data.loader import TokenBatches
from data_fixtures import (WORDS, build_dataset, corpus_config, pretrain_config, prepare_dataset, read_losses,
                           write_corpus)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A built dataset: (cfg, corpus, tokenizer, data_dir)."""
    return prepare_dataset(str(tmp_path_factory.mktemp("data")))


def test_clean_stage_counts_splits_and_deletions(prepared):
    _, corpus, _, _ = prepared
    report = corpus.report
    assert report["filters"]["total"]["exact_duplicate"] == 1  # p0 / p-dup
    assert report["deleted_citations"] == {"pmids": 1, "documents_dropped": 1}
    ids = {(d.source, d.id): d.meta["split"] for d in corpus.iter_documents()}
    assert ("abstracts", "102") not in ids and ("abstracts", "101") in ids
    # p-dup repeats p0's text: the keeper rule keeps the smaller (source priority, id), "p-dup" < "p0".
    assert ("papers", "p0") not in ids and ("papers", "p-dup") in ids
    for (source, doc_id), split in ids.items():
        assert split == split_of(source, doc_id, 0.15)
    n_val = sum(split == "validation" for split in ids.values())
    assert 0 < n_val < len(ids) * 0.4
    for source, counts in report["sources"].items():
        assert counts["train"] == sum(1 for s, _ in ids if s == source and ids[(s, _)] == "train")


def test_clean_stage_reused_and_refuses_other_settings(prepared, tmp_path):
    cfg, corpus, _, _ = prepared
    work_dir = os.path.dirname(corpus.directory)
    again = clean_corpus(cfg, work_dir)
    assert again.report == corpus.report
    changed = ml_collections.ConfigDict(cfg.to_dict())
    changed.clean.min_words = 50
    with pytest.raises(FileExistsError, match="different"):
        clean_corpus(changed, work_dir)


def test_config_errors_name_the_field_or_file(tmp_path):
    write_corpus(str(tmp_path / "manual"))
    cfg = corpus_config(str(tmp_path / "manual"), a=dict(kind="csv", paths="x", epochs=1.0, fraction=0.0))
    with pytest.raises(ValueError, match="sources.a.kind"):
        clean_corpus(cfg, str(tmp_path / "w"))
    cfg = corpus_config(str(tmp_path / "manual"), a=dict(kind="jsonl", paths="missing/*.jsonl", epochs=1.0, fraction=0.0))
    with pytest.raises(FileNotFoundError, match="sources.a.paths"):
        clean_corpus(cfg, str(tmp_path / "w"))
    cfg = corpus_config(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        clean_corpus(cfg, str(tmp_path / "w"))


def test_mixture_epochs_and_fractions():
    sources = {"a": {"epochs": 2.0, "fraction": 0.0}, "b": {"epochs": 0.5, "fraction": 0.0},
               "r": {"epochs": 1.0, "fraction": 0.01}}
    chars = {"a": 1000, "b": 4000, "r": 50_000}
    epochs = mixture.resolve_epochs(sources, chars)
    mixed = {k: epochs[k] * chars[k] for k in chars}
    assert mixed["r"] / sum(mixed.values()) == pytest.approx(0.01)
    assert epochs["a"] == 2.0 and epochs["b"] == 0.5
    n = 20_000
    half = sum(mixture.copies(0, "b", str(i), 0.5) for i in range(n))
    assert abs(half / n - 0.5) < 0.02
    assert [mixture.copies(0, "b", str(i), 0.5) for i in range(50)] == \
        [mixture.copies(0, "b", str(i), 0.5) for i in range(50)]
    assert [mixture.copies(1, "b", str(i), 0.5) for i in range(50)] != \
        [mixture.copies(0, "b", str(i), 0.5) for i in range(50)]
    assert all(mixture.copies(3, "a", str(i), 2.0) == 2 for i in range(50))


def test_dataset_holds_the_mixed_tokenized_documents(prepared):
    cfg, corpus, tokenizer, data_dir = prepared
    dataset = token_dataset.TokenDataset(data_dir)
    assert dataset.vocab_size == tokenizer.get_vocab_size()
    assert os.path.exists(dataset.tokenizer_path)
    counts = dataset.metadata["counts"]
    train = dataset.source("train")
    records = [train[i] for i in range(len(train))]
    assert len(records) == sum(c["documents"] for c in counts["train"].values())
    assert sum(len(r["tokens"]) for r in records) == sum(c["tokens"] for c in counts["train"].values())
    texts = {(d.source, d.id): d.text for d in corpus.iter_documents("train")}
    by_source: dict[str, list] = {}
    for r in records:
        source, doc_id = r["source"].decode(), r["id"].decode()
        assert tokenizer.decode(r["tokens"].tolist()) == texts[(source, doc_id)]
        by_source.setdefault(source, []).append(doc_id)
    papers = by_source["papers"]
    assert len(papers) == 2 * len(set(papers))  # epochs=2: every paper twice
    assert set(papers) == {i for s, i in texts if s == "papers"}
    share = dataset.metadata["mixture"]["notes"]["char_share"]
    assert share == pytest.approx(0.1, abs=1e-6)
    validation_ids = {r["id"].decode() for r in (dataset.source("validation")[i]
                                                  for i in range(dataset.num_documents("validation")))}
    assert not validation_ids & {r["id"].decode() for r in records}


def test_interrupted_build_never_looks_complete(prepared, tmp_path, monkeypatch):
    cfg, corpus, tokenizer, _ = prepared
    tokenizer_path = str(tmp_path / "tok.json")
    tokenizer.save(tokenizer_path)
    data_dir = str(tmp_path / "out")
    calls = {"n": 0}
    real_encode = token_dataset._encode

    def failing_encode(chunk):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_encode(chunk)

    monkeypatch.setattr(token_dataset, "_CHUNK", 16)
    monkeypatch.setattr(token_dataset, "_encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir)
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        token_dataset.TokenDataset(data_dir, "unit")
    monkeypatch.setattr(token_dataset, "_encode", real_encode)
    build_dataset(cfg, corpus, tokenizer, tokenizer_path, data_dir)
    assert token_dataset.TokenDataset(data_dir, "unit").num_documents("train") > 0


def _batches(dataset, n, **kwargs):
    args = dict(seq_len=32, global_batch_size=4, seed=0, prefetch=0)
    args.update(kwargs)
    it = TokenBatches(dataset, "train", **args)
    out = [next(it) for _ in range(n)]
    it.close()
    return out


def test_loader_packs_documents_with_eos_segments_and_positions(prepared):
    _, _, tokenizer, data_dir = prepared
    dataset = token_dataset.TokenDataset(data_dir)
    eos = dataset.eos_id
    batches = _batches(dataset, 6)
    for batch in batches:
        assert {k: v.shape for k, v in batch.items()} == {k: (4, 32) for k in
                                                          ("inputs", "targets", "loss_mask", "positions", "segment_ids")}
        np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
        for row in range(4):
            seg, pos, inputs = batch["segment_ids"][row], batch["positions"][row], batch["inputs"][row]
            starts = np.flatnonzero(np.diff(seg)) + 1
            assert (pos[starts] == 0).all()  # positions restart at each document
            assert (inputs[starts - 1] == eos).all()  # EOS closes the previous document
            # No target across a boundary: exactly the positions whose input is EOS are masked.
            np.testing.assert_array_equal(batch["loss_mask"][row] == 0, inputs == eos)
    # Row 0's stream, concatenated, is whole documents separated by EOS.
    stream = np.concatenate([np.append(b["inputs"][0], b["targets"][0][-1]) for b in batches[:1]])
    pieces = [p for p in np.split(stream, np.flatnonzero(stream == eos) + 1) if len(p)]
    assert tokenizer.decode(pieces[0][:-1].tolist()).split()[0] in WORDS


def _resumed_batches_match(dataset, consumed: int) -> dict:
    """Reads `consumed` batches, saves the state through JSON (what a checkpoint stores), resumes a new
    loader from it and checks the next batches are the ones the first loader goes on to read."""
    it = TokenBatches(dataset, "train", seq_len=32, global_batch_size=4, seed=0, prefetch=2)
    for _ in range(consumed):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(5)]
    it.close()
    resumed = TokenBatches(dataset, "train", seq_len=32, global_batch_size=4, seed=0, prefetch=2)
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    resumed.close()
    return state, expected


def test_loader_resumes_after_the_first_batch(prepared):
    # After one batch every row's packing remainder is empty, grain's tuple sentinel (-1, -1), which
    # JSON turns into a list: resuming from step 1 once read different data from step 2 on.
    dataset = token_dataset.TokenDataset(prepared[3])
    state, _ = _resumed_batches_match(dataset, 1)
    assert any(list(row["remainder_slices"].values()) == [[-1, -1]] for row in state["rows"])


def test_loader_resumes_exactly_and_shards_by_process(prepared):
    dataset = token_dataset.TokenDataset(prepared[3])
    state, expected = _resumed_batches_match(dataset, 7)
    # The state holds every global row: process 1 of 2 resumes its half of the same batches.
    second_half = TokenBatches(dataset, "train", seq_len=32, global_batch_size=4, seed=0, prefetch=0,
                               process_index=1, process_count=2)
    second_half.set_state(state)
    np.testing.assert_array_equal(next(second_half)["inputs"], expected[0]["inputs"][2:])
    with pytest.raises(ValueError, match="train.batch_size is 8"):
        TokenBatches(dataset, "train", seq_len=32, global_batch_size=8, seed=0).set_state(state)
    whole = _batches(dataset, 3)
    halves = [_batches(dataset, 3, process_index=p, process_count=2) for p in range(2)]
    for step in range(3):
        np.testing.assert_array_equal(
            np.concatenate([halves[0][step]["inputs"], halves[1][step]["inputs"]]), whole[step]["inputs"])
    other_seed = _batches(dataset, 1, seed=1)
    assert not np.array_equal(other_seed[0]["inputs"], whole[0]["inputs"])


@pytest.fixture(scope="module")
def uninterrupted_run(prepared, tmp_path_factory):
    from biomed_jax.tasks.pretraining import run as pretrain

    workdir = str(tmp_path_factory.mktemp("run_a"))
    pretrain(pretrain_config(prepared[3], 6), workdir)
    return workdir


def test_pretrain_on_the_dataset_resumes_without_repeating_or_skipping(prepared, uninterrupted_run, tmp_path):
    from biomed_jax.tasks.pretraining import run as pretrain

    expected = read_losses(uninterrupted_run)
    assert len(expected) == 6
    with open(os.path.join(uninterrupted_run, "config.json")) as f:
        assert json.load(f)["model"]["vocab_size"] == prepared[2].get_vocab_size()  # raised from 256
    workdir = str(tmp_path / "run_b")
    pretrain(pretrain_config(prepared[3], 3), workdir)  # stops at 3 with a checkpoint
    pretrain(pretrain_config(prepared[3], 6), workdir)  # resumes at 3, with the loader's saved state
    resumed = read_losses(workdir)
    assert resumed == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_continued_pretraining_starts_from_the_checkpoint(prepared, uninterrupted_run, tmp_path):
    from biomed_jax.models.decoder import unstack_layers
    from biomed_jax.run_dir import load_run
    from biomed_jax.tasks.pretraining import run as pretrain

    cfg = pretrain_config(prepared[3], 1, init_from=uninterrupted_run)
    cfg.model.d_model = 32  # the architecture comes from the checkpoint, not the preset
    cfg.model.scan_layers = False  # a different layout is converted
    cfg.optim.learning_rate = 1e-12
    workdir = str(tmp_path / "run_c")
    pretrain(cfg, workdir)
    before = load_run(uninterrupted_run).params
    continued = load_run(workdir)
    model_cfg, after, step = continued.model_cfg, continued.params, continued.step
    assert step == 1 and model_cfg.d_model == 64 and not model_cfg.scan_layers
    before = unstack_layers(before)
    np.testing.assert_allclose(np.asarray(after["blocks"][1]["mlp"]["up_proj"]["kernel"]),
                               np.asarray(before["blocks"][1]["mlp"]["up_proj"]["kernel"]), atol=1e-6)
    assert read_losses(workdir)[1] < read_losses(uninterrupted_run)[1] - 0.1  # starts trained
    with pytest.raises(FileNotFoundError, match="train.init_from"):
        pretrain(pretrain_config(prepared[3], 1, init_from=str(tmp_path / "nowhere")), str(tmp_path / "run_d"))


def test_empty_inputs_fail_with_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "manual" / "papers")
    (tmp_path / "manual" / "papers" / "a.jsonl").write_text('{"id": "1", "text": "too short"}\n')
    cfg = corpus_config(str(tmp_path / "manual"), papers=dict(kind="jsonl", paths="papers/*.jsonl", epochs=1.0,
                                                        fraction=0.0))
    with pytest.raises(ValueError, match="no training document survived"):
        clean_corpus(cfg, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w" / "clean")


def test_prepare_data_then_pretrain_from_the_command_line(tmp_path):
    from tests.helpers import run_cli

    data_dir = str(tmp_path / "d")
    small_world = ["--config.world.docs_per_fact=4", "--config.world.replay_docs=100",
                   "--config.world.pubmedqa_items=60", "--config.world.pubmedqa_test_items=30",
                   "--config.tokenizer.vocab_size=1024", "--config.split.validation_fraction=0.05"]
    proc = run_cli("experiments.prepare_data", "--config=configs/data.py:synthetic", f"--data_dir={data_dir}",
                   *small_world)
    assert "train:" in proc.stdout and "mixture: abstracts x1" in proc.stdout
    dataset = token_dataset.TokenDataset(data_dir)
    assert dataset.vocab_size == 1024
    counts = dataset.metadata["counts"]["train"]
    assert set(counts) == {"abstracts", "guidelines", "replay"} and all(c["tokens"] > 0 for c in counts.values())
    replay_share = dataset.metadata["mixture"]["replay"]["char_share"]
    assert replay_share == pytest.approx(0.01, abs=1e-4)
    again = run_cli("experiments.prepare_data", "--config=configs/data.py:synthetic", f"--data_dir={data_dir}",
                    *small_world)
    assert "already prepared" in again.stdout
    workdir = str(tmp_path / "run")
    run_cli("experiments.pretrain", "--config=configs/pretrain.py:tiny", f"--workdir={workdir}",
            f"--config.data.dir={data_dir}", "--config.train.steps=4", "--config.optim.warmup_steps=1",
            "--config.train.log_every=1",
            "--config.train.eval_batches=1", "--config.logging.progress_bar=off")
    losses = read_losses(workdir)
    assert sorted(losses) == [1, 2, 3, 4] and losses[1] > 6.0  # about log(1024) at the start
