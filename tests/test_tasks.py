"""Tasks (biomed_jax/tasks): how each encodes its examples, and option log-likelihood, the one definition
that the option_loglik head's loss, fine-tuning's dev accuracy and the evaluation harness share."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from biomed_jax.data.benchmarks import MCQuestion
from biomed_jax.data.tokenizer import train_bpe
from biomed_jax.tasks import classification, loglik, sft
from biomed_jax.tasks import multiple_choice as mc
from biomed_jax.tasks.base import ArrayBatches, eval_batches


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(["Question: which drug treats the disease? Answer: alpha bravo charlie delta"] * 20,
                     vocab_size=300)


def _question(n_options: int, answer: int = 0, qid: str = "q") -> MCQuestion:
    options = ["alpha", "bravo", "charlie", "delta", "echo"][:n_options]
    return MCQuestion(id=qid, question="which drug treats the disease?", context="", options=options,
                      answer=answer, letters=list("ABCDE"[:n_options]))


def test_choices_pad_short_questions_with_masked_options(tokenizer):
    arrays, report = mc.encode_choices([_question(4), _question(2, answer=1)], tokenizer,
                                               "Question: {question}\nAnswer: {option}", max_len=64)
    assert arrays["tokens"].shape == (2, 4, 64)
    np.testing.assert_array_equal(arrays["option_mask"], [[True] * 4, [True, True, False, False]])
    np.testing.assert_array_equal(arrays["labels"], [0, 1])
    # Each row ends with its option: the last real token is where the head reads.
    for col, word in enumerate(["alpha", "bravo"]):
        ids = arrays["tokens"][1, col, :arrays["lengths"][1, col]].tolist()
        assert tokenizer.decode(ids).endswith(word)
    assert report.examples == 2 and report.truncated == 0


def test_choices_keep_the_option_when_truncated(tokenizer):
    arrays, report = mc.encode_choices([_question(3)], tokenizer, "Question: {question}\nAnswer: {option}",
                                               max_len=8)
    assert report.truncated == 3
    assert tokenizer.decode(arrays["tokens"][0, 2].tolist()).endswith("charlie")


def test_more_options_than_configured_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="5 options, more than n_options=4"):
        mc.encode_choices([_question(5)], tokenizer, "{question} {option}", 32, n_options=4)


def test_template_with_a_missing_field_names_it(tokenizer):
    with pytest.raises(ValueError, match=r"\{rationale\} is unknown"):
        mc.encode_choices([_question(4)], tokenizer, "{question} {rationale} {option}", 32)


def test_empty_split_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="dev split is empty"):
        mc.encode_choices([], tokenizer, "{question} {option}", 32, what="dev split")


def test_classes_must_cover_the_answers(tokenizer):
    q = MCQuestion(id="7", question="q?", context="c", options=["yes", "no", "maybe"], answer=2,
                   letters=["yes", "no", "maybe"])
    arrays, _ = classification.encode_classes([q], tokenizer, "{context} {question}", 32, ["yes", "no", "maybe"])
    assert arrays["labels"].tolist() == [2]
    with pytest.raises(ValueError, match="not one of the classes"):
        classification.encode_classes([q], tokenizer, "{context} {question}", 32, ["yes", "no"])


def test_instructions_skip_and_count_corrupt_records(tmp_path):
    path = tmp_path / "meadow.json"
    path.write_text(json.dumps([{"instruction": "Define.", "input": "", "output": "A word."},
                                {"instruction": "No output."}, "not a record",
                                {"instruction": "Explain.", "input": None, "output": "Because."}]))
    records, report = sft.load_instructions(str(path))
    assert [r["output"] for r in records] == ["A word.", "Because."]
    assert report.skipped == {"missing_instruction_or_output": 2}
    with pytest.raises(FileNotFoundError, match="missing.json"):
        sft.load_instructions(str(tmp_path / "missing.json"))


def test_sft_loss_covers_only_the_response_and_packing_keeps_examples_apart(tokenizer):
    examples = [{"instruction": "Name a drug.", "input": "", "output": "alpha"},
                {"instruction": "Name another.", "input": "disease", "output": "bravo charlie"}]
    eos = tokenizer.token_to_id("<|endoftext|>")
    encoded, _ = sft.encode_instructions(examples, tokenizer, "medalpaca", max_len=512, eos_id=eos)
    for (ids, weights), example in zip(encoded, examples):
        response = tokenizer.encode(example["output"], add_special_tokens=False).ids + [eos]
        assert ids[weights == 1].tolist() == response
    unpacked = sft.sft_rows(encoded, 512, pack=False)
    packed = sft.sft_rows(encoded, 512, pack=True)
    assert unpacked["inputs"].shape[0] == 2 and packed["inputs"].shape[0] == 1
    row = packed
    assert sorted(set(row["segment_ids"][0].tolist())) == [0, 1, 2]
    second = row["segment_ids"][0] == 2
    assert row["positions"][0][second][0] == 0          # positions restart per example
    # The same targets are trained, packed or not.
    assert row["loss_mask"].sum() == unpacked["loss_mask"].sum()
    assert sorted(row["targets"][row["loss_mask"] == 1].tolist()) == \
        sorted(unpacked["targets"][unpacked["loss_mask"] == 1].tolist())


def test_sft_accuracy_scores_each_options_full_response(tokenizer):
    q = _question(3, answer=2)
    [pairs] = sft.answer_requests([q], tokenizer, "meditron")
    prompt = sft.render_instruction("meditron", sft.questions_as_instructions([q])[0])
    for col, (word, (context, continuation)) in enumerate(zip(["alpha", "bravo", "charlie"], pairs)):
        assert context == tokenizer.encode(prompt).ids           # the question as the model was taught it
        assert tokenizer.decode(continuation) == f"{'ABC'[col]}: {word}"
    arrays, truncated = loglik.continuation_arrays([pairs], [q.answer], max_len=256, width=3)
    for col in range(3):
        # inputs are targets shifted right: the response is predicted from the prompt before it
        n = int(np.argmax(arrays["response_mask"][0, col]))
        assert arrays["inputs"][0, col, n + 1] == arrays["targets"][0, col, n]
        assert arrays["targets"][0, col][arrays["response_mask"][0, col]].tolist() == pairs[col][1]
    assert arrays["labels"].tolist() == [2] and arrays["option_mask"].tolist() == [[True, True, True]]
    assert truncated == 0


def test_option_loglik_scores_each_option_as_a_continuation(tokenizer):
    arrays, _ = mc.encode_option_continuations([_question(3, answer=1), _question(2)], tokenizer,
                                                       "Question: {question}\nAnswer: {option}", 64)
    assert arrays["inputs"].shape == (2, 3, 64)
    for col, word in enumerate(["alpha", "bravo", "charlie"]):
        continuation = arrays["targets"][0, col][arrays["response_mask"][0, col]].tolist()
        assert tokenizer.decode(continuation) == f" {word}"
    assert arrays["option_mask"].tolist() == [[True, True, True], [True, True, False]]
    with pytest.raises(ValueError, match="exactly one"):
        mc.encode_option_continuations([_question(2)], tokenizer, "{question}", 64)


def _tiny_decoder(vocab_size: int):
    from biomed_jax.models.config import ModelConfig
    from biomed_jax.models.decoder import init_params
    from configs.models import model_preset

    cfg = ModelConfig.from_dict(dict(model_preset("tiny"), vocab_size=vocab_size, dtype="float32"))
    return cfg, init_params(cfg, jax.random.key(0))


def test_training_scores_equal_the_harness_scorer(tokenizer):
    """The option_loglik head's differentiable scores are the evaluation scorer's, prompt cut included."""
    from flax import nnx

    from biomed_jax.evaluation.scoring import LoglikScorer
    from biomed_jax.models.decoder import graphdef_and_abstract_params

    cfg, params = _tiny_decoder(tokenizer.get_vocab_size())
    questions = [_question(4, answer=1), _question(2, answer=0), _question(3, answer=2)]
    questions[2].question = "which drug treats the disease? " * 12   # longer than max_len: cut from the left
    pairs = mc.option_requests(questions, tokenizer, "Question: {question}\nAnswer: {option}")
    arrays, truncated = loglik.continuation_arrays(pairs, [q.answer for q in questions], max_len=32, width=4)
    assert truncated == 3                                              # each of the long question's options
    model = nnx.merge(graphdef_and_abstract_params(cfg)[0], params)
    trained = np.asarray(loglik.option_scores(model, {k: jnp.asarray(v) for k, v in arrays.items()}))
    scorer = LoglikScorer(cfg, params, max_len=32, batch_size=4)
    scored = [logprob for logprob, _, _ in scorer.score([p for qp in pairs for p in qp])]
    flat = [trained[i, j] for i, qp in enumerate(pairs) for j in range(len(qp))]
    np.testing.assert_allclose(flat, scored, rtol=1e-5, atol=1e-4)
    assert (trained[1, 2:] < -1e30).all()                            # padding options never win
    result = loglik.accuracy(scorer, pairs, [q.answer for q in questions])
    assert result["predictions"] == [int(np.argmax(trained[i, :len(qp)])) for i, qp in enumerate(pairs)]


def test_array_batches_resume_mid_epoch_and_reshuffle_per_epoch():
    arrays = {"x": np.arange(10)}
    source = ArrayBatches(arrays, global_batch_size=3, seed=0)        # 3 steps per epoch, 1 example dropped
    first = [next(source)["x"].tolist() for _ in range(4)]
    state = json.loads(json.dumps(source.get_state()))
    rest = [next(source)["x"].tolist() for _ in range(4)]
    resumed = ArrayBatches(arrays, global_batch_size=3, seed=0)
    resumed.set_state(state)
    assert [next(resumed)["x"].tolist() for _ in range(4)] == rest
    epoch0, epoch1 = first[:3], [first[3]] + rest[:2]
    assert len(set(sum(epoch0, []))) == len(set(sum(epoch1, []))) == 9   # no repeats within an epoch
    assert epoch0 != epoch1                                                # a new order each epoch
    assert state == {"epoch": 1, "batch": 1}
    with pytest.raises(ValueError, match="fewer than train.batch_size=11"):
        ArrayBatches(arrays, global_batch_size=11, seed=0)


def test_eval_batches_cover_every_example_once_with_weight_zero_padding():
    batches = list(eval_batches({"x": np.arange(7)}, 4))
    assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 0]]
    assert [b["weight"].tolist() for b in batches] == [[1, 1, 1, 1], [1, 1, 1, 0]]
