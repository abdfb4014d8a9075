"""The Beam engine (biomed_jax/data/beam_engine.py) against the in-process one: the same kept documents per
source and split, the same clean report, the same decontamination and the same tokens, on the synthetic
world, on the real PubMed files and on damaged inputs; the Beam pipelines run on the DirectRunner."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import shutil
import tarfile

import pytest

from biomed_jax.data import beam_engine
from biomed_jax.data.corpus import clean_corpus, load_clean_corpus
from configs.data import get_config
from helpers import REPO_ROOT, run_cli
from test_readers import jats_article, plain_abstract, pubmed_article, pubmed_set, random_abstract

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
TWO_WORKERS = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
IN_MEMORY = "runner=DirectRunner"


def both_engines(cfg, root: str, beam_options: str = IN_MEMORY):
    """(local corpus, beam corpus) of the same config, built into root/local and root/beam."""
    local = clean_corpus(cfg, os.path.join(root, "local"))
    cfg = cfg.copy_and_resolve_references()
    cfg.engine = "beam"
    return local, clean_corpus(cfg, os.path.join(root, "beam"), beam_options=beam_options)


def documents(corpus) -> list[tuple]:
    return sorted((d.source, d.id, d.meta["split"], d.title, d.text) for d in corpus.iter_documents())


def report_without_paths(corpus) -> dict:
    report = dict(corpus.report)
    report.pop("manual_dir")
    report["files"] = [dict(f, path=os.path.relpath(f["path"], corpus.report["manual_dir"])) for f in report["files"]]
    return report


def test_pipeline_options_flush_worker_outputs_every_half_second_unless_the_user_says_otherwise():
    """TFDS's comma-separated options; workers flush their output streams every 0.5 s unless the user
    sets data_buffer_time_limit_ms, and the user's other experiments stay; a bad value is one error line."""
    def experiments(options):
        return beam_engine.pipeline_options(options).get_all_options()["experiments"]

    assert beam_engine.pipeline_options(TWO_WORKERS).get_all_options()["direct_num_workers"] == 2
    assert experiments(TWO_WORKERS) == ["data_buffer_time_limit_ms=500"]
    assert experiments("runner=DirectRunner,experiments=data_buffer_time_limit_ms=50") == ["data_buffer_time_limit_ms=50"]
    assert experiments("runner=DirectRunner,experiments=use_runner_v2") == ["use_runner_v2", "data_buffer_time_limit_ms=500"]
    with pytest.raises(ValueError, match="argument --direct_num_workers: invalid int value: 'two'"):
        beam_engine.pipeline_options("runner=DirectRunner,direct_num_workers=two")


def test_engines_keep_the_same_documents_on_the_synthetic_world(tmp_path):
    cfg = get_config("quickstart")
    cfg.manual_dir = str(tmp_path / "world")   # one world for both engines
    local, beam = both_engines(cfg, str(tmp_path), TWO_WORKERS)
    filters = local.report["filters"]["total"]
    assert filters["exact_duplicate"] > 0 and filters["near_duplicate"] > 0   # the world plants both
    assert documents(local) == documents(beam) and len(documents(local)) == filters["kept"]
    assert report_without_paths(local) == report_without_paths(beam)
    assert local.report["filters"]["lsh"]["candidates"]["checked"] > 0
    # one shard per input file, in the in-process engine's reading order
    assert [(d.source, d.id) for d in beam.iter_documents()] == [(d.source, d.id) for d in local.iter_documents()]


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA_DIR, "pubmed")),
                    reason=f"real data samples not found at {DATA_DIR} (only in the shared workspace)")
def test_engines_agree_on_the_real_pubmed_files(tmp_path):
    """The NLM files as released: a truncated baseline .gz and its repaired copy (exact duplicates), a
    BOM, the older MedlineCitationSet root with a DeleteCitation block."""
    cfg = get_config("pubmed")
    cfg.manual_dir = os.path.join(DATA_DIR, "pubmed")
    cfg.sources = {"abstracts": dict(kind="pubmed_xml", paths="*.xml,*.xml.gz,*/*.xml,*/*.xml.gz", epochs=1.0,
                                     fraction=0.0)}
    local, beam = both_engines(cfg, str(tmp_path))
    assert documents(local) == documents(beam) and len(documents(local)) > 500
    assert report_without_paths(local) == report_without_paths(beam)
    assert local.report["filters"]["total"]["exact_duplicate"] > 100   # the repaired copy's records
    assert any(f["truncated"] for f in local.report["files"])


def test_decontamination_finds_and_drops_planted_leaks_in_both_engines(tmp_path):
    cfg = get_config("quickstart")
    world = tmp_path / "world"
    cfg.manual_dir = str(world)
    clean_corpus(cfg, str(tmp_path / "generate"))   # writes the world, with its MedQA-style test questions
    question = json.loads((world / "medqa" / "test.jsonl").read_text().splitlines()[3])
    leaked = f"{question['question']} " + " ".join(question["options"].values())
    rng = random.Random(5)
    (world / "leaks").mkdir()
    (world / "leaks" / "leaks.jsonl").write_text("\n".join(json.dumps(d) for d in [
        {"id": "abstract-leak", "text": f"{random_abstract(rng, 80)} In a quiz: {leaked.upper()}"},
        {"id": "guideline-leak", "text": f"Guideline. {leaked.replace(',', ' ;')} {random_abstract(rng, 80)}"},
        {"id": "clean", "text": random_abstract(rng, 80) + " A different text about kidneys and the liver."},
    ]) + "\n")
    cfg.sources.leaks = dict(kind="jsonl", paths="leaks/*.jsonl", epochs=1.0, fraction=0.0)
    cfg.decontam.update(dict(benchmarks="medqa", action="drop"))
    local, beam = both_engines(cfg, str(tmp_path))
    kept = {(s, i) for s, i, *_ in documents(local)}
    assert ("leaks", "clean") in kept and ("leaks", "abstract-leak") not in kept and ("leaks", "guideline-leak") not in kept
    assert documents(local) == documents(beam)
    reports = [json.loads(open(os.path.join(c.directory, "decontamination.json")).read()) for c in (local, beam)]
    assert reports[0] == reports[1]
    medqa = reports[0]["benchmarks"]["medqa"]
    assert medqa["documents_hit"] >= 2 and reports[0]["documents_dropped"] == medqa["documents_hit"]
    from biomed_jax.data.benchmarks import load_medqa

    question_id = load_medqa(str(world / "medqa"), "test")[0][3].id
    assert question_id in medqa["question_ids_hit"]
    leaks = {e["id"]: e["question_ids"] for e in medqa["examples"] if e["source"] == "leaks"}
    assert question_id in leaks["abstract-leak"] and question_id in leaks["guideline-leak"]


def _damaged_inputs(root) -> None:
    """PubMed XML: a good file, a corrupt .gz, one with a malformed record; JSONL with an undecodable byte
    and a line that is not JSON; a PMC package cut in the middle of a member."""
    rng = random.Random(0)
    (root / "pubmed").mkdir(parents=True)
    articles = [pubmed_article(str(100 + i), f"Title {i}", plain_abstract(random_abstract(rng))) for i in range(6)]
    with gzip.open(root / "pubmed" / "good.xml.gz", "wt", encoding="utf-8") as f:
        f.write(pubmed_set(*articles))
    (root / "pubmed" / "corrupt.xml.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(300)))
    (root / "pubmed" / "malformed.xml").write_text(pubmed_set(articles[0].replace("101", "201"),
                                                              "<PubmedArticle><MedlineCitation><PMID>7</PMID>"))
    (root / "notes").mkdir()
    lines = [json.dumps({"id": f"n{i}", "text": random_abstract(rng)}).encode() for i in range(4)]
    (root / "notes" / "notes.jsonl").write_bytes(b"\n".join(lines[:2] + [b'{"id": "bad", "text": "caf\xe9 \xff'] +
                                                            [b"not json"] + lines[2:]) + b"\n")
    (root / "pmc").mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for pmc in range(3):
            data = jats_article(str(300 + pmc), random_abstract(rng))
            info = tarfile.TarInfo(f"PMC00x/PMC{300 + pmc}.nxml")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buffer.getvalue())
    (root / "pmc" / "oa_comm_xml.PMC00x.baseline.tar.gz").write_bytes(packed[:int(len(packed) * 0.8)])


def test_damaged_inputs_are_counted_the_same_by_both_engines(tmp_path):
    root = tmp_path / "manual"
    _damaged_inputs(root)
    cfg = get_config("pubmed")
    cfg.manual_dir = str(root)
    cfg.clean.update(dict(min_chars=20, min_words=5))
    cfg.sources = dict(abstracts=dict(kind="pubmed_xml", paths="pubmed/*", epochs=1.0, fraction=0.0),
                       notes=dict(kind="jsonl", paths="notes/*.jsonl", epochs=1.0, fraction=0.0),
                       papers=dict(kind="pmc_jats", paths="pmc/*.tar.gz", epochs=1.0, fraction=0.0))
    local, beam = both_engines(cfg, str(tmp_path))
    assert documents(local) == documents(beam)
    assert report_without_paths(local) == report_without_paths(beam)
    files = {os.path.basename(f["path"]): f for f in local.report["files"]}
    assert files["corrupt.xml.gz"]["error"] and files["oa_comm_xml.PMC00x.baseline.tar.gz"]["truncated"]
    kept = {(s, i) for s, i, *_ in documents(local)}
    assert {("abstracts", str(100 + i)) for i in range(6)} <= kept and ("notes", "n3") in kept


@pytest.mark.parametrize("exact_dedup", [True, False])
def test_a_record_shipped_twice_is_kept_once_by_both_engines(tmp_path, exact_dedup):
    """The same record (same id and text) in two files: one copy stays, whichever dedup finds it."""
    rng = random.Random(3)
    root = tmp_path / "manual"
    root.mkdir()
    records = [{"id": f"d{i}", "text": random_abstract(rng)} for i in range(5)]
    for name in ("a", "b"):
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in records[:3 if name == "a" else 5]) + "\n")
    cfg = get_config("pubmed")
    cfg.manual_dir = str(root)
    cfg.clean.update(dict(min_chars=20, min_words=5, exact_dedup=exact_dedup))
    cfg.sources = dict(notes=dict(kind="jsonl", paths="*.jsonl", epochs=1.0, fraction=0.0))
    local, beam = both_engines(cfg, str(tmp_path))
    assert [i for _, i, *_ in documents(local)] == [f"d{i}" for i in range(5)]
    assert documents(local) == documents(beam)
    assert report_without_paths(local) == report_without_paths(beam)
    total = local.report["filters"]["total"]
    assert total["exact_duplicate" if exact_dedup else "near_duplicate"] == 3


def test_a_worker_failing_mid_file_leaves_nothing_finished_and_the_rerun_keeps_every_document(tmp_path, monkeypatch):
    """A worker dies while reading (the in-memory runner, so the failure can be planted): the stage is not
    finished, and running it again keeps exactly the in-process engine's documents, none twice."""
    rng = random.Random(5)
    root = tmp_path / "manual"
    root.mkdir()
    for name in ("a", "b", "c"):
        records = [{"id": f"{name}{i}", "text": random_abstract(rng)} for i in range(40)]
        records[7] = dict(records[3], id=f"{name}-copy")       # an exact duplicate in each file
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = get_config("pubmed")
    cfg.manual_dir = str(root)
    cfg.clean.update(dict(min_chars=20, min_words=5))
    cfg.sources = dict(notes=dict(kind="jsonl", paths="*.jsonl", epochs=1.0, fraction=0.0))
    local = clean_corpus(cfg, str(tmp_path / "local"))

    read, failed = beam_engine.read_documents, []

    def dies_once_in_file_b(kind, path, report):
        for n, doc in enumerate(read(kind, path, report)):
            if path.endswith("b.jsonl") and n == 20 and not failed:
                failed.append(path)
                raise OSError("worker lost")
            yield doc

    monkeypatch.setattr(beam_engine, "read_documents", dies_once_in_file_b)
    cfg.engine = "beam"
    work = str(tmp_path / "beam")
    with pytest.raises(Exception, match="worker lost"):
        clean_corpus(cfg, work, beam_options=IN_MEMORY)
    assert failed and load_clean_corpus(work) is None and not os.path.exists(os.path.join(work, "clean"))
    beam = clean_corpus(cfg, work, beam_options=IN_MEMORY)
    assert documents(beam) == documents(local) and len(documents(beam)) == 117
    assert report_without_paths(beam) == report_without_paths(local)


def test_prepare_data_on_beam_writes_the_tokens_of_the_local_engine(tmp_path):
    """The command line with --config.engine=beam (2 worker processes): the same token records in the same
    order as the in-process build, the same counts; and the pretraining loader reads it."""
    from biomed_jax.data.token_dataset import TokenDataset

    common = ["--config=configs/data.py:quickstart", f"--config.manual_dir={tmp_path}/world"]
    run_cli("experiments.prepare_data", *common, f"--data_dir={tmp_path}/local", timeout=600)
    run_cli("experiments.prepare_data", *common, f"--data_dir={tmp_path}/beam", "--config.engine=beam",
            f"--beam_pipeline_options={TWO_WORKERS}", timeout=600)
    local, beam = TokenDataset(str(tmp_path / "local")), TokenDataset(str(tmp_path / "beam"))
    for split in ("train", "validation"):
        a, b = local.source(split), beam.source(split)
        assert len(a) == len(b) > 0
        for i in range(len(a)):
            assert (a[i]["id"], a[i]["source"], a[i]["tokens"].tolist()) == \
                (b[i]["id"], b[i]["source"], b[i]["tokens"].tolist())
    assert local.metadata["counts"] == beam.metadata["counts"]
    from biomed_jax.data.loader import TokenBatches

    batches = TokenBatches(beam, "train", seq_len=32, global_batch_size=4, seed=0, prefetch=0)
    assert next(batches)["inputs"].shape == (4, 32)
    batches.close()


def test_raw_files_and_work_files_in_a_bucket(tmp_path, monkeypatch):
    """manual_dir and work_dir in an object store (gs://, a fake bucket with an object store's rules) and
    only the dataset on local disk: the clean corpus, the tokenizer and the reports are written to the
    bucket, the tokens equal an all-local build, and nothing is written through a local path named gs:."""
    import fake_bucket
    from biomed_jax import files
    from biomed_jax.data.prepare import prepare

    monkeypatch.setattr(fake_bucket.FakeBucket, "root", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    cfg = get_config("quickstart")
    cfg.manual_dir = str(tmp_path / "world")
    local = prepare(cfg, str(tmp_path / "local"))
    shutil.copytree(tmp_path / "world", tmp_path / "store" / "bucket" / "raw")
    remote = get_config("quickstart")
    remote.generate_world, remote.engine = False, "beam"
    remote.manual_dir, remote.work_dir = "gs://bucket/raw", "gs://bucket/work"
    remote.decontam.data_root = str(tmp_path / "world")   # the benchmark files: small, read by the driver
    beam = prepare(remote, str(tmp_path / "beam"), IN_MEMORY)

    for split in ("train", "validation"):
        a, b = local.source(split), beam.source(split)
        assert len(a) == len(b) > 0
        assert all(a[i]["tokens"].tolist() == b[i]["tokens"].tolist() for i in range(len(a)))
    assert local.metadata["counts"] == beam.metadata["counts"]
    stored = files.match("gs://bucket/work/**")
    for name in ("clean/clean_report.json", "clean/settings.json", "tokenizer/tokenizer.json",
                 "tokenizer/fertility.json"):
        assert f"gs://bucket/work/{name}" in stored
    assert not any(".tmp-" in path or "_results" in path or "dataset_counts" in path for path in stored)
    assert not os.path.exists(tmp_path / "gs:") and not os.path.exists(os.path.join(REPO_ROOT, "gs:"))
    with pytest.raises(ValueError, match="data_dir=gs://bucket/data: the dataset's array_record"):
        prepare(remote, "gs://bucket/data")

    # The in-process engine reads from and writes to the bucket too; a rerun reuses the finished stage.
    remote.engine = "local"
    in_process = clean_corpus(remote, "gs://bucket/local-engine")
    assert documents(in_process) == documents(clean_corpus(cfg, str(tmp_path / "local-clean")))
    assert clean_corpus(remote, "gs://bucket/local-engine").report == in_process.report
    assert not files.match("gs://bucket/local-engine/clean.tmp-*")
