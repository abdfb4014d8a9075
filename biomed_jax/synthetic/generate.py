"""Writing the world: options checked, every part generated from its own random stream, files written
atomically (world.json last)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any, Mapping

import numpy as np

from biomed_jax.run_dir import differing_keys, read_json
from biomed_jax.synthetic.defaults import GENERATOR_VERSION, WORLD_DEFAULTS
from biomed_jax.synthetic.facts import build_world
from biomed_jax.synthetic.guidelines import guideline
from biomed_jax.synthetic.phrasing import Text
from biomed_jax.synthetic.pubmed import write_pubmed
from biomed_jax.synthetic.questions import medalpaca, medqa_questions, pubmedqa
from biomed_jax.synthetic.replay import replay_doc
from biomed_jax.synthetic.vocabulary import ADVERSE_EFFECTS, Names, RELATIONS
from biomed_jax.synthetic.writing import jsonl, write_text


def _resolve(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """WORLD_DEFAULTS with `options` over them; unknown keys, wrong types and impossible sizes fail by name."""
    given = dict(options.items()) if options is not None else {}
    unknown = sorted(set(given) - set(WORLD_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synthetic world option(s) {', '.join(map(repr, unknown))}; "
                         f"known options: {', '.join(sorted(WORLD_DEFAULTS))}")
    opts = dict(WORLD_DEFAULTS)
    for key, value in given.items():
        default = WORLD_DEFAULTS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(default, int) and not float(value).is_integer()):
            raise ValueError(f"synthetic world option {key!r} must be a {type(default).__name__}, got {value!r}")
        opts[key] = type(default)(value)

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ValueError(f"synthetic world option {key!r} = {opts[key]!r}: {what}")

    for key in ("genetic_diseases", "infectious_diseases", "target_genes"):
        need(opts[key] >= 4, key, "must be at least 4 (questions need 3 distractors of the same kind)")
    need(opts["targeted_drugs"] >= max(4, opts["target_genes"]), "targeted_drugs",
         "must be at least 4 and at least target_genes (every target gene has a drug)")
    need(opts["antimicrobials"] >= max(4, opts["infectious_diseases"]), "antimicrobials",
         "must be at least 4 and at least infectious_diseases (every infection has a treatment)")
    need(opts["targeted_drugs"] >= opts["genetic_diseases"], "targeted_drugs",
         "must be at least genetic_diseases (every genetic disease has a treatment)")
    need(1 <= opts["adverse_effects_per_drug"] <= 3, "adverse_effects_per_drug", "must be 1, 2 or 3")
    need(opts["adverse_effects_per_drug"] + 3 <= opts["adverse_effects"] <= len(ADVERSE_EFFECTS), "adverse_effects",
         f"must be between adverse_effects_per_drug + 3 and {len(ADVERSE_EFFECTS)}")
    for key in ("docs_per_fact", "records_per_file", "medqa_questions_per_fact"):
        need(opts[key] >= 1, key, "must be at least 1")
    for key in ("records_without_abstract", "exact_duplicates", "near_duplicates", "guidelines_per_disease",
                "replay_docs", "medalpaca_per_fact", "pubmedqa_test_items"):
        need(opts[key] >= 0, key, "must not be negative")
    for key in ("structured_fraction", "dev_fact_fraction", "test_fact_fraction", "pubmedqa_yes_fraction",
                "pubmedqa_maybe_fraction"):
        need(0.0 <= opts[key] <= 1.0, key, "must be in [0, 1]")
    need(opts["dev_fact_fraction"] + opts["test_fact_fraction"] <= 0.5, "test_fact_fraction",
         "with dev_fact_fraction must leave at least half of the facts for training")
    need(opts["pubmedqa_yes_fraction"] + opts["pubmedqa_maybe_fraction"] <= 1.0, "pubmedqa_maybe_fraction",
         "with pubmedqa_yes_fraction must not exceed 1")
    need(0 <= opts["pubmedqa_test_items"] <= opts["pubmedqa_items"], "pubmedqa_items",
         "must be at least pubmedqa_test_items")
    return opts


def _generate(out: str, opts: dict[str, Any]) -> dict:
    """Writes every file of the world under `out` (an empty folder) and returns the summary."""
    streams = np.random.SeedSequence(opts["seed"]).spawn(8)
    rng = lambda k: np.random.default_rng(streams[k])  # noqa: E731
    world = build_world(opts, rng(0))
    names = Names(rng(1))
    names.used |= set().union(*(set(n.lower().replace("-", " ").split()) for n in
                                list(world.drugs) + list(world.diseases) + list(world.genes) + list(world.organisms)))
    pubmed_counts, abstract_texts, coverage = write_pubmed(out, opts, world, Text(rng(2)), names)

    t = Text(rng(3))
    societies = []
    for _ in range(max(3, opts["guidelines_per_disease"] * 2)):
        stem = names.eponym()
        field = t.pick(["Clinical Genetics", "Internal Medicine", "Infectious Diseases", "Pharmacotherapy",
                        "Rare Disorders"])
        societies.append((f"{stem} Society of {field}", (stem[0] + "S" + "".join(w[0] for w in field.split())).lower()))
    guidelines = []
    for disease in world.diseases:
        chosen = t.rng.choice(len(societies), size=opts["guidelines_per_disease"], replace=False) \
            if opts["guidelines_per_disease"] <= len(societies) else range(opts["guidelines_per_disease"])
        for j in chosen:
            guidelines.append(guideline(t, world, disease, societies[int(j) % len(societies)], t.int(2008, 2024)))
    order = t.rng.permutation(len(guidelines))
    guidelines = [{"id": f"world-guideline-{rank:05d}", **guidelines[int(i)]} for rank, i in enumerate(order)]
    write_text(os.path.join(out, "guidelines", "guidelines.jsonl"), jsonl(guidelines))

    t = Text(rng(4))
    replay = [{"id": f"world-general-{i:05d}", "text": replay_doc(t, names.eponym)} for i in range(opts["replay_docs"])]
    write_text(os.path.join(out, "replay", "general.jsonl"), jsonl(replay))

    t = Text(rng(5))
    medqa = {split: medqa_questions(t, world, split, opts["medqa_questions_per_fact"]) for split in ("train", "dev", "test")}
    for split, records in medqa.items():
        write_text(os.path.join(out, "medqa", f"{split}.jsonl"), jsonl(records))

    pqal, truth = pubmedqa(Text(rng(6)), world, opts)
    write_text(os.path.join(out, "pubmedqa", "ori_pqal.json"), json.dumps(pqal, indent=1) + "\n")
    write_text(os.path.join(out, "pubmedqa", "test_ground_truth.json"), json.dumps(truth, indent=1) + "\n")

    alpaca = medalpaca(Text(rng(7)), world, opts["medalpaca_per_fact"])
    write_text(os.path.join(out, "medalpaca", "medical_meadow_world.json"),
                json.dumps(alpaca, indent=1, ensure_ascii=False) + "\n")

    terms = list(world.drugs) + list(world.genes) + list(world.diseases) + list(world.organisms)
    write_text(os.path.join(out, "terms.txt"), "".join(term + "\n" for term in terms))
    facts = [{"id": f.id, "relation": f.relation, "head": f.head, "tail": f.tail, "split": f.split,
              "abstracts": int(coverage[i])} for i, f in enumerate(world.facts)]
    write_text(os.path.join(out, "facts.jsonl"), jsonl(facts))

    words = {"pubmed": pubmed_counts.pop("words"),
             "guidelines": sum(len((g["title"] + " " + g["text"]).split()) for g in guidelines),
             "replay": sum(len(r["text"].split()) for r in replay)}
    split_counts = {r: {s: sum(1 for f in world.facts if f.relation == r and f.split == s)
                        for s in ("train", "dev", "test")} for r in RELATIONS}
    labels = [item["final_decision"] for item in pqal.values()]
    files = []
    for root, _, names_ in os.walk(out):
        for name in names_:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                data = fh.read()
            files.append({"path": os.path.relpath(path, out).replace(os.sep, "/"), "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()})
    files.sort(key=lambda f: f["path"])
    return {
        "generator": "biomed_jax.synthetic", "version": GENERATOR_VERSION, "options": opts,
        "counts": {
            "entities": {"drugs": len(world.drugs), "diseases": len(world.diseases), "genes": len(world.genes),
                         "organisms": len(world.organisms), "adverse_effects": len(world.adverse_effects),
                         "terms": len(terms)},
            "facts": {"total": len(world.facts), "by_relation": split_counts,
                      "by_split": {s: sum(1 for f in world.facts if f.split == s) for s in ("train", "dev", "test")}},
            "pubmed": pubmed_counts, "guidelines": len(guidelines), "replay": len(replay),
            "medqa": {split: len(records) for split, records in medqa.items()},
            "pubmedqa": {"items": len(pqal), "test": len(truth), "train_pool": len(pqal) - len(truth),
                         "labels": {k: labels.count(k) for k in ("yes", "no", "maybe")}},
            "medalpaca": len(alpaca),
            "words": {**words, "corpus_total": sum(words.values())},
            "estimated_tokens": int(round(sum(words.values()) * 1.3)),
        },
        "files": files,
    }


def _check_existing(out_dir: str, opts: Mapping[str, Any]) -> dict:
    """The summary of the finished world at out_dir if it was made with these options by this generator.

    Not run_dir.ensure_same_settings: world.json, written last into the folder that is renamed into place,
    is both the mark of a finished world and the record of its options, and the folder is a data folder
    (sources glob into it; world.json hashes every file in it) with no room for a separate settings file.
    """
    summary = read_json(os.path.join(out_dir, "world.json"), "synthetic world summary")
    if summary.get("version") != GENERATOR_VERSION:
        raise ValueError(f"{out_dir} holds a synthetic world from generator version {summary.get('version')}, "
                         f"not {GENERATOR_VERSION}; delete the folder or choose another out_dir")
    old = summary.get("options", {})
    differ = differing_keys(old, opts)
    if differ:
        detail = ", ".join(f"{k}: {old.get(k)!r} there vs {opts.get(k)!r} asked" for k in differ)
        raise ValueError(f"{out_dir} already holds a synthetic world generated with different options ({detail}); "
                         f"delete the folder or choose another out_dir")
    return summary


def generate_world(out_dir: str, options: Mapping[str, Any] | None = None) -> dict:
    """Generates the synthetic world under `out_dir` (options over WORLD_DEFAULTS) and returns its summary.

    The files are written to `out_dir.tmp-<pid>` and renamed into place, `world.json` last, so a folder
    with a world.json is always complete. A finished world with the same options is reused as is; one
    with different options is an error (never silently overwritten).
    """
    opts = _resolve(options)
    out_dir = os.path.abspath(out_dir)
    marker = os.path.join(out_dir, "world.json")
    if os.path.exists(marker):
        return _check_existing(out_dir, opts)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not a finished synthetic world (no world.json); "
                              f"delete it or choose another out_dir")
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        summary = _generate(tmp, opts)
        write_text(os.path.join(tmp, "world.json"), json.dumps(summary, indent=1) + "\n")
        if os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if os.path.exists(marker):  # another process finished the same world first
                return _check_existing(out_dir, opts)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(json.dumps(summary))
