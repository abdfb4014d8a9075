"""The synthetic biomedical world: deterministic, atomic, readable by the project's readers, in the
benchmark formats of ../shared/data, with facts split so test questions need what the corpus states."""

import collections
import glob
import json
import os
import re

import numpy as np
import pytest

from biomed_jax.synthetic.defaults import WORLD_DEFAULTS
from biomed_jax.synthetic import generate as synthetic_generate
from biomed_jax.synthetic.generate import generate_world
from biomed_jax.synthetic.phrasing import Text
from biomed_jax.synthetic.vocabulary import ADVERSE_EFFECTS, ANTIMICROBIAL_SUFFIXES, GENE_FAMILIES, SYMPTOMS
from biomed_jax.data.readers import ReadReport, read_jsonl, read_pubmed_xml
from helpers import REPO_ROOT

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
SMALL = {"genetic_diseases": 8, "infectious_diseases": 8, "targeted_drugs": 12, "antimicrobials": 8,
         "target_genes": 6, "adverse_effects": 10, "docs_per_fact": 6, "records_per_file": 150,
         "records_without_abstract": 5, "exact_duplicates": 3, "near_duplicates": 3, "guidelines_per_disease": 1,
         "replay_docs": 30, "pubmedqa_items": 120, "pubmedqa_test_items": 60, "medqa_questions_per_fact": 4}
MEDQA_KEYS = {"question", "answer", "options", "meta_info", "answer_idx", "metamap_phrases"}
PQA_KEYS = {"QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR", "reasoning_required_pred",
            "reasoning_free_pred", "final_decision", "LONG_ANSWER"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("world") / "small")
    return out, generate_world(out, SMALL)


def read_lines(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def file_bytes(root):
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def entity_finder(out):
    """A function text -> set of world entities (invented terms and adverse-effect terms) it names."""
    with open(os.path.join(out, "terms.txt"), encoding="utf-8") as fh:
        terms = [line.rstrip("\n") for line in fh]
    names = sorted(set(terms) | set(ADVERSE_EFFECTS), key=len, reverse=True)
    canonical = {name.lower(): name for name in names}
    assert len(canonical) == len(names)
    # Case-insensitive: an adverse effect starting a sentence is capitalised ("Hyperkalemia occurred ...").
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)
    return lambda text: {canonical[m.lower()] for m in pattern.findall(text)}


def corpus_docs(out):
    """(text, report) of every PubMed record with an abstract, and every guideline."""
    texts, reports = [], []
    for path in sorted(glob.glob(os.path.join(out, "pubmed", "*.xml.gz"))):
        report = ReadReport()
        texts += [doc.text for doc in read_pubmed_xml(path, report)]
        reports.append(report)
    texts += [doc.text for doc in read_jsonl(os.path.join(out, "guidelines", "guidelines.jsonl"))]
    return texts, reports


def question_pairs(out, split, find):
    """(question entity, answer) per MedQA question of the split; every question names exactly one."""
    pairs = []
    for item in read_lines(os.path.join(out, "medqa", f"{split}.jsonl")):
        named = find(item["question"])
        assert len(named) == 1, (item["question"], named)
        pairs.append((named.pop(), item["answer"]))
    return pairs


# ---------------------------------------------------------------------------------------------------
# Options, determinism, atomic completion


def test_unknown_and_bad_options_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="'n_drugz'"):
        generate_world(str(tmp_path / "w"), {"n_drugz": 3})
    with pytest.raises(ValueError, match="'docs_per_fact'"):
        generate_world(str(tmp_path / "w"), {"docs_per_fact": "many"})
    with pytest.raises(ValueError, match="'infectious_diseases'"):
        generate_world(str(tmp_path / "w"), {**SMALL, "infectious_diseases": 2})
    assert not os.path.exists(tmp_path / "w")


def test_same_options_give_identical_bytes_and_another_seed_differs(world, tmp_path):
    out, _ = world
    again = str(tmp_path / "again")
    generate_world(again, SMALL)
    first, second = file_bytes(out), file_bytes(again)
    assert list(first) == list(second) and first == second
    other = str(tmp_path / "other")
    generate_world(other, {**SMALL, "seed": 1})
    third = file_bytes(other)
    assert third["terms.txt"] != first["terms.txt"]
    assert third["pubmed/world_abstracts_0000.xml.gz"] != first["pubmed/world_abstracts_0000.xml.gz"]
    assert third["medqa/test.jsonl"] != first["medqa/test.jsonl"]


def test_a_template_draws_its_numbers_only_when_it_is_chosen():
    """Text.say picks a template first; only the chosen one's numeric slots (and callable slots) are drawn,
    left to right, in the ranges the template names."""
    plain = "{drug} was well tolerated."
    numeric = "{drug} helped {pct:8-30}% of {int:3-12} cohorts ({pval}; {pval:ns}; {num:0.10-2.00} {pick:nM|pM}) {fact}"
    chosen, calls = set(), []
    for seed in range(16):
        t, ref = Text(np.random.default_rng(seed)), np.random.default_rng(seed)
        calls.clear()
        said = t.say((plain, numeric), drug="Zefatinib", fact=lambda: calls.append(1) or "Zefatinib works.")
        k = int(ref.integers(2))  # the pick is the only draw both kinds of template make
        chosen.add(k)
        if k == 0:
            assert said == "Zefatinib was well tolerated." and not calls
            assert t.rng.bit_generator.state == ref.bit_generator.state  # no number drawn for `numeric`
            continue
        m = re.fullmatch(r"Zefatinib helped (\d+\.\d)% of (\d+) cohorts \((P [<=] [\d.]+); P = (0\.\d\d); "
                         r"(\d\.\d\d) (nM|pM)\) Zefatinib works\.", said)
        assert m, said
        assert 8 <= float(m[1]) <= 30 and 3 <= int(m[2]) <= 12 and 0.12 <= float(m[4]) <= 0.91
        assert 0.1 <= float(m[5]) <= 2 and calls == [1]
        # drawn in the order they appear, nothing else: the same draws made by hand end in the same state
        assert m[1] == f"{ref.uniform(8, 30):.1f}" and int(m[2]) == ref.integers(3, 13)
        _, p_ns, num, word = ref.integers(6), ref.uniform(0.12, 0.91), ref.uniform(0.1, 2), ref.integers(2)
        assert (m[4], m[5], m[6]) == (f"{p_ns:.2f}", f"{num:.2f}", ("nM", "pM")[word])
        assert t.rng.bit_generator.state == ref.bit_generator.state
    assert chosen == {0, 1}


def test_world_json_lists_every_file_with_its_hash(world):
    out, summary = world
    import hashlib
    on_disk = {path: hashlib.sha256(data).hexdigest() for path, data in file_bytes(out).items()
               if path != "world.json"}
    assert {f["path"]: f["sha256"] for f in summary["files"]} == on_disk
    assert summary["options"] == {**WORLD_DEFAULTS, **SMALL}
    assert not glob.glob(out + ".tmp-*")


def test_existing_world_is_reused_and_different_options_refused(world, tmp_path):
    out, summary = world
    sentinel = os.path.join(out, "sentinel")
    open(sentinel, "w").close()
    try:
        assert generate_world(out, dict(SMALL)) == summary
        assert os.path.exists(sentinel)  # reused, not regenerated
    finally:
        os.remove(sentinel)
    with pytest.raises(ValueError, match="different options.*replay_docs"):
        generate_world(out, {**SMALL, "replay_docs": 31})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="no world.json"):
        generate_world(str(foreign), SMALL)


def test_failed_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(out, opts):
        with open(os.path.join(out, "half.txt"), "w") as fh:
            fh.write("partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic_generate, "_generate", broken)
    target = str(tmp_path / "w")
    with pytest.raises(RuntimeError, match="disk full"):
        generate_world(target, SMALL)
    assert os.listdir(tmp_path) == []


def test_empty_existing_folder_is_filled(tmp_path):
    target = tmp_path / "w"
    target.mkdir()
    summary = generate_world(str(target), {**SMALL, "replay_docs": 2})
    assert (target / "world.json").exists() and summary["counts"]["replay"] == 2


# ---------------------------------------------------------------------------------------------------
# The corpus through the project's readers


def test_pubmed_files_parse_with_expected_counts(world):
    out, summary = world
    counts = summary["counts"]["pubmed"]
    paths = sorted(glob.glob(os.path.join(out, "pubmed", "world_abstracts_*.xml.gz")))
    assert [os.path.basename(p) for p in paths] == counts["files"] and len(paths) >= 2
    docs, records, no_abstract = [], 0, 0
    for path in paths:
        report = ReadReport()
        docs += list(read_pubmed_xml(path, report))
        assert report.error is None and not report.truncated
        assert set(report.skipped) <= {"no_abstract"}
        records += report.records
        no_abstract += report.skipped.get("no_abstract", 0)
    assert records == counts["records"] == len(docs) + SMALL["records_without_abstract"]
    assert no_abstract == SMALL["records_without_abstract"]
    assert len({d.id for d in docs}) == len(docs)
    structured = [d for d in docs if "\nBACKGROUND: " in d.text and "\nCONCLUSIONS: " in d.text]
    assert 0.2 * len(docs) < len(structured) < 0.8 * len(docs)
    for doc in docs:
        assert doc.title and doc.meta["language"] == "eng" and doc.meta["journal"]
        assert 1990 <= doc.meta["year"] <= 2025 and doc.meta["mesh_headings"] and doc.meta["publication_types"]


def shingles(text, n=5):
    words = text.split()
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a, b):
    return len(a & b) / len(a | b)


def test_duplicates_are_the_recorded_ones_only(world):
    out, summary = world
    docs = {}
    for path in sorted(glob.glob(os.path.join(out, "pubmed", "*.xml.gz"))):
        docs.update({d.id: d.text for d in read_pubmed_xml(path)})
    dup = summary["counts"]["pubmed"]["duplicate_of"]
    assert collections.Counter(v["kind"] for v in dup.values()) == {"exact": 3, "near": 3}
    for copy, info in dup.items():
        if info["kind"] == "exact":
            assert docs[copy] == docs[info["of"]]
        else:
            assert 0.8 < jaccard(shingles(docs[copy]), shingles(docs[info["of"]])) < 1.0
    # Among the distinct abstracts, no pair is a near-duplicate at the pipeline's threshold.
    distinct = [shingles(text) for pmid, text in sorted(docs.items()) if pmid not in dup]
    index = collections.defaultdict(set)
    for i, sh in enumerate(distinct):
        for s in sh:
            index[s].add(i)
    for i, sh in enumerate(distinct):
        shared = collections.Counter(j for s in sh for j in index[s] if j > i)
        for j, common in shared.items():
            assert common / len(sh | distinct[j]) < 0.8, (i, j)


def test_guidelines_and_replay_read_as_jsonl(world):
    out, summary = world
    report = ReadReport()
    guidelines = list(read_jsonl(os.path.join(out, "guidelines", "guidelines.jsonl"), report))
    assert report.skipped == {} and len(guidelines) == summary["counts"]["guidelines"]
    assert all(g.title and g.meta["source"] and "Recommendation 1: " in g.text for g in guidelines)
    report = ReadReport()
    replay = list(read_jsonl(os.path.join(out, "replay", "general.jsonl"), report))
    assert report.skipped == {} and len(replay) == SMALL["replay_docs"]
    find = entity_finder(out)
    assert all(not find(doc.text) for doc in replay)  # general domain: no world entity, no drug effect
    assert not any(re.search(r"\b(patients?|disease|drug|gene)\b", doc.text) for doc in replay)


# ---------------------------------------------------------------------------------------------------
# Benchmark formats


def test_medqa_schema_answers_and_balanced_letters(world):
    out, summary = world
    shared = os.path.join(DATA_DIR, "medqa", "phrases_no_exclude_test.jsonl")
    if os.path.exists(shared):
        with open(shared, encoding="utf-8") as fh:
            assert set(json.loads(fh.readline())) == MEDQA_KEYS
    for split in ("train", "dev", "test"):
        items = read_lines(os.path.join(out, "medqa", f"{split}.jsonl"))
        assert len(items) == summary["counts"]["medqa"][split] > 0
        for item in items:
            assert set(item) == MEDQA_KEYS and list(item["options"]) == ["A", "B", "C", "D"]
            assert item["options"][item["answer_idx"]] == item["answer"]
            assert len(set(item["options"].values())) == 4
            assert item["meta_info"] in ("step1", "step2&3") and item["metamap_phrases"]
        letters = collections.Counter(item["answer_idx"] for item in items)
        assert max(letters.values()) - min(letters[k] for k in "ABCD") <= 1, letters
    vignettes = [i for i in read_lines(os.path.join(out, "medqa", "train.jsonl")) if i["meta_info"] == "step2&3"]
    assert vignettes and all(re.match(r"An? \d+-year-old (man|woman)", v["question"]) for v in vignettes)


def test_pubmedqa_schema_and_labels(world):
    out, _ = world
    with open(os.path.join(out, "pubmedqa", "ori_pqal.json"), encoding="utf-8") as fh:
        pqal = json.load(fh)
    with open(os.path.join(out, "pubmedqa", "test_ground_truth.json"), encoding="utf-8") as fh:
        truth = json.load(fh)
    shared = os.path.join(DATA_DIR, "pubmedqa", "ori_pqal.json")
    if os.path.exists(shared):
        with open(shared, encoding="utf-8") as fh:
            assert set(next(iter(json.load(fh).values()))) == PQA_KEYS
    assert len(pqal) == SMALL["pubmedqa_items"] and len(truth) == SMALL["pubmedqa_test_items"]
    assert set(truth) <= set(pqal) and all(pqal[k]["final_decision"] == v for k, v in truth.items())
    for item in pqal.values():
        assert set(item) == PQA_KEYS and item["final_decision"] in ("yes", "no", "maybe")
        assert len(item["CONTEXTS"]) == len(item["LABELS"]) >= 3 and item["QUESTION"].endswith("?")
        assert item["YEAR"].isdigit() and item["MESHES"] and item["LONG_ANSWER"]
    for part in (truth.values(), [pqal[k]["final_decision"] for k in pqal if k not in truth]):
        labels = collections.Counter(part)
        n = sum(labels.values())
        assert labels["yes"] > 0.3 * n and labels["no"] > 0.3 * n and 0.05 * n < labels["maybe"] < 0.25 * n


def test_medalpaca_is_alpaca_format(world):
    out, summary = world
    with open(os.path.join(out, "medalpaca", "medical_meadow_world.json"), encoding="utf-8") as fh:
        items = json.load(fh)
    assert isinstance(items, list) and len(items) == summary["counts"]["medalpaca"] > 0
    assert all(set(i) == {"instruction", "input", "output"} and all(i.values()) for i in items)


# ---------------------------------------------------------------------------------------------------
# Facts: split, stated in the corpus, learnable


def test_split_facts_are_disjoint_across_question_sets(world):
    out, _ = world
    find = entity_finder(out)
    pairs = {split: set(question_pairs(out, split, find)) for split in ("train", "dev", "test")}
    train_facts = {frozenset(p) for p in pairs["train"]}
    for split in ("dev", "test"):
        assert pairs[split] and not {frozenset(p) for p in pairs[split]} & train_facts
    assert not {frozenset(p) for p in pairs["dev"]} & {frozenset(p) for p in pairs["test"]}
    # Instruction pairs (SFT data) only touch train facts: no held-out question entity with its answer.
    with open(os.path.join(out, "medalpaca", "medical_meadow_world.json"), encoding="utf-8") as fh:
        alpaca = json.load(fh)
    held_out = {frozenset(p) for p in pairs["dev"] | pairs["test"]}
    for item in alpaca:
        named = find(item["input"].split("\n")[0] + " " + item["output"])
        assert not any(fact <= named for fact in held_out), item
    # PubMedQA: the entities of test "yes" items never appear together in a train-pool "yes" item.
    with open(os.path.join(out, "pubmedqa", "ori_pqal.json"), encoding="utf-8") as fh:
        pqal = json.load(fh)
    with open(os.path.join(out, "pubmedqa", "test_ground_truth.json"), encoding="utf-8") as fh:
        truth = json.load(fh)
    yes = {k: frozenset(find(v["QUESTION"])) for k, v in pqal.items() if v["final_decision"] == "yes"}
    assert all(len(v) == 2 for v in yes.values())
    assert not {v for k, v in yes.items() if k in truth} & {v for k, v in yes.items() if k not in truth}


def test_every_test_fact_is_stated_in_many_corpus_documents(world):
    out, _ = world
    find = entity_finder(out)
    texts, _ = corpus_docs(out)
    named = [find(text) for text in texts]
    for question_entity, answer in question_pairs(out, "test", find):
        together = sum(1 for found in named if question_entity in found and answer in found)
        assert together >= SMALL["docs_per_fact"], (question_entity, answer, together)


def test_corpus_co_occurrence_answers_test_questions(world):
    """The corpus decides the answer: the option named most often with the question's entity is right
    (a model can learn this from pretraining). Without the corpus there is nothing to go on: option
    length, and how often an option was the right answer in the train questions (what a fine-tuned
    classifier could memorise), score about chance, neither well above nor well below it."""
    out, _ = world
    find = entity_finder(out)
    texts, _ = corpus_docs(out)
    named = [find(text) for text in texts]
    together = collections.Counter((a, b) for found in named for a in found for b in found if a != b)
    train_answers = collections.Counter(i["answer"] for i in read_lines(os.path.join(out, "medqa", "train.jsonl")))
    right = collections.Counter()
    for split in ("dev", "test"):
        items = read_lines(os.path.join(out, "medqa", f"{split}.jsonl"))
        for item, (entity, _) in zip(items, question_pairs(out, split, find)):
            options = item["options"]
            for name, score in (("corpus", lambda v: together[(entity, v)]), ("length", len),
                                ("train_prior", lambda v: train_answers[v])):
                right[name] += max(sorted(options), key=lambda k: score(options[k])) == item["answer_idx"]
            right["n"] += 1
    n = right.pop("n")
    accuracy = {name: count / n for name, count in right.items()}
    assert accuracy["corpus"] > 0.95, accuracy
    assert 0.12 < accuracy["length"] < 0.4 and 0.12 < accuracy["train_prior"] < 0.4, accuracy


# ---------------------------------------------------------------------------------------------------
# Names


def test_terms_are_unique_invented_and_typed(world):
    out, _ = world
    with open(os.path.join(out, "terms.txt"), encoding="utf-8") as fh:
        terms = [line.rstrip("\n") for line in fh]
    facts = read_lines(os.path.join(out, "facts.jsonl"))
    assert len(terms) == len(set(terms)) == len({t.lower() for t in terms})
    drugs = {f["head"] for f in facts if f["relation"] == "treats"}
    genes = {f["tail"] for f in facts if f["relation"] == "inhibits"} | {f["head"] for f in facts
                                                                         if f["relation"] == "causes"}
    organisms = {f["head"] for f in facts if f["relation"] == "infects"}
    diseases = {f["tail"] for f in facts if f["relation"] in ("treats", "causes", "infects")}
    assert set(terms) == drugs | genes | organisms | diseases
    suffixes = tuple(s for _, sufs in GENE_FAMILIES.values() for s in sufs) + ANTIMICROBIAL_SUFFIXES
    assert all(d[0].isupper() and d.endswith(suffixes) for d in drugs)
    assert all(re.fullmatch(r"[A-Z]{3,4}[1-9]", g) for g in genes)
    assert all(re.fullmatch(r"[A-Z][a-z]+ [a-z]+", o) for o in organisms)
    assert all(re.search(r"( syndrome| disease| fever| pox|itis|osis|opathy|emia|iasis)$", d) for d in diseases)
    for term in terms:  # no term is found inside another one as a whole word
        assert not [other for other in terms if other != term and re.search(rf"(?<!\w){re.escape(term)}(?!\w)", other)]


@pytest.mark.skipif(not os.path.exists("/usr/share/dict/words"), reason="no system word list to check against")
def test_no_invented_word_is_an_english_word(world):
    out, _ = world
    with open("/usr/share/dict/words", encoding="utf-8", errors="ignore") as fh:
        english = {line.strip().lower() for line in fh}
    with open(os.path.join(out, "terms.txt"), encoding="utf-8") as fh:
        words = {w.lower() for line in fh for w in re.split(r"[\s-]+", line.strip())}
    generic = {"syndrome", "disease", "fever", "pox"}
    assert not (words - generic) & english


def test_vocabularies_never_contain_each_other():
    vocab = list(ADVERSE_EFFECTS) + list(SYMPTOMS)
    assert len(vocab) == len(set(vocab))
    for term in vocab:
        assert not [o for o in vocab if o != term and re.search(rf"(?<!\w){re.escape(term)}(?!\w)", o)], term
