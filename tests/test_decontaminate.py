"""Benchmark decontamination: invented benchmark files in the released formats (never real benchmark text),
planted leaks found through case and punctuation changes, near misses and boilerplate not flagged, config
errors naming their field, reports that merge the same in any order, the synthetic world's questions, and
the real releases in ../shared/data (skipped where that folder is absent)."""

import glob
import json
import os
import pickle

import ml_collections
import numpy as np
import pytest

from biomed_jax.data import decontaminate as dc
from biomed_jax.synthetic.defaults import QUICKSTART_WORLD
from biomed_jax.synthetic.generate import generate_world
from biomed_jax.data.benchmarks import MEDICAL_SUBJECTS, load_benchmark
from biomed_jax.data.readers import read_documents
from helpers import REPO_ROOT

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
needs_data = pytest.mark.skipif(not os.path.isdir(DATA_DIR),
                                reason=f"real data samples not found at {DATA_DIR} (only in the shared workspace)")

ALL = "medqa,medmcqa,pubmedqa,mmlu,bioasq,usmle"

MEDQA_TEST = ("A 47-year-old Zelborian farmer presents with Flenwick fever, joint pain and a spreading rash on "
              "both forearms; which drug treats his condition best?")
MEDQA_DEV = "A dev-split question about Quorvian palsy that no training document should ever be checked against here."
PQA_CONTEXT = ("Trivaline plasma levels were measured in 212 invented patients with Dorvish syndrome before and "
               "after six weeks of oral Zelnaride at the Mirplast clinic.")
PQA_TRAIN_CONTEXT = ("Eighty invented volunteers received Plinthorax twice daily while their Gravoline excretion was "
                     "recorded by the Quendar laboratory for a full year.")
MMLU_QUESTION = "Which invented hormone released by the Tavoxian gland lowers the plasma concentration of Brelium"
BIOASQ_SNIPPET = ("Knockdown of the invented gene ZORB7 abolished Krellin secretion in cultured Vasmic cells from "
                  "four independent donors.")
USMLE_QUESTION = ("A 33-year-old Pelmarian sailor has a painless ulcer on the tongue that has grown for three "
                  "weeks despite rinsing with Ostrabine; what is the next step?")
MEDMCQA_LONG = "Which enzyme of the invented Gorbic pathway is blocked first by high doses of Selvamide in adults?"


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def medqa(question, options=("Zelnaride", "Quorbin", "Tavoxil", "Mirplast")):
    return {"question": question, "answer": options[1], "options": dict(zip("ABCD", options)),
            "meta_info": "step1", "answer_idx": "B", "metamap_phrases": []}


def pqa(question, contexts):
    return {"QUESTION": question, "CONTEXTS": list(contexts), "LABELS": ["METHODS"] * len(contexts),
            "MESHES": [], "YEAR": "2001", "final_decision": "yes", "LONG_ANSWER": "It does."}


BOILERPLATE = "which of the following invented steps is the most appropriate next step in management of this"


def write_benchmarks(root):
    """Every benchmark in its released layout under `root`, as TEST_SETS reads it."""
    write_lines(root / "medqa" / "phrases_no_exclude_test.jsonl", [
        medqa(MEDQA_TEST),
        *(medqa(f"A {age}-year-old Vorbic patient with Kelm disease arrives; {BOILERPLATE} patient?",
                options=(f"Drug{age}a", f"Drug{age}b", f"Drug{age}c", f"Drug{age}d")) for age in (30, 40, 50)),
    ])
    write_lines(root / "medqa" / "phrases_no_exclude_dev.jsonl", [medqa(MEDQA_DEV)])
    write_lines(root / "medmcqa" / "dev.json", [
        {"id": "mm-long", "question": MEDMCQA_LONG, "opa": "Gorbase", "opb": "Selvase", "opc": "Tramase",
         "opd": "Quillase", "cop": 4, "choice_type": "single", "exp": None, "subject_name": "Biochemistry"},
        {"id": "mm-short", "question": "Drug of choice for Zorbic fever?", "opa": "Alphanil", "opb": "Betanil",
         "opc": "Gammanil", "opd": "Deltanil", "cop": 1, "choice_type": "single", "exp": None, "subject_name": "x"},
    ])
    write_json(root / "pubmedqa" / "ori_pqal.json", {
        "101": pqa("Does Zelnaride lower Trivaline levels in Dorvish syndrome?", [PQA_CONTEXT]),
        "102": pqa("Does Plinthorax change Gravoline excretion?", [PQA_TRAIN_CONTEXT]),
    })
    write_json(root / "pubmedqa" / "test_ground_truth.json", {"101": "yes"})
    for subject in MEDICAL_SUBJECTS:
        path = root / "mmlu" / "test" / f"{subject}_test.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        row = f'"{MMLU_QUESTION}?",Calmorin,Dextrin B,Florin,Gastrin Z,A\n' if subject == "anatomy" else \
            f"Invented {subject} question number one about Parvix?,a,b,c,d,B\n"
        path.write_text(row, encoding="utf-8")
    write_json(root / "bioasq" / "Task1BGoldenEnriched" / "1B1_golden.json", {"questions": [
        {"id": "bq-1", "type": "yesno", "body": "Is ZORB7 required for Krellin secretion?",
         "snippets": [{"text": BIOASQ_SNIPPET}], "exact_answer": "yes"},
        {"id": "bq-short", "type": "yesno", "body": "Is Quarn real?", "snippets": [], "exact_answer": "no"},
        {"id": "bq-factoid", "type": "factoid", "body": "Which gene?", "snippets": [], "exact_answer": [["x"]]},
    ]})
    write_json(root / "usmle" / "step1.json", [
        {"no": 1, "question": USMLE_QUESTION, "options": {"A": "Biopsy", "B": "Reassurance", "C": "Antivirals"},
         "answer": "A"}])
    return root


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = write_benchmarks(tmp_path_factory.mktemp("benchmarks"))
    return dc.build_index({"benchmarks": ALL, "data_root": str(root)})


# ---------------------------------------------------------------------------------------------------
# Config


def test_validate_fills_defaults_and_normalises_benchmarks():
    assert dc.validate(None) == {**dc.DEFAULTS, "benchmarks": ()}
    section = dc.validate({"benchmarks": " medqa, pubmedqa,,medqa ", "data_root": "/b"})
    assert section["benchmarks"] == ("medqa", "pubmedqa") and section["ngram"] == 13 and section["action"] == "report"
    config = ml_collections.ConfigDict(dict(dc.DEFAULTS, benchmarks=("usmle",), data_root="/b", action="drop"))
    assert dc.validate(config)["benchmarks"] == ("usmle",) and dc.validate(config)["action"] == "drop"


@pytest.mark.parametrize("section, field", [
    ({"benchmarks": "medqa,medqq", "data_root": "/b"}, "decontam.benchmarks"),
    ({"benchmarks": 3}, "decontam.benchmarks"),
    ({"benchmarks": "medqa"}, "decontam.data_root"),
    ({"data_root": 7}, "decontam.data_root"),
    ({"ngram": 5}, "decontam.ngram"),
    ({"ngram": True}, "decontam.ngram"),
    ({"ngram": "13"}, "decontam.ngram"),
    ({"max_examples": -1}, "decontam.max_examples"),
    ({"action": "delete"}, "decontam.action"),
    ({"n_gram": 13}, "decontam.n_gram"),
])
def test_validate_errors_name_the_field(section, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        dc.validate(section)


def test_build_index_errors_name_data_root_and_path(tmp_path):
    with pytest.raises(ValueError, match="decontam.benchmarks is empty"):
        dc.build_index({"data_root": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="decontam.data_root .*nowhere"):
        dc.build_index({"benchmarks": "medqa", "data_root": str(tmp_path / "nowhere")})
    write_lines(tmp_path / "medqa" / "test.jsonl", [medqa(MEDQA_TEST)])
    missing = os.path.join(str(tmp_path), "pubmedqa", "ori_pqal.json")
    with pytest.raises(FileNotFoundError, match="decontam.data_root") as err:
        dc.build_index({"benchmarks": "medqa,pubmedqa", "data_root": str(tmp_path)})
    assert missing in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "medqa" / "test.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no medqa test questions"):
        dc.build_index({"benchmarks": "medqa", "data_root": str(tmp_path)})


# ---------------------------------------------------------------------------------------------------
# Words and the index


def test_words_fold_case_compatibility_forms_and_punctuation():
    assert dc.words("A 59-Year-Old man's “ﬁrst” ＡＢ test_case: p<0.05!") == \
        ["a", "59", "year", "old", "man", "s", "first", "ab", "test", "case", "p", "0", "05"]
    assert dc.words("Café CAFÉ") == ["café", "café"]
    text = "".join(map(chr, range(128))) + " MiXeD-case, ascii_only text."
    assert dc.words(text) == dc.words(text + "\u00a0")  # the ASCII fast path and the regex agree


def test_index_reads_only_the_test_splits(index):
    assert index.totals() == {"medqa": 4, "medmcqa": 2, "pubmedqa": 1, "mmlu": 6, "bioasq": 2, "usmle": 1}
    assert index.info["bioasq"]["questions_unindexed"] == 1  # "Is Quarn real?": 3 words, below MIN_WORDS
    assert index.info["bioasq"]["skipped"] == {"other_type": 1}
    assert index.info["medqa"]["path"].endswith("medqa") and index.info["medqa"]["split"] == "test"
    assert not index.hits(f"Background. {MEDQA_DEV} Conclusion.")
    assert not index.hits(f"Methods: {PQA_TRAIN_CONTEXT} Results followed.")


def test_planted_leaks_are_found_through_case_and_punctuation(index):
    abstract = ("BACKGROUND: Flenwick fever is rare. METHODS: We asked students: 'a 47 year old ZELBORIAN farmer "
                "presents with flenwick fever -- joint pain, and a spreading rash on both forearms. Which drug "
                "treats his condition best' RESULTS: most answered correctly.")
    guideline = ("Recommendation 2: “Trivaline plasma-levels were measured in 212 invented patients with DORVISH "
                 "syndrome (before and after) six weeks of oral Zelnaride” at the Mirplast clinic.")
    quiz = (f"Q: {MMLU_QUESTION.upper()}? (A) Calmorin (B) Dextrin B (C) Florin (D) Gastrin Z. Answer: A\n"
            f"Next: {MEDMCQA_LONG} a) Gorbase b) Selvase c) Tramase d) Quillase")
    forum = f"Someone wrote: {USMLE_QUESTION.lower()} I said biopsy. Also: {BIOASQ_SNIPPET}"
    assert index.hits(abstract) == {"medqa": {"phrases_no_exclude_test:1"}}
    assert index.hits(guideline) == {"pubmedqa": {"101"}}
    assert index.hits(quiz) == {"mmlu": {"anatomy_test:1"}, "medmcqa": {"mm-long"}}
    assert index.hits(forum) == {"usmle": {"step1:1"}, "bioasq": {"bq-1"}}


def test_short_questions_match_only_whole(index):
    # "Drug of choice for Zorbic fever?" + its four options: 10 words, indexed as one 10-word sequence.
    assert index.hits("Exam recall - drug of choice for Zorbic fever: Alphanil, Betanil, Gammanil, Deltanil.") == \
        {"medmcqa": {"mm-short"}}
    assert not index.hits("What is the drug of choice for Zorbic fever? Nobody knows.")
    assert not index.hits("Is Quarn real? Is Quarn real? Is Quarn real? Is Quarn real?")


def test_near_misses_and_unrelated_text_are_not_hits(index):
    question = dc.words(MEDQA_TEST)
    twelve = " ".join(question[3:15])  # ngram - 1 consecutive words of the test question
    assert not index.hits(f"In another story, {twelve} ended the tale quietly.")
    assert not index.hits(" ".join(reversed(question)))
    assert not index.hits("Zelnaride is an invented drug. " * 40)
    assert not index.hits("") and not index.hits("!!! ???")


def test_ngrams_shared_by_three_questions_are_boilerplate(index):
    assert index.info["medqa"]["ngrams_shared_dropped"] > 0 and index.info["medqa"]["questions_unindexed"] == 0
    assert not index.hits(f"Practice item: {BOILERPLATE} patient?")
    assert index.hits(f"A 40-year-old Vorbic patient with Kelm disease arrives; {BOILERPLATE} patient? "
                      "Drug40a Drug40b") == {"medqa": {"phrases_no_exclude_test:3"}}


def test_index_pickles_as_a_side_input(index):
    copy = pickle.loads(pickle.dumps(index))
    text = f"Intro. {USMLE_QUESTION} {PQA_CONTEXT}"
    assert copy.hits(text) == index.hits(text) == {"usmle": {"step1:1"}, "pubmedqa": {"101"}}
    assert len(copy) == len(index) > 0


def test_index_questions_rejects_short_ngrams():
    with pytest.raises(ValueError, match="ngram must be an integer >= 8"):
        dc.index_questions({}, ngram=4)


# ---------------------------------------------------------------------------------------------------
# The report


def random_hits(seed, n_docs=60):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        hits = {}
        for name, total in (("medqa", 12), ("pubmedqa", 5)):
            if rng.random() < 0.3:
                hits[name] = {f"q{j}" for j in rng.choice(total, size=rng.integers(1, 3), replace=False)}
        docs.append((str(rng.choice(["pubmed", "guidelines"])), f"d{i}", hits))
    return docs


def make_report(action="report"):
    info = {"medqa": {"questions_total": 12}, "pubmedqa": {"questions_total": 5}}
    return dc.DecontamReport(info, ngram=13, max_examples=3, action=action)


def test_report_counts_and_picks_the_smallest_examples():
    docs = random_hits(0)
    report = make_report("drop")
    for source, doc_id, hits in docs:
        report.add(source, doc_id, hits)
    out = report.to_dict()
    hit_docs = [d for d in docs if d[2]]
    assert out["documents_checked"] == 60 and out["documents_hit"] == out["documents_dropped"] == len(hit_docs)
    medqa = out["benchmarks"]["medqa"]
    with_medqa = [d for d in docs if "medqa" in d[2]]
    assert medqa["questions_total"] == 12 and medqa["documents_hit"] == len(with_medqa)
    ids = set().union(*(d[2]["medqa"] for d in with_medqa))
    assert medqa["question_ids_hit"] == sorted(ids, key=lambda q: int(q[1:])) and medqa["questions_hit"] == len(ids)
    # The first 3 by (source, id), numbers compared as numbers: d2 before d10.
    expected = sorted(with_medqa, key=lambda d: (d[0], int(d[1][1:])))[:3]
    assert [(e["source"], e["id"], e["question_ids"]) for e in medqa["examples"]] == \
        [(s, i, sorted(h["medqa"], key=lambda q: int(q[1:]))) for s, i, h in expected]
    assert make_report().to_dict()["documents_dropped"] == 0
    json.dumps(out)


def test_report_is_the_same_however_documents_are_split_and_merged():
    docs = random_hits(1)
    whole = make_report()
    for doc in docs:
        whole.add(*doc)
    rng = np.random.default_rng(7)
    for trial in range(5):
        order = rng.permutation(len(docs))
        parts = [make_report() for _ in range(4)]
        for n, i in enumerate(order):
            parts[n % 4].add(*docs[i])
        first, *rest = [parts[i] for i in rng.permutation(4)]
        if trial % 2:  # a tree of merges, as a combiner may do
            merged = first.merge(rest[0]).merge(rest[1].merge(rest[2]))
        else:
            merged = first
            for part in rest:
                merged = merged.merge(part)
        assert merged.to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="different indexes or settings"):
        make_report().merge(make_report("drop"))


def test_report_for_index_and_unknown_benchmarks(index):
    report = dc.DecontamReport.for_index(index, {"benchmarks": "medqa", "data_root": "/b", "max_examples": 1})
    report.add("pubmed", "7", index.hits(USMLE_QUESTION))
    out = report.to_dict()
    assert out["benchmarks"]["usmle"]["question_ids_hit"] == ["step1:1"] and out["action"] == "report"
    assert out["benchmarks"]["usmle"]["examples"] == [{"source": "pubmed", "id": "7", "question_ids": ["step1:1"]}]
    with pytest.raises(ValueError, match="'gsm8k'"):
        report.add("pubmed", "8", {"gsm8k": {"1"}})


# ---------------------------------------------------------------------------------------------------
# The synthetic world and the real releases


def test_synthetic_world_medqa_question_planted_in_an_abstract(tmp_path):
    world = str(tmp_path / "world")
    generate_world(world, QUICKSTART_WORLD)
    index = dc.build_index({"benchmarks": "medqa,pubmedqa", "data_root": world})
    assert index.totals()["medqa"] > 0 and index.totals()["pubmedqa"] > 0
    question = load_benchmark("medqa", os.path.join(world, "medqa"), split="test")[0][5]
    abstract = next(read_documents("pubmed_xml", glob.glob(os.path.join(world, "pubmed", "*.xml.gz"))[0]))
    assert "medqa" not in index.hits(abstract.text)
    options = " ".join(f"({letter}) {text}" for letter, text in zip(question.letters, question.options))
    sentences = abstract.text.split(". ")
    planted = ". ".join(sentences[:2] + [f"Exam question: {question.question.upper()} {options}"] + sentences[2:])
    assert question.id in index.hits(planted)["medqa"]


@needs_data
def test_real_benchmarks_index_and_a_planted_question_from_each():
    index = dc.build_index({"benchmarks": "medqa,medmcqa,pubmedqa,mmlu,bioasq", "data_root": DATA_DIR})
    assert index.totals() == {"medqa": 1273, "medmcqa": 4183, "pubmedqa": 500, "mmlu": 1099, "bioasq": 618}
    for name, (relative, split) in dc.TEST_SETS.items():
        if name == "usmle":
            continue
        q = load_benchmark(name, os.path.join(DATA_DIR, relative), split=split)[0][10]
        text = dc.question_texts(q)[-1]
        assert q.id in index.hits(f"Unrelated opening words. {text} Unrelated closing words.")[name], name
    # The PMC articles in the sample quote none of these test questions.
    for path in glob.glob(os.path.join(DATA_DIR, "pmc_oa", "*.nxml")):
        for doc in read_documents("pmc_jats", path):
            assert index.hits(doc.text) == {}, doc.id
