"""Fine-tuning examples as fixed-shape numpy arrays: classifier inputs and instruction (SFT) rows.

Classifier examples are right-padded token rows plus their lengths (the head reads the last real token):
multiple choice as (n, n_options, seq) with an option mask (questions with fewer options are padded with
masked options), sequence classification as (n, seq). Texts longer than `max_len` lose tokens from the
left, so the option or question at the end survives; the count is reported.

SFT rows follow the pretraining batch layout (inputs, targets, loss_mask, positions, segment_ids): the
loss covers only response tokens and the closing EOS, and with packing several examples share a row
without attending to each other.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from biomed_jax.data.benchmarks import MCQuestion, render

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


@dataclasses.dataclass
class EncodeReport:
    """How many examples were encoded, and what was cut or skipped (and why)."""

    examples: int = 0
    truncated: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text).ids


def _left_fit(ids: list[int], max_len: int, report: EncodeReport) -> list[int]:
    if len(ids) > max_len:
        report.truncated += 1
        return ids[len(ids) - max_len:]
    return ids


def _check_nonempty(questions: Sequence[Any], what: str) -> None:
    if not questions:
        raise ValueError(f"{what} is empty: no examples to fine-tune or evaluate on (check the data path and split)")


def _option_width(questions: Sequence[MCQuestion], n_options: int | None, what: str) -> int:
    """K, the options axis: `n_options`, which must cover the question with the most options."""
    width = max(len(q.options) for q in questions)
    if n_options is not None:
        if n_options < width:
            raise ValueError(f"{what} has a question with {width} options, more than n_options={n_options}")
        width = n_options
    return width


def _continuation_arrays(n: int, width: int, max_len: int) -> dict:
    return dict(inputs=np.zeros((n, width, max_len), np.int32), targets=np.zeros((n, width, max_len), np.int32),
                response_mask=np.zeros((n, width, max_len), bool), option_mask=np.zeros((n, width), bool),
                labels=np.zeros((n,), np.int32))


def encode_choices(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                   n_options: int | None = None, what: str = "split") -> tuple[dict, EncodeReport]:
    """Multiple choice: {tokens (n, K, max_len), lengths (n, K), option_mask (n, K), labels (n,)}.

    Each option is `template` rendered with the question's fields plus {option}. K is `n_options` (at
    least the most options any question has) so train and dev batches share one shape.
    """
    _check_nonempty(questions, what)
    width = _option_width(questions, n_options, what)
    report = EncodeReport()
    n = len(questions)
    tokens = np.zeros((n, width, max_len), np.int32)
    lengths = np.ones((n, width), np.int32)
    mask = np.zeros((n, width), bool)
    labels = np.zeros((n,), np.int32)
    for row, q in enumerate(questions):
        for col, option in enumerate(q.options):
            ids = _left_fit(_encode(tokenizer, render(template, q, option=option)), max_len, report)
            tokens[row, col, :len(ids)] = ids
            lengths[row, col] = len(ids)
            mask[row, col] = True
        labels[row] = q.answer
        report.examples += 1
    return dict(tokens=tokens, lengths=lengths, option_mask=mask, labels=labels), report


def encode_option_continuations(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                                n_options: int | None = None, what: str = "split") -> tuple[dict, EncodeReport]:
    """Multiple choice scored by the LM head: the text before {option} in `template` is the prompt, the
    rest (with the option filled in) the continuation whose log-likelihood is the option's score.

    {inputs, targets, response_mask (n, K, max_len), option_mask (n, K), labels (n,)}.
    """
    _check_nonempty(questions, what)
    if template.count("{option}") != 1:
        raise ValueError(f"an option_loglik template needs exactly one {{option}}, got {template!r}")
    prefix, suffix = template.split("{option}")
    width = _option_width(questions, n_options, what)
    report = EncodeReport()
    n = len(questions)
    arrays = _continuation_arrays(n, width, max_len)
    for row, q in enumerate(questions):
        prompt = _encode(tokenizer, render(prefix.rstrip(" "), q))
        space = " " if prefix.endswith(" ") else ""
        for col, option in enumerate(q.options):
            continuation = tokenizer.encode(space + option + render(suffix, q), add_special_tokens=False).ids
            _fill_continuation(arrays, row, col, prompt, continuation, max_len, report)
        arrays["labels"][row] = q.answer
        report.examples += 1
    return arrays, report


def _fill_continuation(arrays: dict, row: int, col: int, prompt: list[int], continuation: list[int],
                       max_len: int, report: EncodeReport) -> None:
    """Writes prompt + continuation as shifted (inputs, targets) with the continuation's targets masked in."""
    ids = _left_fit(prompt + continuation, max_len + 1, report)
    weights = ([0] * len(prompt) + [1] * len(continuation))[-len(ids):]
    arrays["inputs"][row, col, :len(ids) - 1] = ids[:-1]
    arrays["targets"][row, col, :len(ids) - 1] = ids[1:]
    arrays["response_mask"][row, col, :len(ids) - 1] = np.asarray(weights[1:], bool)
    arrays["option_mask"][row, col] = True


def encode_classes(questions: Sequence[MCQuestion], tokenizer, template: str, max_len: int,
                   classes: Sequence[str], what: str = "split") -> tuple[dict, EncodeReport]:
    """Sequence classification: {tokens (n, max_len), lengths (n,), labels (n,)}; the label is the index
    of the right option's text in `classes` (e.g. yes/no/maybe)."""
    _check_nonempty(questions, what)
    report = EncodeReport()
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    rows, lengths, labels = [], [], []
    for q in questions:
        label = lookup.get(q.answer_text.strip().lower())
        if label is None:
            raise ValueError(f"{what}: question {q.id} has answer {q.answer_text!r}, not one of the classes "
                             f"{list(classes)}; set the task's `classes`")
        ids = _left_fit(_encode(tokenizer, render(template, q)), max_len, report)
        rows.append(ids)
        lengths.append(len(ids))
        labels.append(label)
        report.examples += 1
    tokens = np.zeros((len(rows), max_len), np.int32)
    for i, ids in enumerate(rows):
        tokens[i, :len(ids)] = ids
    return dict(tokens=tokens, lengths=np.asarray(lengths, np.int32), labels=np.asarray(labels, np.int32)), report


# --- instruction tuning -----------------------------------------------------------------------------


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


def encode_instructions(examples: Sequence[Mapping[str, str]], tokenizer, style: str, max_len: int,
                        eos_id: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], EncodeReport]:
    """[(ids, loss_weights)] per example: prompt tokens weigh 0, response tokens and EOS 1.

    A sequence longer than max_len + 1 keeps its end (the response) and loses the start of the prompt;
    an example whose response alone does not fit is skipped and counted.
    """
    _check_nonempty(examples, "the instruction set")
    report = EncodeReport()
    out = []
    for example in examples:
        prompt = _encode(tokenizer, render_instruction(style, example))
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


def encode_answer_choices(questions: Sequence[MCQuestion], tokenizer, style: str, max_len: int,
                          instruction: str = MCQ_INSTRUCTION,
                          answer_template: str = "{answer_letter}: {answer_text}",
                          input_template: str = "{question}\n{options}") -> tuple[dict, EncodeReport]:
    """Accuracy of an instruction-tuned model: each option's score is the log-likelihood of the response
    it would be (answer_template, as questions_as_instructions trains it) after the question's prompt.

    {inputs, targets, response_mask (n, K, max_len), option_mask (n, K), labels (n,)}; a row keeps its
    end (the response) when it is too long.
    """
    _check_nonempty(questions, "the evaluation split")
    report = EncodeReport()
    width = _option_width(questions, None, "the evaluation split")
    n = len(questions)
    arrays = _continuation_arrays(n, width, max_len)
    examples = questions_as_instructions(questions, instruction, answer_template, input_template)
    for row, (q, example) in enumerate(zip(questions, examples)):
        prompt = _encode(tokenizer, render_instruction(style, example))
        for col in range(len(q.options)):
            response = tokenizer.encode(render(answer_template, dataclasses.replace(q, answer=col)),
                                        add_special_tokens=False).ids
            _fill_continuation(arrays, row, col, prompt, response, max_len, report)
        arrays["labels"][row] = q.answer
        report.examples += 1
    return arrays, report


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


# --- batching ---------------------------------------------------------------------------------------


def n_examples(arrays: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(arrays.values())))


def train_batches(arrays: Mapping[str, np.ndarray], batch_size: int, seed: int, epoch: int) -> Iterator[dict]:
    """One epoch of full batches in a seeded order that differs per epoch (the remainder is dropped)."""
    n = n_examples(arrays)
    if n < batch_size:
        raise ValueError(f"the train split has {n} examples, fewer than batch_size={batch_size}; "
                         "lower train.batch_size")
    order = np.random.default_rng([seed, epoch]).permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
        index = order[start:start + batch_size]
        yield {k: v[index] for k, v in arrays.items()}


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> Iterator[tuple[dict, int]]:
    """(batch, number of real rows) in order; the last batch is padded with copies of row 0 so every batch
    has one compiled shape."""
    n = n_examples(arrays)
    for start in range(0, n, batch_size):
        index = np.arange(start, min(start + batch_size, n))
        real = len(index)
        if real < batch_size:
            index = np.concatenate([index, np.zeros(batch_size - real, index.dtype)])
        yield {k: v[index] for k, v in arrays.items()}, real
