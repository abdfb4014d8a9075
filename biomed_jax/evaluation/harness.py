"""The evaluation harness: benchmark questions x methods -> results.json, predictions.jsonl, results.md.

Methods (how the field computes them):
  loglik     each option's text scored as the continuation of the prompt; `acc` picks the highest summed
             log-probability, `acc_norm` the highest per character (lm-evaluation-harness's acc_norm);
  top_token  the prompt lists lettered options; the prediction is the label (" A", " B", ...; one token in
             a BPE vocabulary) with the highest next-token probability (MEDITRON);
  generate   a short greedy answer, parsed (MedAlpaca's "Option: Answer");
  cot        a greedy chain of thought after "Let's think step by step.", the answer parsed from it;
  sc_cot     n sampled chains, majority vote over the parsed answers, ties to the lowest option.
A generation whose answer cannot be parsed counts as wrong and is listed. Prompts longer than the model's
context lose tokens from the left (the start of the context, never the options or the answer) and are
counted. Each (task, method) is saved when done, so a rerun skips it.

A task's `limit` evaluates a seeded random subset (stratified by answer label, drawn from the suite's
`seed`), the same questions for every method; results.json lists the chosen ids under `subset`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
from absl import logging
from tqdm.auto import tqdm

from biomed_jax import sharding as shd
from biomed_jax.data.benchmarks import MCQuestion, load_benchmark, render, sample_questions
from biomed_jax.evaluation.answers import extract_choice, majority_vote
from biomed_jax.evaluation.scoring import LoglikScorer
from biomed_jax.inference.generate import Generator
from biomed_jax.inference.sampling import SamplingConfig
from biomed_jax.run_dir import DEFAULT_MESH, load_run, write_json
from biomed_jax.tasks import loglik

METHODS = ("loglik", "top_token", "generate", "cot", "sc_cot")


@dataclasses.dataclass
class EvalModel:
    """What the methods need: a log-likelihood scorer, a generator and the tokenizer."""

    scorer: Any          # biomed_jax.evaluation.scoring.LoglikScorer
    generator: Any       # biomed_jax.inference.generate.Generator
    tokenizer: Any       # tokenizers.Tokenizer
    max_len: int
    stop_tokens: tuple[int, ...] = ()

    def encode(self, text: str, special: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=special).ids


def load_eval_model(checkpoint: str, batch_size: int = 16, max_len: int = 0, tokenizer_path: str = "",
                    mesh=None) -> EvalModel:
    """A model from a run directory (pretrained, fine-tuned or converted) with its tokenizer; generations
    stop at the run's end-of-text token."""
    mesh = mesh or shd.make_mesh(DEFAULT_MESH)
    run = load_run(checkpoint, mesh=mesh, tokenizer=tokenizer_path or None)
    max_len = min(max_len or run.model_cfg.max_seq_len, run.model_cfg.max_seq_len)
    logging.info("evaluating %s at step %d", checkpoint, run.step)
    return EvalModel(scorer=LoglikScorer(run.model_cfg, run.params, mesh=mesh, batch_size=batch_size, max_len=max_len),
                     generator=Generator(run.model_cfg, run.params, mesh=mesh), tokenizer=run.tokenizer,
                     max_len=max_len, stop_tokens=(run.eos_id,) if run.eos_id is not None else ())


@dataclasses.dataclass
class TaskQuestions:
    """A task's questions (all of the split, or the `limit` subset), its few-shot pool and the split's size."""

    questions: list[MCQuestion]
    pool: list[MCQuestion]
    total: int

    @property
    def subset(self) -> bool:
        return len(self.questions) < self.total


def load_task_questions(task: Mapping[str, Any], data_root: str, seed: int) -> TaskQuestions:
    """A task config's questions and few-shot pool. `limit` keeps a seeded, label-stratified random sample
    (`sample_questions`), the same for every method; a question never serves as its own few-shot example."""
    path = _resolve(task["path"], data_root)
    questions, report = load_benchmark(task["kind"], path, task["split"] or None, **dict(task["options"]))
    if report.errors:
        logging.warning("%s: %s", path, report.errors)
    if not questions:
        raise ValueError(f"task {task['kind']} at {path} has no questions (skipped: {report.skipped})")
    total = len(questions)
    questions = sample_questions(questions, task["limit"], seed)
    pool: list[MCQuestion] = []
    if task["shots"]:
        fewshot_path = _resolve(task["fewshot_path"] or task["path"], data_root)
        pool, _ = load_benchmark(task["kind"], fewshot_path, task["fewshot_split"] or task["split"] or None,
                                 **dict(task["options"]))
    return TaskQuestions(questions, pool, total)


def _resolve(path: str, root: str) -> str:
    return path if os.path.isabs(path) or not root else os.path.join(root, path)


def fewshot_prefix(q_index: int, q: MCQuestion, pool: Sequence[MCQuestion], shots: int, template: str,
                   seed: int, answer_as: str) -> str:
    """k solved examples drawn (seeded, per question) from the pool, never the question itself."""
    if not shots:
        return ""
    candidates = [p for p in pool if p.id != q.id]
    if len(candidates) < shots:
        raise ValueError(f"few-shot pool has {len(candidates)} usable examples, fewer than shots={shots}")
    rng = np.random.default_rng([seed, q_index])
    picks = rng.choice(len(candidates), size=shots, replace=False)
    examples = []
    for i in picks:
        example = candidates[int(i)]
        answer = example.answer_text if answer_as == "text" else example.answer_letter
        examples.append(f"{render(template, example)} {answer}")
    return "\n\n".join(examples) + "\n\n"


def _left_truncate(ids: list[int], room: int) -> tuple[list[int], int]:
    if len(ids) <= room:
        return ids, 0
    return ids[len(ids) - room:], len(ids) - room


def _option_requests(model: EvalModel, prompts: Sequence[str], continuations: Sequence[Sequence[str]]):
    """(requests, owners): every question's (prompt, continuation) pairs (tasks/loglik.py, the one
    definition fine-tuning's dev accuracy shares) and the (question, option) each belongs to."""
    requests, owners = [], []
    for qi, (prompt, texts) in enumerate(zip(prompts, continuations)):
        requests += loglik.requests(model.tokenizer, prompt, texts)
        owners += [(qi, oi) for oi in range(len(texts))]
    return requests, owners


def run_loglik(model: EvalModel, questions: Sequence[MCQuestion], prompts: Sequence[str]) -> list[dict]:
    requests, owners = _option_requests(model, prompts, [[" " + option for option in q.options] for q in questions])
    scores = model.scorer.score(requests)
    per_q = [dict(sum=[0.0] * len(q.options), norm=[0.0] * len(q.options), truncated=0) for q in questions]
    for (qi, oi), (logprob, _, truncated) in zip(owners, scores):
        per_q[qi]["sum"][oi] = float(logprob)
        per_q[qi]["norm"][oi] = float(logprob) / max(len(" " + questions[qi].options[oi]), 1)
        per_q[qi]["truncated"] = max(per_q[qi]["truncated"], int(truncated))
    out = []
    for q, s in zip(questions, per_q):
        out.append(dict(id=q.id, gold=q.answer, scores=s["sum"], scores_norm=s["norm"],
                        prediction=int(np.argmax(s["sum"])), prediction_norm=int(np.argmax(s["norm"])),
                        truncated=s["truncated"]))
    return out


def run_top_token(model: EvalModel, questions: Sequence[MCQuestion], prompts: Sequence[str]) -> list[dict]:
    # " A" is one token in BPE vocabularies; where a small vocabulary splits a label, its whole token
    # sequence is scored (the probability of emitting that label next).
    requests, owners = _option_requests(model, prompts, [[" " + label for label in q.letters] for q in questions])
    scores = model.scorer.score(requests)
    per_q = [dict(scores=[0.0] * len(q.options), truncated=0) for q in questions]
    for (qi, oi), (logprob, _, truncated) in zip(owners, scores):
        per_q[qi]["scores"][oi] = float(logprob)
        per_q[qi]["truncated"] = max(per_q[qi]["truncated"], int(truncated))
    return [dict(id=q.id, gold=q.answer, scores=s["scores"], prediction=int(np.argmax(s["scores"])),
                 truncated=s["truncated"]) for q, s in zip(questions, per_q)]


def run_generation(model: EvalModel, questions: Sequence[MCQuestion], prompts: Sequence[str], *,
                   max_new_tokens: int, n: int = 1, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                   batch_size: int = 16) -> list[dict]:
    room = model.max_len - max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in {model.max_len} tokens")
    encoded = [_left_truncate(model.encode(p), room) for p in prompts]
    chains: list[list[str]] = [[] for _ in questions]
    for sample in range(n):
        sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                  stop_tokens=model.stop_tokens, seed=seed + sample)
        output = model.generator.generate([ids for ids, _ in encoded], sampling, batch_size=batch_size,
                                          max_len=model.max_len)
        for qi, completion in enumerate(output.completions()):
            ids = [t for t in completion if t not in model.stop_tokens]
            chains[qi].append(model.tokenizer.decode(ids))
    out = []
    for q, (_, truncated), texts in zip(questions, encoded, chains):
        parsed = [extract_choice(text, q.letters) for text in texts]
        prediction = majority_vote(parsed)
        out.append(dict(id=q.id, gold=q.answer, generations=texts, parsed=parsed, prediction=prediction,
                        extraction_failed=prediction is None, truncated=truncated))
    return out


def prompts_for(method: str, task: Mapping[str, Any], cfg: Mapping[str, Any], questions: Sequence[MCQuestion],
                pool: Sequence[MCQuestion]) -> list[str]:
    templates = cfg["templates"]
    name = task["loglik_template"] if method == "loglik" else task["template"]
    if name not in templates:
        raise ValueError(f"task template {name!r} is not in templates ({sorted(templates)})")
    template = templates[name]
    answer_as = "text" if method == "loglik" else "letter"
    prompts = []
    for i, q in enumerate(questions):
        prompt = fewshot_prefix(i, q, pool, task["shots"], template, cfg["seed"], answer_as) + render(template, q)
        if method in ("cot", "sc_cot"):
            prompt += cfg["cot_suffix"]
        prompts.append(prompt)
    return prompts


def run_method(method: str, model: EvalModel, task, cfg, questions, pool) -> list[dict]:
    prompts = prompts_for(method, task, cfg, questions, pool)
    if method == "loglik":
        return run_loglik(model, questions, prompts)
    if method == "top_token":
        return run_top_token(model, questions, prompts)
    if method == "generate":
        return run_generation(model, questions, prompts, max_new_tokens=cfg["generate"]["max_new_tokens"],
                              batch_size=cfg["batch_size"])
    if method == "cot":
        return run_generation(model, questions, prompts, max_new_tokens=cfg["cot"]["max_new_tokens"],
                              batch_size=cfg["batch_size"])
    if method == "sc_cot":
        sc = cfg["sc_cot"]
        return run_generation(model, questions, prompts, max_new_tokens=sc["max_new_tokens"], n=sc["n"],
                              temperature=sc["temperature"], top_p=sc["top_p"], seed=cfg["seed"],
                              batch_size=cfg["batch_size"])
    raise ValueError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")


def summarize(method: str, predictions: Sequence[dict]) -> dict:
    """Accuracy with its standard error, n, truncations and (generation methods) extraction failures."""
    n = len(predictions)

    def accuracy(key: str) -> tuple[float, float]:
        acc = sum(p[key] == p["gold"] for p in predictions) / n
        return acc, math.sqrt(acc * (1 - acc) / n)

    acc, stderr = accuracy("prediction")
    result = dict(accuracy=acc, stderr=stderr, n=n, truncated=sum(p["truncated"] > 0 for p in predictions))
    if method == "loglik":
        result["accuracy_norm"], result["stderr_norm"] = accuracy("prediction_norm")
    if method in ("generate", "cot", "sc_cot"):
        failed = [p["id"] for p in predictions if p["extraction_failed"]]
        result.update(extraction_failures=len(failed), extraction_failed_ids=failed)
    return result


def evaluate(cfg: Mapping[str, Any], model: EvalModel, workdir: str, data_root: str, progress: bool = True) -> dict:
    """Runs every (task, method) not yet done; writes results.json, predictions.jsonl and results.md."""
    done_dir = os.path.join(workdir, "tasks")
    os.makedirs(done_dir, exist_ok=True)
    plan = [(name, method.strip()) for name, task in cfg["tasks"].items()
            for method in task["methods"].split(",") if method.strip()]
    for _, method in plan:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} in a task's methods; known: {', '.join(METHODS)}")
    loaded: dict[str, TaskQuestions] = {}
    for name, method in tqdm(plan, desc="evaluate", unit="task", disable=not progress):
        path = os.path.join(done_dir, f"{name}.{method}.json")
        if os.path.exists(path):
            continue
        task = cfg["tasks"][name]
        if name not in loaded:
            loaded[name] = load_task_questions(task, data_root, cfg["seed"])
        data = loaded[name]
        predictions = run_method(method, model, task, cfg, data.questions, data.pool)
        result = summarize(method, predictions)
        if data.subset:
            result["subset"] = dict(of=data.total, seed=cfg["seed"], ids=[q.id for q in data.questions])
        record = dict(task=name, method=method, result=result, predictions=predictions)
        write_json(path, record, indent=1)
    return write_reports(cfg, workdir, plan)


def write_reports(cfg: Mapping[str, Any], workdir: str, plan: Sequence[tuple[str, str]]) -> dict:
    results: dict[str, dict] = {}
    with open(os.path.join(workdir, "predictions.jsonl.tmp"), "w") as out:
        for name, method in plan:
            with open(os.path.join(workdir, "tasks", f"{name}.{method}.json")) as f:
                record = json.load(f)
            results.setdefault(name, {})[method] = record["result"]
            for p in record["predictions"]:
                out.write(json.dumps(dict(task=name, method=method, **p)) + "\n")
    os.replace(os.path.join(workdir, "predictions.jsonl.tmp"), os.path.join(workdir, "predictions.jsonl"))
    write_json(os.path.join(workdir, "results.json"), results, indent=1)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(cfg, results))
    return results


def results_table(cfg: Mapping[str, Any], results: Mapping[str, Mapping[str, dict]]) -> str:
    """Task x method accuracy (%) with standard errors, and the paper's number for comparison; n reads
    "24 of 500" where `limit` evaluated a subset."""
    methods = [m for m in METHODS if any(m in r for r in results.values())]
    columns = []
    for m in methods:
        columns.append(m if m != "loglik" else "loglik acc")
        if m == "loglik":
            columns.append("loglik acc_norm")
    header = "| task | n | " + " | ".join(columns) + " | paper |\n"
    lines = [header, "|" + "---|" * (len(columns) + 3) + "\n"]
    for name, by_method in results.items():
        cells = []
        for m in methods:
            r = by_method.get(m)
            if r is None:
                cells += ["—"] * (2 if m == "loglik" else 1)
                continue
            cell = f"{100 * r['accuracy']:.1f} ± {100 * r['stderr']:.1f}"
            if r.get("extraction_failures"):
                cell += f" ({r['extraction_failures']} unparsed)"
            cells.append(cell)
            if m == "loglik":
                cells.append(f"{100 * r['accuracy_norm']:.1f} ± {100 * r['stderr_norm']:.1f}")
        n = max(r["n"] for r in by_method.values())
        of = max(r.get("subset", {}).get("of", 0) for r in by_method.values())
        reference = cfg["tasks"][name]["reference"]
        paper = f"{reference:.1f}" if reference >= 0 else "—"
        lines.append(f"| {name} | {n}{f' of {of}' if of else ''} | " + " | ".join(cells) + f" | {paper} |\n")
    return "".join(lines)

