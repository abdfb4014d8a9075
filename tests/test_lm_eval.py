"""Log-likelihood scoring and the lm-evaluation-harness adapter.

LoglikScorer against a plain full forward on 8 sharded devices; then, on a tiny random GPT-2 made
with transformers and converted, lm-eval's own Hugging Face backend (HFLM) and our `biomed_jax` model
give the same per-choice log-likelihoods, accuracy, rolling log-likelihood and generations, offline,
on a local multiple-choice task; and the shipped task definitions read the real benchmark files.
"""

import json
import os
import random
import textwrap

import jax
import numpy as np
import pytest

from biomed_jax import sharding as shd
from biomed_jax.evaluation.scoring import LoglikScorer, bucket_length, rolling_windows
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
MAX_LEN = 64


# --------------------------------------------------------------------------- LoglikScorer, no lm-eval


SCORER_MAX_LEN = 96  # continuations past 64 tokens pad to a multiple of 32: chunked logits must divide it


def _tiny_jax_model(seed=0):
    cfg = ModelConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_seq_len=SCORER_MAX_LEN,
                      dtype="float32")
    from flax import nnx

    _, abstract = graphdef_and_abstract_params(cfg)
    rng = np.random.default_rng(seed)  # random everywhere (norm scales too), without tracing an init
    return cfg, jax.tree.map(lambda x: rng.normal(0.0, 0.3, x.shape).astype(np.float32), nnx.to_pure_dict(abstract))


def _plain_logprobs(cfg, params):
    """log_softmax of the plain decoder (no KV cache, causal attention) on (rows, max_seq_len) tokens."""
    from flax import nnx

    graphdef, _ = graphdef_and_abstract_params(cfg)
    return jax.jit(lambda t: jax.nn.log_softmax(nnx.merge(graphdef, params)(t), -1))


def _reference(forward, requests):
    """Per request: context + continuation cut as lm-eval does (the last max_len + 1 tokens, the last
    one only predicted) through the plain decoder, right padded; the continuation's summed
    log-probs and whether each target is the argmax."""
    seqs = [(list(c) + list(x))[-(SCORER_MAX_LEN + 1):] for c, x in requests]
    tokens = np.zeros((len(seqs), SCORER_MAX_LEN), np.int32)
    for i, s in enumerate(seqs):
        tokens[i, :len(s) - 1] = s[:-1]
    logprobs = np.asarray(forward(tokens))
    out = []
    for i, ((_, cont), s) in enumerate(zip(requests, seqs)):
        n = len(cont)
        rows = logprobs[i, len(s) - 1 - n:len(s) - 1]
        targets = np.asarray(s[-n:])
        out.append((rows[np.arange(n), targets].sum(), bool(np.all(rows.argmax(-1) == targets))))
    return out


def test_scorer_matches_a_plain_forward_sharded_with_mixed_lengths():
    cfg, params = _tiny_jax_model()
    forward = _plain_logprobs(cfg, params)
    rng = np.random.default_rng(0)
    requests = []
    for n_ctx in (1, 3, 20, 40, 92, 130):  # 92 and 130 overflow max_len and are cut from the left
        context = rng.integers(0, cfg.vocab_size, n_ctx).tolist()
        for _ in range(int(rng.integers(1, 5))):  # 1-4 options share the context
            requests.append((context, rng.integers(0, cfg.vocab_size, int(rng.integers(1, 9))).tolist()))
    for n_cont in (70, SCORER_MAX_LEN):  # long continuations (the second fills max_len), cut contexts
        requests.append((rng.integers(0, 256, 40).tolist(), rng.integers(0, 256, n_cont).tolist()))
    rng.shuffle(requests)
    # A greedy continuation: the plain decoder's argmax after the context, fed back three times.
    greedy = rng.integers(0, 256, 7).tolist()
    for _ in range(3):
        tokens = np.zeros((len(requests) + 1, SCORER_MAX_LEN), np.int32)
        tokens[0, :len(greedy)] = greedy
        greedy.append(int(np.argmax(forward(tokens)[0, len(greedy) - 1])))
    requests.append((greedy[:7], greedy[7:]))

    mesh = shd.make_mesh(dict(data=2, fsdp=2, tensor=2))
    scorer = LoglikScorer(cfg, params, mesh=mesh, batch_size=8)
    got = scorer.score(requests)
    expected = _reference(forward, requests)
    for i, ((context, cont), (logprob, is_greedy, truncated), (ref_logprob, ref_greedy)) in enumerate(
            zip(requests, got, expected)):
        assert abs(logprob - ref_logprob) < 1e-4, (i, logprob, ref_logprob)
        assert is_greedy == ref_greedy, i
        assert truncated == max(0, len(context) + len(cont) - SCORER_MAX_LEN - 1), i
    assert got[-1][1] is True and sum(t > 0 for _, _, t in got) >= 4
    assert len(scorer.compiled_shapes()) <= 2, scorer.compiled_shapes()  # bucketed, not one per length

    with pytest.raises(ValueError, match="request 1: the continuation alone has 97 tokens"):
        scorer.score([([1], [2]), ([1], [3] * (SCORER_MAX_LEN + 1))])
    with pytest.raises(ValueError, match="request 0: the context is empty"):
        scorer.score([([], [2])])

    # Another version of the same model (fine-tuning's next epoch): placed like the first, scored by the
    # same compiled programs, giving the new model's scores.
    _, params2 = _tiny_jax_model(seed=1)
    shapes = scorer.compiled_shapes()
    scorer.set_params(params2)
    assert all(isinstance(leaf, jax.Array) and leaf.sharding.device_set == set(mesh.devices.flat)
               for leaf in jax.tree.leaves(scorer.params))  # placed on the mesh, not left on the host
    again = scorer.score(requests)
    for i, ((logprob, _, _), (ref_logprob, _)) in enumerate(zip(again, _reference(_plain_logprobs(cfg, params2),
                                                                                  requests))):
        assert abs(logprob - ref_logprob) < 1e-4, (i, logprob, ref_logprob)
    assert scorer.compiled_shapes() == shapes
    with pytest.raises(ValueError, match="do not match the scorer's model config"):
        scorer.set_params(jax.tree.map(lambda x: x[..., :1], params2))


def test_rolling_windows_and_buckets():
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(1, 24))
    for max_len in (1, 4, 7, 23, 30):
        expected = [lm_eval_utils.make_disjoint_window(w)
                    for w in lm_eval_utils.get_rolling_token_windows(tokens, 0, max_len, 1)]
        assert rolling_windows(tokens, 0, max_len) == expected
    assert rolling_windows([], 0, 4) == []
    assert [bucket_length(n) for n in (1, 16, 17, 64, 65, 200, 257, 513, 1024)] == \
        [16, 16, 32, 64, 96, 224, 288, 576, 1024]


# ------------------------------------------------------------------ lm-eval: HF backend vs our adapter

WORDS = ("the patient was given aspirin for chest pain and fever which drug treats infection of the lung "
         "heart kidney liver dose mg daily").split()


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(200)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(HFLM, our lm-eval model, HF tokenizer, converted run dir): one tiny random GPT-2, both ways."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM

    from biomed_jax.convert.hf_checkpoint import hf_to_jax
    from biomed_jax.evaluation.lm_eval_adapter import BiomedJaxLM

    tmp = tmp_path_factory.mktemp("lm_eval")
    tok = _tokenizer()
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_embd=32, n_layer=2, n_head=4,
                                     n_positions=MAX_LEN, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf_model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in hf_model.parameters():
            p.normal_(0.0, 0.2)
    hf_model.eval()
    hf_dir, jax_dir = str(tmp / "hf"), str(tmp / "jax")
    hf_model.save_pretrained(hf_dir, safe_serialization=True)
    hf_tok.save_pretrained(hf_dir)
    hf_to_jax(hf_dir, jax_dir, dtype="float32")
    hf_lm = HFLM(pretrained=hf_model, tokenizer=hf_tok, batch_size=8, device="cpu")
    ours = BiomedJaxLM(pretrained=jax_dir, batch_size=8)
    with pytest.MonkeyPatch.context() as env:  # nothing below may reach a hub
        env.setenv("HF_DATASETS_OFFLINE", "1")
        env.setenv("HF_HUB_OFFLINE", "1")
        yield hf_lm, ours, hf_tok, jax_dir, tmp


def _write_task(tmp):
    """A 4-option task over a local JSONL file (lm-eval's json loader), some questions long enough
    to be cut to the model's 64 tokens."""
    rng = random.Random(1)
    docs = []
    for i in range(10):
        n_words = 45 if i % 3 == 0 else rng.randint(4, 12)
        question = " ".join(rng.choice(WORDS) for _ in range(n_words))
        choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(4)]
        docs.append(dict(question=question, choices=choices, label=rng.randrange(4)))
    data = tmp / "tiny_mcq.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    task_dir = tmp / "tasks"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "tiny_mcq.yaml").write_text(textwrap.dedent(f"""\
        task: tiny_mcq
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
          cache_dir: {tmp / "hf_datasets_cache"}
        output_type: multiple_choice
        test_split: test
        doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: label
        metric_list:
          - metric: acc
        """))
    return str(task_dir)


def _per_choice(result):
    return {s["doc_id"]: [r[0] for r in s["filtered_resps"]] for s in result["samples"]["tiny_mcq"]}


def test_hf_backend_adapter_and_scorer_agree_on_a_local_task(models):
    import lm_eval
    from lm_eval.tasks import TaskManager

    hf_lm, ours, hf_tok, _, tmp = models
    task_manager = TaskManager(include_path=_write_task(tmp), include_defaults=False)
    kwargs = dict(tasks=["tiny_mcq"], task_manager=task_manager, log_samples=True)
    hf_result = lm_eval.simple_evaluate(model=hf_lm, **kwargs)
    our_result = lm_eval.simple_evaluate(model=ours, **kwargs)
    hf_ll, our_ll = _per_choice(hf_result), _per_choice(our_result)
    assert len(hf_ll) == 10 and hf_ll.keys() == our_ll.keys()
    for doc_id in hf_ll:
        np.testing.assert_allclose(our_ll[doc_id], hf_ll[doc_id], atol=1e-3, rtol=0)
    assert our_result["results"]["tiny_mcq"]["acc,none"] == hf_result["results"]["tiny_mcq"]["acc,none"]

    # The scorer directly, on pairs tokenized by the HF tokenizer (what experiments.evaluate does).
    requests, expected = [], []
    for sample in hf_result["samples"]["tiny_mcq"]:
        for (context, continuation), (logprob, _) in zip((a["arguments"] for a in sample["arguments"].values())
                                                          if isinstance(sample["arguments"], dict) else
                                                          sample["arguments"], sample["filtered_resps"]):
            whole = hf_tok(context + continuation)["input_ids"]
            n_context = len(hf_tok(context)["input_ids"])
            requests.append((whole[:n_context], whole[n_context:]))
            expected.append(logprob)
    scored = ours.scorer.score(requests)
    np.testing.assert_allclose([s[0] for s in scored], expected, atol=1e-3, rtol=0)
    truncated = [t for _, _, t in scored]
    assert [t for t in truncated if t] and truncated == [max(0, len(c) + len(x) - MAX_LEN - 1) for c, x in requests]


def _instances(kind, args_list):
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=args, idx=i) for i, args in enumerate(args_list)]


def test_rolling_loglikelihood_matches_hf(models):
    hf_lm, ours, _, _, _ = models
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(n)) for n in (3, 30, 70)]  # up to 3 windows of 64
    assert len(ours.tok_encode(texts[-1])) > 2 * MAX_LEN
    requests = _instances("loglikelihood_rolling", [(t,) for t in texts])
    np.testing.assert_allclose(ours.loglikelihood_rolling(requests), hf_lm.loglikelihood_rolling(requests),
                               atol=1e-3, rtol=0)


def test_generate_until_stops_at_the_until_string(models):
    hf_lm, ours, _, _, _ = models
    prompt = "the patient was given"
    free = ours.generate_until(_instances("generate_until", [(prompt, {"max_gen_toks": 12, "until": []})]))[0]
    assert free == hf_lm.generate_until(_instances("generate_until", [(prompt, {"max_gen_toks": 12, "until": []})]))[0]
    assert len(free) >= 6, free
    stop = free[3:6]
    cut = ours.generate_until(_instances("generate_until", [(prompt, {"max_gen_toks": 12, "until": [stop]})]))[0]
    assert cut == free[:free.index(stop)]


# ------------------------------------------------------------------------------ the shipped tasks

LOCAL_TASKS = {"medqa_local": 1273, "medmcqa_local": 4183, "pubmedqa_local": 500, "mmlu_anatomy_local": 135}


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data (the real benchmark files) is absent")
def test_shipped_task_definitions_read_the_local_files(monkeypatch, tmp_path):
    pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    import datasets

    monkeypatch.setenv("BIOMED_EVAL_DATA", SHARED_DATA)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))
    manager = TaskManager(include_path=os.path.join(REPO_ROOT, "configs", "lm_eval_tasks"), include_defaults=False)
    assert {"medqa_local", "medmcqa_local", "pubmedqa_local", "mmlu_medical_local"} <= set(manager.all_tasks)
    loaded = manager.load(["medqa_local", "medmcqa_local", "pubmedqa_local", "mmlu_medical_local"])
    tasks = loaded["tasks"]
    assert len(tasks) == 3 + 6
    for name, count in LOCAL_TASKS.items():
        task = tasks[name]
        docs = list(task.test_docs())
        assert len(docs) == count, name
        doc = docs[0]
        choices = task.doc_to_choice(doc)
        target = task.doc_to_target(doc)
        assert isinstance(target, int) and 0 <= target < len(choices), name
        assert task.doc_to_text(doc).endswith("Answer:"), name
    assert tasks["medmcqa_local"].doc_to_target(next(iter(tasks["medmcqa_local"].test_docs()))) == 0  # cop 1 = opa
    # lm-eval's --limit N takes the first N documents: PubMedQA's come in ori_pqal.json's (mixed) order,
    # as the harness loads them, not the label-sorted order of test_ground_truth.json.
    from biomed_jax.data.benchmarks import load_pubmedqa

    pubmedqa_docs = list(tasks["pubmedqa_local"].test_docs())
    harness_order, _ = load_pubmedqa(os.path.join(SHARED_DATA, "pubmedqa"))
    assert [d["pmid"] for d in pubmedqa_docs] == [q.id for q in harness_order]
    assert {d["answer"] for d in pubmedqa_docs[:30]} == {0, 1, 2}


def test_command_line_translates_checkpoint_to_lm_eval_flags(tmp_path):
    from biomed_jax.evaluation.lm_eval_command import DEFAULT_TASKS_DIR, translate

    run = str(tmp_path)
    assert translate([f"--checkpoint={run}", "--tasks=medqa_local", "--model_args", "step=3", "--limit=2"]) == [
        "--model", "biomed_jax", "--model_args", f"pretrained={run},step=3", "--include_path", DEFAULT_TASKS_DIR,
        "--tasks=medqa_local", "--limit=2"]
    assert translate(["run", "--checkpoint", run, "--include_path=/x"])[:2] == ["run", "--model"]
    assert translate(["--model=hf", "--tasks=x"]) == ["--model=hf", "--tasks=x"]  # no --checkpoint: unchanged
    with pytest.raises(ValueError, match="--checkpoint=/nonexistent is not a directory"):
        translate(["--checkpoint=/nonexistent"])
