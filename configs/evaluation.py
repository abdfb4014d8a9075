"""Evaluation suites: which benchmarks, which methods, which prompts.

    python -m experiments.evaluate --config=configs/evaluation.py:<suite> --checkpoint=RUN_DIR --workdir=OUT \
        [--config.data_root=/path/to/benchmarks --config.tasks.medqa.limit=100 ...]

Suites:
  biomedlm         MedMCQA, MedQA, PubMedQA, BioASQ, MMLU medical genetics (loglik, top-token)
  meditron         MedQA, MedMCQA, PubMedQA, MMLU-medical (top-token, CoT, SC-CoT; 3-shot in context)
  medalpaca_usmle  USMLE step 1/2/3, zero-shot, MedAlpaca's prompt and "Option: Answer" parsing
  quick            the synthetic world's MedQA and PubMedQA questions, 16 each, every method (smoke test)

Task paths are relative to `data_root` (the layout of the released files: medqa/, medmcqa/, pubmedqa/,
mmlu/, bioasq/, usmle/). The quick suite needs none: with an empty data_root it generates the small
synthetic world into the workdir. `reference` is the paper's number for the comparison column.
A task's `limit` (0 = all) evaluates a random subset drawn from `seed`, stratified by answer label, the
same for every method (biomed_jax.data.benchmarks.sample_questions), never the file's first questions.
Methods: loglik (acc and acc_norm), top_token, generate (greedy answer, parsed), cot, sc_cot.
"""

from __future__ import annotations

import ml_collections

SUITES = ("biomedlm", "meditron", "medalpaca_usmle", "quick")

# Prompt templates (str.format over the question's fields; see biomed_jax.data.benchmarks.render).
# `loglik` templates end before the answer: each option's text is scored as the continuation.
TEMPLATES = {
    "mcq": "Question: {question}\n{options}\nAnswer:",
    "mcq_loglik": "Question: {question}\nAnswer:",
    "context_mcq": "Context: {context}\nQuestion: {question}\n{options}\nAnswer:",
    "context_loglik": "Context: {context}\nQuestion: {question}\nAnswer:",
    # MedAlpaca's USMLE evaluation prompt (instruction, then the question with its options).
    "medalpaca": ("Answer this multiple choice question.\n\n### Input:\n{question}\n{options}\n\n"
                  "### Response:\nOption:"),
}
COT_SUFFIX = " Let's think step by step."


def _task(kind: str, path: str, split: str = "", template: str = "mcq", loglik_template: str = "mcq_loglik",
          methods: str = "loglik,top_token", shots: int = 0, fewshot_path: str = "", fewshot_split: str = "",
          limit: int = 0, reference: float = -1.0, options: dict | None = None) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        kind=kind, path=path, split=split, template=template, loglik_template=loglik_template,
        methods=methods, shots=shots, fewshot_path=fewshot_path, fewshot_split=fewshot_split, limit=limit,
        reference=reference, options=ml_collections.ConfigDict(options or {})))


def get_config(suite: str = "quick") -> ml_collections.ConfigDict:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r} for configs/evaluation.py; choose one of {list(SUITES)}")
    cfg = ml_collections.ConfigDict()
    cfg.suite = suite
    cfg.seed = 0
    cfg.data_root = ""
    cfg.batch_size = 16
    cfg.max_len = 0                    # 0 = the model's max_seq_len
    cfg.templates = ml_collections.ConfigDict(TEMPLATES)
    cfg.cot_suffix = COT_SUFFIX
    # Generation methods: generate (greedy, short), cot (greedy chain), sc_cot (n sampled chains).
    cfg.generate = ml_collections.ConfigDict(dict(max_new_tokens=16))
    cfg.cot = ml_collections.ConfigDict(dict(max_new_tokens=256))
    cfg.sc_cot = ml_collections.ConfigDict(dict(n=5, temperature=0.8, top_p=0.95, max_new_tokens=256))

    if suite == "biomedlm":
        cfg.tasks = ml_collections.ConfigDict(dict(
            medmcqa=_task("medmcqa", "medmcqa/dev.json", reference=57.3),
            medqa=_task("medqa", "medqa/test.jsonl", reference=50.3),
            pubmedqa=_task("pubmedqa", "pubmedqa/ori_pqal.json", split="test", template="context_mcq",
                           loglik_template="context_loglik", reference=74.4),
            bioasq=_task("bioasq", "bioasq", template="context_mcq", loglik_template="context_loglik",
                         reference=95.7),
            mmlu_medical_genetics=_task("mmlu", "mmlu", split="test", reference=69.0,
                                        options=dict(subjects=("medical_genetics",))),
        ))
    elif suite == "meditron":
        cot = "top_token,cot,sc_cot"
        cfg.tasks = ml_collections.ConfigDict(dict(
            medqa=_task("medqa", "medqa/test.jsonl", methods=cot, shots=3, fewshot_path="medqa/dev.jsonl"),
            medmcqa=_task("medmcqa", "medmcqa/dev.json", methods=cot, shots=3),
            pubmedqa=_task("pubmedqa", "pubmedqa/ori_pqal.json", split="test", template="context_mcq",
                           methods=cot, shots=3, fewshot_path="pubmedqa/ori_pqal.json", fewshot_split="train"),
            mmlu_medical=_task("mmlu", "mmlu", split="test", methods=cot, shots=3, fewshot_path="mmlu",
                               fewshot_split="dev"),
        ))
    elif suite == "medalpaca_usmle":
        cfg.tasks = ml_collections.ConfigDict({
            f"usmle_step{i}": _task("usmle", "usmle", split=f"step{i}", template="medalpaca",
                                    methods="generate,top_token")
            for i in (1, 2, 3)})
    else:  # quick
        cfg.tasks = ml_collections.ConfigDict(dict(
            medqa=_task("medqa", "medqa/test.jsonl", methods="loglik,top_token,generate,cot,sc_cot", shots=1,
                        fewshot_path="medqa/train.jsonl", limit=16),
            pubmedqa=_task("pubmedqa", "pubmedqa/ori_pqal.json", split="test", template="context_mcq",
                           loglik_template="context_loglik", methods="loglik,top_token", limit=16),
        ))
        cfg.generate.max_new_tokens = 8
        cfg.cot.max_new_tokens = 24
        cfg.sc_cot.update(dict(n=3, max_new_tokens=24))
    return cfg
