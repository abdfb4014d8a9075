"""Benchmark loaders: invented fixtures for each format and each kind of damage, the synthetic world's
benchmark files, the real releases in ../shared/data (skipped where that folder is absent), prompt
rendering, option padding and the `experiments.inspect_data` benchmark kinds."""

import gzip
import json
import os

import numpy as np
import pytest

from biomed_jax.data import benchmarks as bm
from biomed_jax.synthetic.defaults import QUICKSTART_WORLD
from biomed_jax.synthetic.generate import generate_world
from helpers import REPO_ROOT, run_cli

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
needs_data = pytest.mark.skipif(not os.path.isdir(DATA_DIR),
                                reason=f"real data samples not found at {DATA_DIR} (only in the shared workspace)")


def write_lines(path, records):
    """JSON lines; a str record is written as is (a damaged line)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------
# MedQA


def medqa_record(answer_idx="B", answer="Quorbin", options=None, meta_info="step1"):
    options = options or {"A": "Zelnaride", "B": "Quorbin", "C": "Tavoxil", "D": "Mirplast"}
    return {"question": "A 40-year-old invented patient has Flenwick fever. Which drug treats it?", "answer": answer,
            "options": options, "meta_info": meta_info, "answer_idx": answer_idx, "metamap_phrases": ["fever"]}


def test_medqa_fixture_skips_damage_by_reason(tmp_path):
    path = write_lines(tmp_path / "test.jsonl", [
        medqa_record(),
        medqa_record(answer_idx="E", answer="Plinth",
                     options={"A": "a1", "B": "b1", "C": "c1", "D": "d1", "E": "Plinth"}, meta_info="stfep2&3"),
        "{not json",
        "",
        '["a", "list"]',
        medqa_record(answer_idx="F"),                   # not an option
        medqa_record(answer_idx="A"),                   # answer text is option B's: contradicts answer_idx
        {"question": "No options at all", "answer_idx": "A"},
        medqa_record(answer_idx=None, answer="tavoxil"),  # no answer_idx: the option whose text is the answer
    ])
    questions, report = bm.load_medqa(str(path))
    assert report.records == 8 and report.loaded == 3 == len(questions)
    assert report.skipped == {"malformed_record": 3, "bad_answer": 1, "answer_mismatch": 1}
    first, five, by_text = questions
    assert by_text.id == "test:9" and by_text.answer == 2
    assert first.id == "test:1" and first.answer == 1 and first.answer_letter == "B" and first.letters == list("ABCD")
    assert first.answer_text == "Quorbin" and first.context == "" and first.subject == "step1"
    assert five.id == "test:2" and five.options[4] == "Plinth" and five.answer == 4 and five.letters == list("ABCDE")
    assert five.subject == "step2&3" and five.meta["meta_info"] == "stfep2&3"


def test_medqa_folder_picks_split_file_and_reads_gzip(tmp_path):
    write_lines(tmp_path / "dev.jsonl", [medqa_record()])
    with gzip.open(tmp_path / "phrases_no_exclude_test.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(medqa_record(answer_idx="C", answer="Tavoxil")) + "\n")
    questions, report = bm.load_medqa(str(tmp_path / "phrases_no_exclude_test.jsonl.gz"))
    assert [q.answer for q in questions] == [2] and questions[0].id == "phrases_no_exclude_test:1"
    questions, _ = bm.load_medqa(str(tmp_path), split="dev")
    assert [q.answer for q in questions] == [1]
    with pytest.raises(FileNotFoundError, match="train"):
        bm.load_medqa(str(tmp_path), split="train")


def test_empty_split_loads_nothing_without_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    questions, report = bm.load_medqa(str(path))
    assert questions == [] and report.records == 0 and report.loaded == 0 and report.errors == []
    texts, mask = bm.pad_options(questions)
    assert texts == [] and mask.shape == (0, 0)
    assert bm.summarize(questions) == {"answer_distribution": {}, "options_count": {}}


# ---------------------------------------------------------------------------------------------------
# MedMCQA


def medmcqa_record(i, cop, exp="Because.", **extra):
    return {"question": f"Invented question {i}?", "exp": exp, "cop": cop, "opa": f"alpha {i}", "opb": f"beta {i}",
            "opc": f"gamma {i}", "opd": f"delta {i}", "subject_name": "Pharmacology", "topic_name": None,
            "id": f"q{i}", "choice_type": "single", **extra}


def test_medmcqa_detects_one_based_original_release(tmp_path):
    path = write_lines(tmp_path / "dev.json", [medmcqa_record(1, 4), medmcqa_record(2, 1, exp=None),
                                               medmcqa_record(3, "2"), "oops", medmcqa_record(4, None),
                                               medmcqa_record(5, "x")])
    questions, report = bm.load_medmcqa(str(path))
    assert report.info == {"cop_base": 1, "cop_base_from": "detected"}
    assert {q.id: q.answer_text for q in questions} == {"q1": "delta 1", "q2": "alpha 2", "q3": "beta 3"}
    assert questions[1].meta["exp"] is None and questions[0].subject == "Pharmacology"
    assert report.records == 6 and report.skipped == {"malformed_record": 1, "no_answer": 1, "bad_answer": 1}


def test_medmcqa_detects_zero_based_hugging_face_copy(tmp_path):
    path = write_lines(tmp_path / "validation.json", [medmcqa_record(1, 0), medmcqa_record(2, 3)])
    questions, report = bm.load_medmcqa(str(path))
    assert report.info["cop_base"] == 0
    assert [q.answer_text for q in questions] == ["alpha 1", "delta 2"]


def test_medmcqa_ambiguous_cop_raises_until_configured(tmp_path):
    path = write_lines(tmp_path / "dev.json", [medmcqa_record(1, 1), medmcqa_record(2, 3)])
    with pytest.raises(ValueError, match="cop_base"):
        bm.load_medmcqa(str(path))
    questions, report = bm.load_medmcqa(str(path), cop_base=0)
    assert [q.answer for q in questions] == [1, 3] and report.info == {"cop_base": 0, "cop_base_from": "configured"}
    questions, report = bm.load_medmcqa(str(path), cop_base=1)
    assert [q.answer for q in questions] == [0, 2]
    mixed = write_lines(tmp_path / "mixed.json", [medmcqa_record(1, 0), medmcqa_record(2, 4)])
    with pytest.raises(ValueError, match="both 0 and 4"):
        bm.load_medmcqa(str(mixed))
    questions, report = bm.load_medmcqa(str(mixed), cop_base=1)
    assert [q.id for q in questions] == ["q2"] and report.skipped == {"bad_answer": 1}
    with pytest.raises(ValueError, match="cop_base must be"):
        bm.load_medmcqa(str(path), cop_base=2)


# ---------------------------------------------------------------------------------------------------
# PubMedQA


def pqa_item(label, contexts=("Background of the study.", "Results of the study.")):
    return {"QUESTION": "Does zorblax help?", "CONTEXTS": list(contexts), "LABELS": ["BACKGROUND", "RESULTS"],
            "MESHES": ["Humans"], "YEAR": "2001", "final_decision": label, "LONG_ANSWER": "It does."}


def pubmedqa_files(tmp_path, truth):
    folder = tmp_path / "pubmedqa"
    write_json(folder / "ori_pqal.json", {"1": pqa_item("yes"), "2": pqa_item("maybe"), "3": pqa_item("no"),
                                          "4": pqa_item("perhaps"), "5": pqa_item("no")})
    write_json(folder / "test_ground_truth.json", truth)
    return folder


def test_pubmedqa_splits_from_ground_truth(tmp_path):
    folder = pubmedqa_files(tmp_path, {"2": "maybe", "3": "no", "9": "yes", "5": "yes"})
    test, report = bm.load_pubmedqa(str(folder / "ori_pqal.json"))
    assert [q.id for q in test] == ["2", "3"] and [q.answer_letter for q in test] == ["maybe", "no"]
    assert report.records == 4 and report.skipped == {"missing_item": 1, "answer_mismatch": 1}
    assert test[0].options == test[0].letters == ["yes", "no", "maybe"]
    assert test[0].context == "Background of the study.\nResults of the study."
    assert test[0].meta["context_labels"] == ["BACKGROUND", "RESULTS"]
    train, report = bm.load_pubmedqa(str(folder), split="train")
    assert [q.id for q in train] == ["1"] and report.skipped == {"bad_answer": 1}
    everything, _ = bm.load_pubmedqa(str(folder), split="all")
    assert [q.id for q in everything] == ["1", "2", "3", "5"]


def test_pubmedqa_test_split_keeps_the_release_order(tmp_path):
    # The released ground truth lists its ids by label; the questions come in ori_pqal.json's order.
    folder = pubmedqa_files(tmp_path, {"5": "no", "3": "no", "2": "maybe", "1": "yes"})
    test, _ = bm.load_pubmedqa(str(folder))
    assert [q.id for q in test] == ["1", "2", "3", "5"]


def test_pubmedqa_empty_and_missing_ground_truth(tmp_path):
    folder = pubmedqa_files(tmp_path, {})
    questions, report = bm.load_pubmedqa(str(folder))
    assert questions == [] and report.records == 0 and report.errors == []
    os.remove(folder / "test_ground_truth.json")
    with pytest.raises(FileNotFoundError, match="test_ground_truth.json"):
        bm.load_pubmedqa(str(folder))
    assert len(bm.load_pubmedqa(str(folder), split="all")[0]) == 4
    with pytest.raises(ValueError, match="split"):
        bm.load_pubmedqa(str(folder), split="dev")


def test_pubmedqa_damaged_file_is_reported_not_raised(tmp_path):
    folder = pubmedqa_files(tmp_path, {"1": "yes"})
    (folder / "ori_pqal.json").write_text('{"1": {"QUESTION": "cut off', encoding="utf-8")
    questions, report = bm.load_pubmedqa(str(folder))
    assert questions == [] and report.skipped == {"unreadable_file": 1}
    assert "ori_pqal.json" in report.errors[0]


# ---------------------------------------------------------------------------------------------------
# MMLU

MMLU_ANATOMY = ('"Which invented bone,\nspread over two lines, is longest?",Femurix,"Tibi, ax",Humerox,Ulnar,C\n'
                'Second question?,a,b,c,d,A\n'
                'Too few fields,a,b,A\n'
                'Bad letter?,a,b,c,d,E\n')


def mmlu_tree(tmp_path):
    root = tmp_path / "data"
    for split in ("test", "dev"):
        (root / split).mkdir(parents=True)
        (root / split / f"anatomy_{split}.csv").write_text(MMLU_ANATOMY, encoding="utf-8")
        (root / split / f"medical_genetics_{split}.csv").write_text("Gene?,w,x,y,z,D\n", encoding="utf-8")
    return root


def test_mmlu_quoted_newlines_and_damaged_rows(tmp_path):
    root = mmlu_tree(tmp_path)
    questions, report = bm.load_mmlu(str(root), subjects=("anatomy", "medical_genetics"))
    assert report.records == 5 and report.loaded == 3 and report.skipped == {"malformed_record": 1, "bad_answer": 1}
    assert report.info["subjects"] == {"anatomy": 2, "medical_genetics": 1}
    first = questions[0]
    assert "\n" in first.question and first.options[1] == "Tibi, ax" and first.answer == 2
    assert first.id == "anatomy_test:1" and first.subject == "anatomy" and questions[1].id == "anatomy_test:2"
    assert questions[2].answer_letter == "D" and questions[2].subject == "medical_genetics"


def test_mmlu_layouts_and_errors(tmp_path):
    root = mmlu_tree(tmp_path)
    dev, report = bm.load_mmlu(str(root / "dev"), subjects=["medical_genetics"], split="dev")
    assert [q.id for q in dev] == ["medical_genetics_dev:1"] and report.info["split"] == "dev"
    single, _ = bm.load_mmlu(str(root / "test" / "anatomy_test.csv"))
    assert len(single) == 2 and single[0].subject == "anatomy"
    with pytest.raises(FileNotFoundError, match="college_biology_test.csv"):
        bm.load_mmlu(str(root))
    with pytest.raises(ValueError, match="test, dev, val"):
        bm.load_mmlu(str(root), split="train")


# ---------------------------------------------------------------------------------------------------
# BioASQ


def bioasq_question(qid, kind="yesno", answer="yes", snippets=("First snippet.", "Second snippet.")):
    return {"id": qid, "type": kind, "body": f"Is invented claim {qid} true?", "documents": ["d1", "d2"],
            "snippets": [{"text": text, "document": "d1"} for text in snippets], "ideal_answer": ["Yes."],
            "exact_answer": answer}


def test_bioasq_yes_no_from_a_folder(tmp_path):
    write_json(tmp_path / "Task1" / "1B1_golden.json", {"questions": [
        bioasq_question("a", snippets=("Same.", "Same.", "Other.")), bioasq_question("b", answer="Yes"),
        bioasq_question("c", kind="factoid", answer=[["zorblax"]]), bioasq_question("d", answer=["no"]),
        bioasq_question("e", answer="perhaps"), "not a question"]})
    write_json(tmp_path / "Task2" / "2B1_golden.json", {"questions": [bioasq_question("a", answer="no"),
                                                                      bioasq_question("f", snippets=())]})
    (tmp_path / "Task2" / "readme.txt").write_text("notes, not JSON", encoding="utf-8")
    (tmp_path / "Task2" / "2B2_golden.json").write_text('{"questions": [', encoding="utf-8")
    questions, report = bm.load_bioasq(str(tmp_path))
    assert [(q.id, q.answer_letter) for q in questions] == [("a", "yes"), ("b", "yes"), ("d", "no"), ("f", "yes")]
    assert report.records == 8 and report.info["files"] == 3
    assert report.skipped == {"other_type": 1, "bad_answer": 1, "malformed_record": 1, "duplicate_id": 1,
                              "unreadable_file": 1}
    assert "2B2_golden.json" in report.errors[0]
    assert questions[0].context == "Same.\nOther." and questions[3].context == ""
    assert questions[0].options == questions[0].letters == ["yes", "no"]
    assert questions[0].meta["file"] == os.path.join("Task1", "1B1_golden.json")
    with pytest.raises(ValueError, match="yesno"):
        bm.load_bioasq(str(tmp_path), types=("yesno", "factoid"))


def test_bioasq_files_in_release_order(tmp_path):
    # Task7B..Task9B before Task10B, 11B: numbers compare as numbers, not as text.
    for task in ("Task10B", "Task7B", "Task11B", "Task9B"):
        write_json(tmp_path / task / f"{task[4:]}1_golden.json", {"questions": [bioasq_question(task)]})
    questions, _ = bm.load_bioasq(str(tmp_path))
    assert [q.id for q in questions] == ["Task7B", "Task9B", "Task10B", "Task11B"]


# ---------------------------------------------------------------------------------------------------
# USMLE self-assessment (MedAlpaca)


def usmle_question(no, answer=None, n_options=4, text="Which invented enzyme is deficient?"):
    record = {"no": no, "question": text, "options": {l: f"Enzyme {l.lower()}" for l in bm.LETTERS[:n_options]}}
    if answer is not None:
        record["answer"] = answer
    return record


@pytest.fixture
def usmle_dir(tmp_path):
    folder = tmp_path / "usmle"
    write_json(folder / "step1.json", [
        usmle_question(1, "C: Enzyme c"),
        usmle_question(2, "B", n_options=6),
        usmle_question(3, "E: Enzyme e"),                                    # no option E
        usmle_question(4, "A: Enzyme z"),                                    # text contradicts option A
        usmle_question(5, "A", text="The photograph shows a rash. Which enzyme?"),
        usmle_question(6, "(D) Enzyme d", text="Imaging shows a mass; the clinical picture suggests which enzyme?"),
        usmle_question(7, "A", text="Which structure is labelled in the figure?"),
        usmle_question(8, "maybe"),
        {"no": 9, "question": "No options"},
    ])
    write_json(folder / "step2.json", [usmle_question(1, n_options=9), usmle_question(2), usmle_question(3)])
    write_json(folder / "step2_solutions.json", {"1": "I: Enzyme i", "2": "B"})
    write_json(folder / "question_with_images.json", {"step2": [2], "step1": []})
    return folder


def test_usmle_answers_images_and_option_counts(usmle_dir):
    questions, report = bm.load_usmle(str(usmle_dir))
    assert [(q.id, q.answer_letter) for q in questions] == [("step1:1", "C"), ("step1:2", "B"), ("step1:6", "D"),
                                                            ("step2:1", "I")]
    assert report.records == 12 and report.loaded == 4
    assert report.skipped == {"bad_answer": 2, "answer_mismatch": 1, "image_question": 3, "malformed_record": 1,
                              "no_answer": 1}
    assert [len(q.options) for q in questions] == [4, 6, 4, 9] and questions[3].letters == list("ABCDEFGHI")
    assert questions[0].subject == "step1" and questions[3].answer_text == "Enzyme i"
    assert report.info["image_list"].endswith("question_with_images.json")
    kept, report = bm.load_usmle(str(usmle_dir), exclude_images=False)
    assert {"step1:5", "step1:7", "step2:2"} <= {q.id for q in kept} and "image_question" not in report.skipped
    step2, _ = bm.load_usmle(str(usmle_dir / "step2.json"))
    assert [q.id for q in step2] == ["step2:1"]
    assert [q.id for q in bm.load_benchmark("usmle", str(usmle_dir), split="step2")[0]] == ["step2:1"]


def test_parse_option_answer():
    letters = list("ABCDE")
    assert bm.parse_option_answer("C: Hepatitis C serology", letters) == ("C", "Hepatitis C serology")
    assert bm.parse_option_answer(" b ", letters) == ("B", None)
    assert bm.parse_option_answer("(D) text", letters) == ("D", "text")
    assert bm.parse_option_answer("E. text", letters) == ("E", "text")
    assert bm.parse_option_answer("F: text", letters) is None
    assert bm.parse_option_answer("Hepatitis", letters) is None
    assert bm.parse_option_answer(3, letters) is None


# ---------------------------------------------------------------------------------------------------
# Dispatch, padding, prompts


def test_load_benchmark_errors_name_what_to_fix(tmp_path, usmle_dir):
    with pytest.raises(ValueError, match="known kinds: medqa, medmcqa"):
        bm.load_benchmark("medqa_v2", str(usmle_dir))
    with pytest.raises(ValueError, match="cop_bas.*accepts: cop_base"):
        bm.load_benchmark("medmcqa", str(usmle_dir), cop_bas=1)
    with pytest.raises(ValueError, match="bioasq has no splits"):
        bm.load_benchmark("bioasq", str(usmle_dir), split="test")
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        bm.load_benchmark("medqa", str(tmp_path / "nowhere.jsonl"))


def test_pad_options_masks_missing_options(usmle_dir):
    questions, _ = bm.load_usmle(str(usmle_dir))
    texts, mask = bm.pad_options(questions, pad="<none>")
    assert mask.shape == (4, 9) and mask.dtype == np.bool_
    assert mask.sum(axis=1).tolist() == [4, 6, 4, 9]
    assert texts[0][:4] == questions[0].options and texts[0][4:] == ["<none>"] * 5
    assert all(len(row) == 9 for row in texts)


def test_render_fields_and_errors():
    q = bm.MCQuestion(id="x:1", question="Which drug?", context="", options=["Zelnaride", "Quorbin"], answer=1,
                      letters=["A", "B"], subject="medical_genetics")
    prompt = bm.render("{subject}: {question}\n{options}\nAnswer ({letters}): {answer_letter} {{literal}}", q)
    assert prompt == "medical genetics: Which drug?\nA. Zelnaride\nB. Quorbin\nAnswer (A, B): B {literal}"
    assert bm.render("{shots}{question} {answer_text}", q, shots="Q: ...\n") == "Q: ...\nWhich drug? Quorbin"
    with pytest.raises(ValueError, match=r"\{explanation\} is unknown; known fields: .*answer_letter"):
        bm.render("{question} {explanation}", q)
    with pytest.raises(ValueError, match="hide"):
        bm.render("{question}", q, question="other")
    with pytest.raises(ValueError, match="positional"):
        bm.render("{} {question}", q)
    yes_no = bm.MCQuestion(id="p", question="Q?", context="C.", options=["yes", "no"], answer=0, letters=["yes", "no"])
    assert bm.render("{options}|{answer_letter}", yes_no) == "yes\nno|yes"
    assert bm.MCQuestion(**q.to_dict()) == q


# ---------------------------------------------------------------------------------------------------
# The synthetic world's benchmark files


def test_synthetic_world_benchmarks_load(tmp_path):
    summary = generate_world(str(tmp_path / "world"), QUICKSTART_WORLD)
    counts = summary["counts"]
    for split, n in counts["medqa"].items():
        questions, report = bm.load_medqa(str(tmp_path / "world" / "medqa"), split=split)
        assert report.records == report.loaded == n and not report.skipped
        assert all(q.options[q.answer] == json.loads(line)["answer"] for q, line in
                   zip(questions, open(tmp_path / "world" / "medqa" / f"{split}.jsonl", encoding="utf-8")))
    test, report = bm.load_pubmedqa(str(tmp_path / "world" / "pubmedqa"))
    train, _ = bm.load_pubmedqa(str(tmp_path / "world" / "pubmedqa"), split="train")
    assert len(test) == counts["pubmedqa"]["test"] and len(train) == counts["pubmedqa"]["train_pool"]
    assert not report.skipped and not {q.id for q in test} & {q.id for q in train}
    labels = bm.summarize(test + train)["answer_distribution"]
    assert labels == counts["pubmedqa"]["labels"] and all(q.context for q in test)


# ---------------------------------------------------------------------------------------------------
# The real releases in ../shared/data


@needs_data
def test_real_medqa():
    questions, report = bm.load_benchmark("medqa", os.path.join(DATA_DIR, "medqa"))
    assert report.records == report.loaded == 1273 and not report.skipped
    odd = next(q for q in questions if q.meta["line"] == 72)
    assert odd.meta["meta_info"] == "stfep2&3" and odd.subject == "step2&3" and odd.answer == 0
    assert {q.subject for q in questions} == {"step1", "step2&3"}
    assert bm.summarize(questions) == {"answer_distribution": {"A": 353, "B": 309, "C": 346, "D": 265},
                                       "options_count": {"4": 1273}}


@needs_data
def test_real_medmcqa_one_based():
    questions, report = bm.load_medmcqa(os.path.join(DATA_DIR, "medmcqa", "dev.json"))
    assert report.records == report.loaded == 4183 and report.info["cop_base"] == 1
    assert report.info["cop_base_from"] == "detected"
    by_id = {q.id: q for q in questions}
    first = by_id["45258d3d-b974-44dd-a161-c3fccbdadd88"]           # line 1: cop 1, exp null
    assert first.answer == 0 and len(first.answer_text) == 70 and first.meta["exp"] is None
    cop4 = by_id["e38402c3-69bf-40a8-90c4-09277ca352eb"]            # line 18: cop 4 -> opd
    assert cop4.answer == 3 and cop4.meta["line"] == 18 and len(cop4.answer_text) == 11
    cop3 = by_id["b64a9cd7-d076-4c55-8be1-f9c44fece6cc"]
    assert cop3.answer == 2 and len(cop3.answer_text) == 118
    assert sum(q.meta["exp"] is None for q in questions) == 1977
    assert bm.summarize(questions)["answer_distribution"] == {"A": 1348, "B": 1085, "C": 925, "D": 825}


@needs_data
def test_real_pubmedqa_test_split():
    folder = os.path.join(DATA_DIR, "pubmedqa")
    test, report = bm.load_pubmedqa(folder)
    assert report.records == report.loaded == 500 and report.info["items_in_file"] == 1000 and not report.skipped
    assert bm.summarize(test)["answer_distribution"] == {"yes": 276, "no": 169, "maybe": 55}
    train, _ = bm.load_pubmedqa(folder, split="train")
    everything, _ = bm.load_pubmedqa(folder, split="all")
    assert len(train) == 500 and len(everything) == 1000 and not {q.id for q in test} & {q.id for q in train}
    assert all(q.context and q.context.count("\n") == len(q.meta["context_labels"]) - 1 for q in everything)


@needs_data
def test_real_mmlu_medical():
    questions, report = bm.load_mmlu(os.path.join(DATA_DIR, "mmlu"))
    # This copy (hendrycks/test history) has 282 professional_medicine test rows, not the later 272.
    assert report.info["subjects"] == {"anatomy": 135, "clinical_knowledge": 265, "college_biology": 144,
                                       "college_medicine": 173, "medical_genetics": 100,
                                       "professional_medicine": 282}
    assert report.records == report.loaded == 1099 and not report.skipped
    multiline = [q.id for q in questions if "\n" in q.question]
    assert len(multiline) == 17 and "college_medicine_test:3" in multiline
    with open(os.path.join(DATA_DIR, "mmlu", "test", "college_medicine_test.csv"), encoding="utf-8") as fh:
        assert sum(1 for _ in fh) > 173
    dev, _ = bm.load_mmlu(os.path.join(DATA_DIR, "mmlu"), split="dev")
    val, _ = bm.load_mmlu(os.path.join(DATA_DIR, "mmlu"), split="val")
    assert len(dev) == 30 and len(val) == 123


@needs_data
def test_real_bioasq_yes_no():
    questions, report = bm.load_bioasq(os.path.join(DATA_DIR, "bioasq"))
    assert report.records == 2310 and report.loaded == 618 and report.skipped == {"other_type": 1692}
    assert report.info["files"] == 25 and len({q.id for q in questions}) == 618
    assert bm.summarize(questions)["answer_distribution"] == {"yes": 395, "no": 223}
    assert all(q.context for q in questions)


# ---------------------------------------------------------------------------------------------------
# Subsets (`limit`)


def labelled(labels):
    return [bm.MCQuestion(id=f"q{i}", question="?", context="", options=["yes", "no", "maybe"],
                          answer=["yes", "no", "maybe"].index(label), letters=["yes", "no", "maybe"])
            for i, label in enumerate(labels)]


def label_counts(questions):
    return bm.summarize(questions)["answer_distribution"]


def test_sample_questions_from_a_file_sorted_by_label():
    questions = labelled(["yes"] * 60 + ["no"] * 30 + ["maybe"] * 10)
    subset = bm.sample_questions(questions, 20, seed=0)
    assert label_counts(subset) == {"yes": 12, "no": 6, "maybe": 2}       # the split's 60/30/10, not 20 "yes"
    positions = [questions.index(q) for q in subset]
    assert positions == sorted(positions) and len(set(positions)) == 20   # the split's order, no repeats
    assert [q.id for q in bm.sample_questions(questions, 20, seed=0)] == [q.id for q in subset]
    assert [q.id for q in bm.sample_questions(questions, 20, seed=1)] != [q.id for q in subset]
    # Largest remainder: 7 of (60, 30, 10) -> shares 4.2, 2.1, 0.7 -> 4, 2, 1.
    assert label_counts(bm.sample_questions(questions, 7, seed=0)) == {"yes": 4, "no": 2, "maybe": 1}
    assert bm.sample_questions(questions, 0, seed=0) == questions
    assert bm.sample_questions(questions, 500, seed=0) == questions
    with pytest.raises(ValueError, match="limit must be >= 0"):
        bm.sample_questions(questions, -1, seed=0)


@needs_data
def test_real_pubmedqa_limit_represents_the_test_split():
    test, _ = bm.load_pubmedqa(os.path.join(DATA_DIR, "pubmedqa"))
    assert {q.answer_letter for q in test[:30]} == {"yes", "no", "maybe"}   # ori_pqal.json's order is mixed
    subset = bm.sample_questions(test, 30, seed=0)
    counts = label_counts(subset)
    for label, share in (("yes", 276 / 500), ("no", 169 / 500), ("maybe", 55 / 500)):
        assert abs(counts[label] - 30 * share) < 1, counts
    again, _ = bm.load_pubmedqa(os.path.join(DATA_DIR, "pubmedqa"))
    assert [q.id for q in bm.sample_questions(again, 30, seed=0)] == [q.id for q in subset]
    other = bm.sample_questions(test, 30, seed=1)
    assert [q.id for q in other] != [q.id for q in subset] and label_counts(other) == counts


# ---------------------------------------------------------------------------------------------------
# experiments.inspect_data


def test_inspect_benchmark_kinds(tmp_path, usmle_dir):
    hf = write_lines(tmp_path / "hf.json", [medmcqa_record(1, 0), medmcqa_record(2, 3), "broken"])
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    proc = run_cli("experiments.inspect_data", "--kind=medmcqa", str(hf), str(empty), "--cop_base=auto")
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first["kind"] == "medmcqa" and first["records"] == 3 and first["loaded"] == 2
    assert first["skipped"] == {"malformed_record": 1} and first["info"]["cop_base"] == 0
    assert first["answer_distribution"] == {"A": 1, "D": 1} and first["options_count"] == {"4": 2}
    assert first["first_question"]["id"] == "q1" and first["first_question"]["answer"] == 0
    assert second["loaded"] == 0 and second["first_question"] is None
    proc = run_cli("experiments.inspect_data", "--kind=usmle", str(usmle_dir))
    summary = json.loads(proc.stdout)
    assert summary["skipped"]["image_question"] == 3 and summary["options_count"] == {"4": 2, "6": 1, "9": 1}
    ambiguous = write_lines(tmp_path / "ambiguous.json", [medmcqa_record(1, 2)])
    proc = run_cli("experiments.inspect_data", "--kind=medmcqa", str(ambiguous), check=False)
    assert proc.returncode != 0 and "cop_base" in proc.stderr and "ambiguous.json" in proc.stderr
    proc = run_cli("experiments.inspect_data", "--kind=bioasq", "--split=test", str(usmle_dir), check=False)
    assert proc.returncode != 0 and "--split does not apply" in proc.stderr


@needs_data
def test_inspect_real_pubmedqa():
    proc = run_cli("experiments.inspect_data", "--kind=pubmedqa", "--split=test", os.path.join(DATA_DIR, "pubmedqa"))
    summary = json.loads(proc.stdout)
    assert summary["loaded"] == 500 and summary["answer_distribution"] == {"maybe": 55, "no": 169, "yes": 276}
    assert summary["options_count"] == {"3": 500} and summary["first_question"]["letters"] == ["yes", "no", "maybe"]
