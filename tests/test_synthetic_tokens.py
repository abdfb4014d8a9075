"""The generated token stream: deterministic, process-independent, consistent packing metadata."""

import numpy as np
import pytest

from biomed_jax.data.synthetic_tokens import SyntheticTokenBatches


def make(**kw):
    args = dict(vocab_size=64, seq_len=48, global_batch_size=8, seed=3, mean_doc_len=10)
    args.update(kw)
    return SyntheticTokenBatches(**args)


def test_batches_are_a_function_of_seed_and_step():
    a, b = make(), make()
    first = [next(a) for _ in range(3)]
    b.set_state({"step": 2})
    np.testing.assert_array_equal(next(b)["inputs"], first[2]["inputs"])
    assert a.get_state() == {"step": 3}
    assert not np.array_equal(make(seed=4).batch_at(0)["inputs"], first[0]["inputs"])
    assert not np.array_equal(make(split="validation").batch_at(0)["inputs"], first[0]["inputs"])


def test_process_shards_concatenate_to_the_single_process_batch():
    whole = make().batch_at(5)
    parts = [make(process_index=i, process_count=2).batch_at(5) for i in range(2)]
    for key in whole:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_packing_metadata_is_consistent():
    batch = make().batch_at(0)
    seg, pos, mask = batch["segment_ids"], batch["positions"], batch["loss_mask"]
    assert batch["inputs"].shape == (8, 48) and batch["inputs"].dtype == np.int32
    assert (seg[:, 0] == 1).all() and (np.diff(seg, axis=1) >= 0).all()
    starts = np.diff(seg, axis=1) == 1
    assert (pos[:, 1:][starts] == 0).all() and (pos[:, 1:][~starts] == pos[:, :-1][~starts] + 1).all()
    assert mask.min() == 0.0 and mask.mean() > 0.8  # no target across a document boundary
    np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
    assert batch["inputs"].min() >= 1  # 0 is left for padding


def test_tokens_follow_the_chain_so_the_loss_floor_is_log_branching():
    source = make(branching=4, mean_doc_len=0)
    batch = source.batch_at(0)
    allowed = source.successors[batch["inputs"]]  # (B, T, branching)
    assert (allowed == batch["targets"][..., None]).any(-1).all()


@pytest.mark.parametrize("kw,message", [
    (dict(split="test"), "split"),
    (dict(branching=64), "data.branching"),
    (dict(global_batch_size=7, process_count=2), "train.batch_size"),
])
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)
