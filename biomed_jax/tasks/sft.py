"""Instruction tuning (MedAlpaca, MEDITRON's SFT): the loss covers only the response tokens and the
closing EOS; with packing, several examples share a row without attending to each other (segment ids
and per-example positions, the pretraining batch layout).

Dev and test accuracy: each benchmark question as an instruction prompt; an option's score is the
log-likelihood of the response it would be (`answer_template`, the form the SFT data teaches), scored by
the evaluation harness's scorer (tasks/loglik.py). The run records its prompt template in best/, so
chat front ends (serving) prompt the model the way it was trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from biomed_jax.data.benchmarks import MCQuestion, render
from biomed_jax.tasks import loglik
from biomed_jax.tasks.base import ArrayBatches, n_examples, with_weight
from biomed_jax.tasks.encoding import EncodeReport, check_nonempty

# Prompt styles for instructions: MedAlpaca's (the Alpaca template) and MEDITRON's (ChatML turns).
SFT_TEMPLATES = {
    "medalpaca": ("Below is an instruction that describes a task, paired with an input that provides further "
                  "context. Write a response that appropriately completes the request.\n\n"
                  "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"),
    "medalpaca_no_input": ("Below is an instruction that describes a task. Write a response that appropriately "
                           "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"),
    "meditron": ("<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{input}<|im_end|>\n"
                 "<|im_start|>assistant\n"),
    # Alpaca's sections without the preamble: for small models with a short context (the quickstart's).
    "compact": "### Instruction:\n{instruction}\n### Input:\n{input}\n### Response:\n",
    # Plain question-answer text, the closest to what a small model pretrained on abstracts has read.
    "qa": "{instruction}\nQuestion: {input}\nAnswer:",
}
MCQ_INSTRUCTION = "Answer the following multiple choice question. Reply with the letter of the right option."


def load_instructions(path: str, limit: int = 0) -> tuple[list[dict], EncodeReport]:
    """Alpaca-format records [{instruction, input, output}] from a JSON list or JSON lines (Medical Meadow's
    layout). A record without a string instruction and output is skipped and counted; input may be absent."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"instruction file not found: {path!r} (a JSON list of "
                                "{instruction, input, output} records)")
    report = EncodeReport()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    except json.JSONDecodeError:
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                report.skip("bad_json_line")
    out = []
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str) \
                or not isinstance(record.get("output"), str) or not record["output"].strip():
            report.skip("missing_instruction_or_output")
            continue
        value = record.get("input") or ""
        if not isinstance(value, str):
            report.skip("non_text_input")
            continue
        out.append({"instruction": record["instruction"], "input": value, "output": record["output"]})
        if limit and len(out) >= limit:
            break
    report.examples = len(out)
    return out, report


def questions_as_instructions(questions: Sequence[MCQuestion], instruction: str = MCQ_INSTRUCTION,
                              answer_template: str = "{answer_letter}: {answer_text}",
                              input_template: str = "{question}\n{options}") -> list[dict]:
    """Benchmark train questions rendered as instructions (MEDITRON's SFT on MedQA/MedMCQA/PubMedQA); a
    question's context, if any, comes first."""
    out = []
    for q in questions:
        body = render(input_template, q)
        if q.context:
            body = f"{q.context}\n\n{body}"
        out.append({"instruction": instruction, "input": body, "output": render(answer_template, q)})
    return out


def render_instruction(style: str, example: Mapping[str, str]) -> str:
    """The prompt (everything before the response) in one of SFT_TEMPLATES's styles."""
    if style not in SFT_TEMPLATES:
        raise ValueError(f"unknown SFT template {style!r}; choose one of {sorted(SFT_TEMPLATES)}")
    if style == "medalpaca" and not example.get("input"):
        style = "medalpaca_no_input"
    return SFT_TEMPLATES[style].format(instruction=example["instruction"], input=example.get("input", ""))


def template_record(style: str) -> dict:
    """What a run directory records of its prompt template (run_dir.Run.template)."""
    render_instruction(style, {"instruction": "", "input": ""})   # checks the style
    record = {"style": style, "prompt": SFT_TEMPLATES[style]}
    if style == "medalpaca":
        record["prompt_no_input"] = SFT_TEMPLATES["medalpaca_no_input"]
    return record


def encode_instructions(examples: Sequence[Mapping[str, str]], tokenizer, style: str, max_len: int,
                        eos_id: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], EncodeReport]:
    """[(ids, loss_weights)] per example: prompt tokens weigh 0, response tokens and EOS 1.

    A sequence longer than max_len + 1 keeps its end (the response) and loses the start of the prompt;
    an example whose response alone does not fit is skipped and counted.
    """
    check_nonempty(examples, "the instruction set")
    report = EncodeReport()
    out = []
    for example in examples:
        prompt = tokenizer.encode(render_instruction(style, example)).ids
        response = tokenizer.encode(example["output"], add_special_tokens=False).ids + [eos_id]
        if len(response) > max_len:
            report.skip("response_longer_than_max_len")
            continue
        ids = prompt + response
        weights = [0] * len(prompt) + [1] * len(response)
        if len(ids) > max_len + 1:
            report.truncated += 1
            ids, weights = ids[-(max_len + 1):], weights[-(max_len + 1):]
        out.append((np.asarray(ids, np.int32), np.asarray(weights, np.int32)))
        report.examples += 1
    if not out:
        raise ValueError(f"no instruction fits max_len={max_len}: {report.skipped}")
    return out, report


def answer_requests(questions: Sequence[MCQuestion], tokenizer, style: str,
                    instruction: str = MCQ_INSTRUCTION, answer_template: str = "{answer_letter}: {answer_text}",
                    input_template: str = "{question}\n{options}") -> list[list[loglik.Request]]:
    """Each question as an instruction prompt with one continuation per option: the response that option
    would be (answer_template, as questions_as_instructions trains it)."""
    check_nonempty(questions, "the evaluation split")
    examples = questions_as_instructions(questions, instruction, answer_template, input_template)
    return [loglik.requests(tokenizer, render_instruction(style, example),
                            [render(answer_template, dataclasses.replace(q, answer=col))
                             for col in range(len(q.options))])
            for q, example in zip(questions, examples)]


def sft_rows(encoded: Sequence[tuple[np.ndarray, np.ndarray]], seq_len: int, pack: bool) -> dict:
    """Batch rows {inputs, targets, loss_mask, positions, segment_ids} of shape (rows, seq_len).

    Unpacked, one example per row. Packed, examples fill rows first-fit in order; each keeps its own
    positions and segment id, so attention and loss never cross examples.
    """
    rows: list[list[tuple[np.ndarray, np.ndarray]]] = []
    fill: list[int] = []
    for ids, weights in encoded:
        need = len(ids) - 1
        slot = next((i for i, used in enumerate(fill) if used + need <= seq_len), None) if pack else None
        if slot is None:
            rows.append([])
            fill.append(0)
            slot = len(rows) - 1
        rows[slot].append((ids, weights))
        fill[slot] += need
    shape = (len(rows), seq_len)
    batch = {k: np.zeros(shape, np.int32) for k in ("inputs", "targets", "loss_mask", "positions", "segment_ids")}
    for r, row in enumerate(rows):
        start = 0
        for segment, (ids, weights) in enumerate(row, start=1):
            n = len(ids) - 1
            span = slice(start, start + n)
            batch["inputs"][r, span] = ids[:-1]
            batch["targets"][r, span] = ids[1:]
            batch["loss_mask"][r, span] = weights[1:]
            batch["positions"][r, span] = np.arange(n)
            batch["segment_ids"][r, span] = segment
            start += n
    return batch


class InstructionTuning:
    """Token cross-entropy on responses; best epoch by dev accuracy of the answer-choice scoring."""

    selection = ("dev_accuracy", "max")
    lm_head = True
    n_outputs = 1

    def __init__(self, rows: dict[str, np.ndarray], evaluation: loglik.LoglikEvaluation, splits: dict[str, list],
                 reports: dict, template: dict, batch_size: int):
        self.rows, self.evaluation, self.splits, self.reports = rows, evaluation, splits, reports
        self.template, self.batch_size = template, batch_size
        self.steps_per_epoch = n_examples(rows) // batch_size
        self.tokens_per_example = rows["inputs"].shape[1]
        self.chance = float(np.mean([1.0 / len(q.options) for q in splits["dev"]])) if splits.get("dev") else 0.0

    @classmethod
    def build(cls, sft: Mapping[str, Any], splits: dict[str, list], instructions: list[tuple[str, list[dict], Any]],
              tokenizer, eos_id: int, max_len: int, batch_size: int, eval_batch_size: int, plain_cfg: Any):
        """`sft` is the config's sft section; `instructions` the (name, records, report) of each file."""
        reports = {f"instructions:{name}": report.to_dict() for name, _, report in instructions}
        examples = [record for _, records, _ in instructions for record in records]
        if sft["benchmark_train"]:
            examples += questions_as_instructions(splits["train"], sft["instruction"], sft["answer_template"],
                                                  sft["input_template"])
        encoded, report = encode_instructions(examples, tokenizer, sft["style"], max_len, eos_id)
        reports["train"] = report.to_dict()
        evaluation = loglik.LoglikEvaluation(
            {name: answer_requests(splits[name], tokenizer, sft["style"], sft["instruction"], sft["answer_template"],
                                   sft["input_template"]) for name in ("dev", "test") if splits.get(name)},
            {name: [q.answer for q in qs] for name, qs in splits.items()}, plain_cfg, max_len, eval_batch_size)
        return cls(sft_rows(encoded, max_len, sft["pack"]), evaluation, splits, reports,
                   template_record(sft["style"]), batch_size)

    def train_source(self, seed: int) -> ArrayBatches:
        return ArrayBatches(with_weight(self.rows), self.batch_size, seed)

    def example_inputs(self) -> tuple:
        return (jnp.asarray(self.rows["inputs"][:1]),)

    def weight(self, batch):
        return jnp.sum(batch["loss_mask"].astype(jnp.float32) * batch["weight"][:, None])

    def loss(self, model, batch):
        logits = model(batch["inputs"], batch["positions"], batch["segment_ids"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        mask = batch["loss_mask"].astype(jnp.float32) * batch["weight"][:, None]
        return jnp.sum(losses * mask), {}

    def evaluate(self, evaluator) -> dict[str, float]:
        return self.evaluation(evaluator)
