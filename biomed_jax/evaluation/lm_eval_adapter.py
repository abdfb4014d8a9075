"""lm-evaluation-harness adapter: a biomed_jax run directory as lm-eval's `biomed_jax` model.

Importing this module registers the class, so lm-eval's Python API works in-process:

    import lm_eval, biomed_jax.evaluation.lm_eval_adapter  # noqa: F401 (registers "biomed_jax")
    lm_eval.simple_evaluate(model="biomed_jax", model_args="pretrained=RUN_DIR", tasks=[...])

and `python -m experiments.lm_eval --checkpoint=RUN_DIR ...` does the same from lm-eval's own CLI.
RUN_DIR holds checkpoints/ (orbax) and tokenizer.json, as experiments.convert --direction=hf_to_jax
or a training run writes them. Log-likelihoods come from evaluation.scoring.LoglikScorer (contexts
shared between a question's options are run once); generation from inference.generate.Generator.

Tokenization follows lm-eval's Hugging Face backend, so the same run directory scores the same
tokens under both: `tokenizers`' default special-token handling (add_special_tokens unless the text
already starts with the prefix token), the prefix token is BOS where the run has one (as its
tokenizer_config.json states; biomed_jax.run_dir.special_tokens), else the end-of-text token.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from biomed_jax.evaluation.scoring import load_scorer
from biomed_jax.inference import text as text_lib
from biomed_jax.run_dir import EOS_TOKENS, require_run

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_GEN_TOKS = 256


def _parse_batch_size(value: Any) -> int:
    """lm-eval passes ints, numeric strings or 'auto[:N]'; JAX needs a fixed compiled batch."""
    if value is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(value, str):
        if value.startswith("auto"):
            logger.warning("batch_size=%s: biomed_jax compiles a fixed batch; using %d", value, DEFAULT_BATCH_SIZE)
            return DEFAULT_BATCH_SIZE
        value = int(value)
    if int(value) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {value!r}")
    return int(value)


@register_model("biomed_jax")
class BiomedJaxLM(TemplateLM):
    """lm-eval model over a biomed_jax run directory (model_args: pretrained=DIR[,step=N]
    [,batch_size=16][,max_length=N][,max_gen_toks=256][,tokenizer=PATH][,add_bos_token=BOOL]
    [,prefix_token_id=ID])."""

    def __init__(self, pretrained: str, step: int | None = None, batch_size: Any = None,
                 max_length: int | None = None, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
                 tokenizer: str | None = None, add_bos_token: bool | None = None,
                 prefix_token_id: int | None = None, device: str | None = None,
                 max_batch_size: int | None = None, **unused: Any):
        super().__init__()
        if unused:
            logger.warning("biomed_jax model: ignoring model_args %s", sorted(unused))
        if device not in (None, "", "cpu", "cuda", "tpu"):
            logger.warning("biomed_jax model: device=%s is ignored; JAX places work on its default backend", device)
        del max_batch_size  # a fixed compiled batch; see batch_size
        require_run(pretrained, "model_args pretrained")
        self.run_dir = pretrained
        self.scorer, run = load_scorer(
            pretrained, step=None if step in (None, "") else int(step), batch_size=_parse_batch_size(batch_size),
            max_len=None if max_length in (None, "") else int(max_length), tokenizer_path=tokenizer)
        self.tokenizer, self._bos_id, self._eos_id = run.tokenizer, run.bos_id, run.eos_id
        if self._eos_id is None:
            raise ValueError(f"the tokenizer of {pretrained} has no end-of-text token ({EOS_TOKENS} or "
                             "eos_token in tokenizer_config.json); lm-eval needs one")
        self._prefix_id = int(prefix_token_id) if prefix_token_id not in (None, "") else (
            self._bos_id if self._bos_id is not None else self._eos_id)
        self.scorer.prefix_id = self._prefix_id
        self.add_bos_token = None if add_bos_token in (None, "") else str(add_bos_token).lower() in ("1", "true")
        self._max_gen_toks = int(max_gen_toks)
        self._generator = None

    # ---------------------------------------------------------------------------- lm-eval's interface

    @property
    def eot_token_id(self) -> int:
        return self._eos_id

    @property
    def prefix_token_id(self) -> int:
        return self._prefix_id

    @property
    def max_length(self) -> int:
        return self.scorer.max_len

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def batch_size(self) -> int:
        return self.scorer.batch_size

    @property
    def tokenizer_name(self) -> str:
        return os.path.abspath(self.run_dir).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs) -> list[int]:
        if add_special_tokens is None:
            add_special_tokens = True if self.add_bos_token is None else self.add_bos_token
            if string.startswith(self.tok_decode([self._prefix_id], skip_special_tokens=False)):
                add_special_tokens = False  # the text already carries its BOS
        ids = self.tokenizer.encode(string, add_special_tokens=add_special_tokens).ids
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        tokens = [tokens] if isinstance(tokens, int) else list(tokens)
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        scored = self.scorer.score([(context, continuation) for _, context, continuation in requests],
                                   progress=not disable_tqdm)
        out = []
        n_truncated = 0
        for (request_str, _, _), (logprob, greedy, truncated) in zip(requests, scored):
            n_truncated += truncated > 0
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, (logprob, greedy))
            out.append((logprob, greedy))
        if n_truncated:
            logger.warning("%d of %d requests were longer than max_length %d: their contexts were cut from the left",
                           n_truncated, len(requests), self.max_length)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        strings = [request.args[0] for request in requests]
        totals = self.scorer.rolling_many([self.tok_encode(s) for s in strings], self._prefix_id)
        for string, total in zip(strings, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Generation with the project's jitted prefill + decode loop, one call per distinct gen_kwargs;
        each completion is cut before the first `until` string (the end-of-text token always stops)."""
        from lm_eval.models.utils import normalize_gen_kwargs

        from biomed_jax.inference.generate import Generator
        from biomed_jax.inference.sampling import SamplingConfig

        if self._generator is None:
            self._generator = Generator(self.scorer.cfg, self.scorer.params, self.scorer.mesh, self.scorer.rules)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        results: list[str | None] = [None] * len(requests)
        eos_text = self.tok_decode([self._eos_id], skip_special_tokens=False)
        for indices in tqdm(groups.values(), disable=disable_tqdm, desc="generate_until"):
            kwargs = normalize_gen_kwargs(dict(requests[indices[0]].args[1]), self._max_gen_toks)
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            until = [s for s in until if s and s != eos_text]
            max_new = int(kwargs.pop("max_gen_toks"))
            if max_new >= self.max_length:
                raise ValueError(f"max_gen_toks ({max_new}) must be less than the model's max_length "
                                 f"({self.max_length})")
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            stop_tokens = sorted({self._eos_id, *text_lib.stop_string_ids(self.tokenizer, until)})
            sampling = SamplingConfig(max_new_tokens=max_new, temperature=temperature,
                                      top_k=int(kwargs.get("top_k") or 0), top_p=float(kwargs.get("top_p") or 1.0),
                                      stop_tokens=tuple(stop_tokens), seed=int(kwargs.get("seed") or 0))
            prompts = []
            for i in indices:
                ids = self.tok_encode(requests[i].args[0], left_truncate_len=self.max_length - max_new)
                prompts.append(ids or [self._prefix_id])
            output = self._generator.generate(prompts, sampling, batch_size=min(self.batch_size, len(prompts)))
            for i, ids in zip(indices, output.completions()):
                completion = text_lib.completion_text(self.tokenizer, ids, stop_tokens, until)
                self.cache_hook.add_partial("generate_until", requests[i].args, completion)
                results[i] = completion
        return results  # type: ignore[return-value]
