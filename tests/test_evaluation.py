"""The evaluation harness: answer parsing, prompts, methods, reports, resume, and the command line."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from biomed_jax.data.benchmarks import MCQuestion
from biomed_jax.evaluation import harness
from biomed_jax.evaluation.answers import extract_choice, majority_vote
from configs.evaluation import get_config
from helpers import REPO_ROOT, tiny_run

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
ABCD = ["A", "B", "C", "D"]


@pytest.mark.parametrize("text, expected", [
    ("Let's see. The drug inhibits KRV3, so the answer is (C).", 2),
    ("Answer: B", 1),
    ("the correct option is D because ...", 3),
    ("C: Velortinib", 2),
    ("(A) is wrong and (B) is right", 1),
    ("Both A and B are tempting; therefore the answer is A. Not B.", 0),
    ("Acetaminophen is first line.", None),   # a word starting with A is no answer
    ("I am not sure.", None),
    ("", None),
])
def test_extract_choice_letters(text, expected):
    assert extract_choice(text, ABCD) == expected


def test_extract_choice_words_and_votes():
    labels = ["yes", "no", "maybe"]
    assert extract_choice("The evidence is mixed, so the answer is maybe.", labels) == 2
    assert extract_choice("No, the trial found no effect.", labels) == 1
    assert extract_choice("Unclear.", labels) is None
    assert majority_vote([1, 2, 2, None, 1]) == 1  # tie 2-2: lowest option wins
    assert majority_vote([3, None, 3]) == 3
    assert majority_vote([None, None]) is None


def _questions(n=6, letters=ABCD):
    return [MCQuestion(id=f"q{i}", question=f"question {i}?", context="ctx " * i, options=[f"opt{j}" for j in range(len(letters))],
                       answer=i % len(letters), letters=list(letters)) for i in range(n)]


class FakeTokenizer:
    """Characters as tokens, a space joined to the character after it (" A" is one token, as in BPE)."""

    def encode(self, text, add_special_tokens=True):
        class Encoding:
            ids = [ord(piece[-1]) + (1000 if len(piece) == 2 else 0) for piece in re.findall(r" ?[^ ]| ", text)]
        return Encoding()

    def decode(self, ids):
        return "".join((" " if i >= 1000 else "") + chr(i % 1000) for i in ids)


class FakeScorer:
    """Prefers the option whose first token is the answer's, as a perfect model would; records truncation."""

    def __init__(self, questions, max_len):
        self.max_len = max_len
        self.calls = 0

    def score(self, requests):
        self.calls += 1
        out = []
        for context, continuation in requests:
            truncated = max(0, len(context) + len(continuation) - self.max_len)
            out.append((-float(continuation[0] % 7), True, truncated))
        return out


class ScriptedGenerator:
    """Returns scripted completions per call (one list per sample)."""

    def __init__(self, scripts):
        self.scripts = list(scripts)

    def generate(self, prompts, sampling, batch_size=None, max_len=0):
        from biomed_jax.inference.generate import GenerationOutput

        texts = self.scripts.pop(0)
        ids = [[ord(c) for c in t] + [0] for t in texts]
        width = max(map(len, ids))
        tokens = np.array([row + [0] * (width - len(row)) for row in ids])
        return GenerationOutput(tokens, np.array([len(t) + 1 for t in texts]))


def test_generation_methods_parse_vote_and_list_failures():
    qs = _questions(3)
    gen = ScriptedGenerator([["the answer is A", "Answer: B", "no idea"],
                             ["the answer is C", "Answer: B", "still no idea"],
                             ["the answer is C", "Answer: D", "hmm"]])
    model = harness.EvalModel(scorer=None, generator=gen, tokenizer=FakeTokenizer(), max_len=64, stop_tokens=(0,))
    preds = harness.run_generation(model, qs, ["p"] * 3, max_new_tokens=8, n=3, temperature=0.7)
    assert [p["prediction"] for p in preds] == [2, 1, None]
    assert preds[0]["parsed"] == [0, 2, 2]
    result = harness.summarize("sc_cot", preds)
    assert result["extraction_failures"] == 1 and result["extraction_failed_ids"] == ["q2"]
    assert result["accuracy"] == pytest.approx(1 / 3)  # q1 gold B=1 right; q0 gold A wrong; q2 unparsed
    assert result["stderr"] == pytest.approx(np.sqrt((1 / 3) * (2 / 3) / 3))


def test_generation_prompts_lose_tokens_from_the_left_and_are_counted():
    qs = _questions(1)
    gen = ScriptedGenerator([["Answer: A"]])
    seen = {}
    original = gen.generate

    def spy(prompts, sampling, batch_size=None, max_len=0):
        seen["prompts"] = prompts
        return original(prompts, sampling, batch_size, max_len)

    gen.generate = spy
    model = harness.EvalModel(scorer=None, generator=gen, tokenizer=FakeTokenizer(), max_len=20, stop_tokens=(0,))
    preds = harness.run_generation(model, qs, ["x" * 10 + "END OF PROMPT"], max_new_tokens=8)
    assert preds[0]["truncated"] == len(FakeTokenizer().encode("x" * 10 + "END OF PROMPT").ids) - 12
    assert FakeTokenizer().decode(seen["prompts"][0]) == FakeTokenizer().decode(
        FakeTokenizer().encode("x" * 10 + "END OF PROMPT").ids[-12:])


def test_fewshot_prefix_is_seeded_and_never_contains_the_question():
    pool = _questions(8)
    q = pool[3]
    a = harness.fewshot_prefix(0, q, pool, 3, "Q: {question}\nAnswer:", seed=0, answer_as="letter")
    b = harness.fewshot_prefix(0, q, pool, 3, "Q: {question}\nAnswer:", seed=0, answer_as="letter")
    c = harness.fewshot_prefix(0, q, pool, 3, "Q: {question}\nAnswer:", seed=1, answer_as="letter")
    assert a == b and a != c
    assert a.count("Answer:") == 3 and "question 3?" not in a
    with pytest.raises(ValueError, match="fewer than shots"):
        harness.fewshot_prefix(0, pool[0], pool[:3], 3, "{question}", seed=0, answer_as="letter")


def test_evaluate_writes_reports_and_resumes(tmp_path, monkeypatch):
    cfg = get_config("quick")
    cfg.tasks.medqa.methods = "loglik,top_token"
    cfg.tasks.medqa.shots = 0
    cfg.tasks.pubmedqa.methods = "top_token"
    qs = {"medqa": _questions(6), "pubmedqa": _questions(4, letters=["yes", "no", "maybe"])}
    monkeypatch.setattr(harness, "load_task_questions",
                        lambda task, root, seed: harness.TaskQuestions(qs[task["kind"]], [], len(qs[task["kind"]])))
    scorer = FakeScorer(None, max_len=30)
    model = harness.EvalModel(scorer=scorer, generator=None, tokenizer=FakeTokenizer(), max_len=30)
    results = harness.evaluate(cfg, model, str(tmp_path), data_root="", progress=False)
    # The fake scorer prefers the label whose first token % 7 is smallest: compute what that predicts.
    for task, method in (("medqa", "loglik"), ("medqa", "top_token"), ("pubmedqa", "top_token")):
        r = results[task][method]
        assert r["n"] == len(qs[task]) and 0 <= r["accuracy"] <= 1
    top = json.load(open(tmp_path / "tasks" / "medqa.top_token.json"))["predictions"]
    firsts = [FakeTokenizer().encode(" " + label).ids[0] for label in ABCD]
    assert all(p["prediction"] == int(np.argmax([-(t % 7) for t in firsts])) for p in top)
    assert all(p["truncated"] > 0 for p in top[1:])  # contexts grow past 30 characters
    lines = open(tmp_path / "predictions.jsonl").read().splitlines()
    assert len(lines) == 6 + 6 + 4
    table = open(tmp_path / "results.md").read()
    assert "| medqa | 6 |" in table and "loglik acc_norm" in table
    calls = scorer.calls
    harness.evaluate(cfg, model, str(tmp_path), data_root="", progress=False)  # all done: nothing rerun
    assert scorer.calls == calls


def _pubmedqa_sorted_by_label(folder, n_yes=18, n_no=9, n_maybe=3):
    """An invented PubMedQA release whose ground-truth file lists ids by label, as the real one does."""
    labels = ["yes"] * n_yes + ["no"] * n_no + ["maybe"] * n_maybe
    order = np.random.default_rng(0).permutation(len(labels))            # ori_pqal.json: mixed
    items = {f"{100 + i}": {"QUESTION": f"Does invented drug {i} work?", "CONTEXTS": [f"Study {i}."],
                            "final_decision": labels[i]} for i in order}
    os.makedirs(folder / "pubmedqa")
    (folder / "pubmedqa" / "ori_pqal.json").write_text(json.dumps(items))
    (folder / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps({f"{100 + i}": labels[i]
                                                                            for i in range(len(labels))}))


def _evaluate_pubmedqa(root, workdir, limit, seed=0):
    cfg = get_config("biomedlm")
    for name in cfg.tasks:
        cfg.tasks[name].methods = "loglik,top_token" if name == "pubmedqa" else ""
    cfg.tasks.pubmedqa.limit = limit
    cfg.seed = seed
    model = harness.EvalModel(scorer=FakeScorer(None, max_len=10_000), generator=None, tokenizer=FakeTokenizer(),
                              max_len=10_000)
    return harness.evaluate(cfg, model, str(workdir), data_root=str(root), progress=False)["pubmedqa"]


def test_limit_evaluates_a_seeded_subset_that_represents_the_split(tmp_path):
    _pubmedqa_sorted_by_label(tmp_path / "data")
    results = _evaluate_pubmedqa(tmp_path / "data", tmp_path / "a", limit=10)
    ids = results["loglik"]["subset"]["ids"]
    assert results["top_token"]["subset"] == results["loglik"]["subset"] == dict(of=30, seed=0, ids=ids)
    assert results["loglik"]["n"] == len(ids) == len(set(ids)) == 10
    golds = [p["gold"] for p in map(json.loads, open(tmp_path / "a" / "predictions.jsonl"))]
    assert sorted(golds[:10]) == [0] * 6 + [1] * 3 + [2]                 # 18/9/3 of 30 -> 6/3/1 of 10
    assert [p["id"] for p in map(json.loads, open(tmp_path / "a" / "predictions.jsonl"))][:10] == ids
    assert "| pubmedqa | 10 of 30 |" in open(tmp_path / "a" / "results.md").read()
    assert _evaluate_pubmedqa(tmp_path / "data", tmp_path / "b", limit=10)["loglik"]["subset"]["ids"] == ids
    assert _evaluate_pubmedqa(tmp_path / "data", tmp_path / "c", limit=10, seed=1)["loglik"]["subset"]["ids"] != ids
    whole = _evaluate_pubmedqa(tmp_path / "data", tmp_path / "d", limit=0)
    assert "subset" not in whole["loglik"] and whole["loglik"]["n"] == 30
    assert "| pubmedqa | 30 |" in open(tmp_path / "d" / "results.md").read()


@pytest.mark.skipif(not os.path.isdir(DATA_DIR), reason=f"real data samples not found at {DATA_DIR}")
def test_limit_on_the_real_pubmedqa_holds_every_label(tmp_path):
    # The released test_ground_truth.json lists 276 "yes" first: a first-24 subset was all "yes".
    results = _evaluate_pubmedqa(DATA_DIR, tmp_path, limit=24)
    golds = {json.loads(line)["gold"] for line in open(tmp_path / "predictions.jsonl")}
    assert golds == {0, 1, 2} and results["loglik"]["subset"]["of"] == 500


def test_evaluate_command_on_a_tiny_checkpoint(tmp_path):
    from biomed_jax.synthetic.defaults import QUICKSTART_WORLD
    from biomed_jax.synthetic.generate import generate_world
    from tests.helpers import run_cli

    world = str(tmp_path / "world")
    generate_world(world, dict(QUICKSTART_WORLD))
    texts = [json.loads(line)["question"] for line in open(os.path.join(world, "medqa", "train.jsonl"))]
    run = tiny_run(str(tmp_path), texts * 3)
    out = str(tmp_path / "eval")
    args = ["--config=configs/evaluation.py:quick", f"--checkpoint={run}", f"--workdir={out}", f"--config.data_root={world}",
            "--config.tasks.medqa.limit=4", "--config.tasks.pubmedqa.limit=4",
            "--config.tasks.medqa.methods=loglik,top_token,sc_cot", "--config.sc_cot.max_new_tokens=6"]
    proc = run_cli("experiments.evaluate", *args)
    assert re.search(r"\| medqa \| 4 of \d+ \|", proc.stdout)
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(results["medqa"]) == {"loglik", "top_token", "sc_cot"} and set(results["pubmedqa"]) == {"loglik", "top_token"}
    sc = results["medqa"]["sc_cot"]
    assert sc["n"] == 4 and sc["extraction_failures"] == len(sc["extraction_failed_ids"])
    preds = [json.loads(line) for line in open(os.path.join(out, "predictions.jsonl"))]
    assert sum(p["method"] == "sc_cot" and len(p["generations"]) == 3 for p in preds) == 4
    again = run_cli("experiments.evaluate", *args)  # resumes: everything done
    assert again.stdout == proc.stdout
    other = run_cli("experiments.evaluate", *args, "--config.seed=5", check=False)
    assert other.returncode != 0 and "evaluation results built with other settings (seed)" in other.stderr
    assert "Traceback" not in other.stderr  # a user's mistake: one line
