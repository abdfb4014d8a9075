"""The continuous-batching engine: greedy output equals the Generator's for every request, whatever else
is in flight and whenever it arrives; seeded sampling does not depend on the row or the traffic; a
cancelled request frees its row; the queue is bounded; shutdown finishes what is in flight."""

import functools
import threading
import time

import jax
import numpy as np
import pytest

from biomed_jax import sharding as shd
from biomed_jax.inference.engine import Engine, EngineStopped, QueueFull, Request
from biomed_jax.inference.generate import Generator
from biomed_jax.inference.sampling import SamplingConfig
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import graphdef_and_abstract_params, init_params
from configs.models import model_preset


@functools.lru_cache(maxsize=None)
def tiny_generator(preset: str, unroll_layers: bool = True, mesh=None) -> Generator:
    """A Generator over a tiny random model (one per arguments: the tests share them)."""
    cfg = ModelConfig.from_dict({**model_preset(preset), "dtype": "float32", "init_std": 0.2})
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0))
    if mesh is not None:
        _, abstract = graphdef_and_abstract_params(cfg)
        params = jax.device_put(params, shd.param_shardings(abstract, mesh, shd.rules_dict()))
    return Generator(cfg, params, mesh, unroll_layers=unroll_layers)


class Collector:
    """Submits requests and records each one's tokens and finish reason."""

    def __init__(self, engine: Engine):
        self.engine, self.tokens, self.reasons = engine, {}, {}
        self.done = threading.Event()
        self.pending = 0
        self.lock = threading.Lock()

    def submit(self, name, prompt, max_tokens, **kwargs) -> Request:
        self.tokens[name] = []
        with self.lock:
            self.pending += 1

        def finish(reason):
            self.reasons[name] = reason
            with self.lock:
                self.pending -= 1
                if not self.pending:
                    self.done.set()

        self.done.clear()
        request = Request(prompt=list(map(int, prompt)), max_tokens=max_tokens,
                          on_token=lambda t: self.tokens[name].append(t.id), on_finish=finish, **kwargs)
        return self.engine.submit(request)

    def wait(self, timeout=120):
        assert self.done.wait(timeout), f"requests still running: {self.pending}"


def mixed_requests(vocab: int, n: int, seed: int = 0):
    """(prompt, max_tokens) pairs: prompts of 1-40 tokens, three output lengths."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(1, vocab, size=int(rng.integers(1, 40))).tolist(), int(rng.choice([3, 11, 29])))
            for _ in range(n)]


def generated_alone(generator, requests):
    """Each request's greedy tokens from Generator.generate (batched per output length: a row's tokens do
    not depend on its batch, tests/test_generate.py)."""
    out = {}
    for max_tokens in {m for _, m in requests}:
        chosen = [i for i, (_, m) in enumerate(requests) if m == max_tokens]
        rows = generator.generate([requests[i][0] for i in chosen], SamplingConfig(max_new_tokens=max_tokens))
        out.update(zip(chosen, rows.completions()))
    return out


@pytest.mark.parametrize("preset,unroll", [("tiny", True), ("tiny_llama", False)])
def test_greedy_equals_generate_with_requests_arriving_while_others_run(preset, unroll):
    generator = tiny_generator(preset, unroll_layers=unroll)
    engine = Engine(generator, slots=3, max_len=96).start()
    requests = mixed_requests(generator.cfg.vocab_size, 10)
    collector = Collector(engine)
    for i, (prompt, max_tokens) in enumerate(requests):   # more requests than rows: some wait, rows are reused
        collector.submit(i, prompt, max_tokens)
        time.sleep(0.003 * (i % 3))
    collector.wait()
    engine.shutdown(5)
    expected = generated_alone(generator, requests)
    for i, (prompt, max_tokens) in enumerate(requests):
        assert collector.tokens[i] == expected[i], f"request {i} (prompt {len(prompt)} tokens)"
        assert collector.reasons[i] == "length"


def test_stop_tokens_end_a_request_and_free_its_row():
    generator = tiny_generator("tiny")
    engine = Engine(generator, slots=1, max_len=64).start()
    prompt = [5, 6, 7]
    free_run = generator.generate([prompt], SamplingConfig(max_new_tokens=20)).completions()[0]
    stop = free_run[4]
    collector = Collector(engine)
    collector.submit("stopped", prompt, 20, stop_tokens=frozenset({stop}))
    collector.submit("next", [9, 9], 3)   # waits for the single row
    collector.wait()
    engine.shutdown(5)
    assert collector.tokens["stopped"] == free_run[:free_run.index(stop) + 1]
    assert collector.reasons == {"stopped": "stop", "next": "length"}


def test_seeded_sampling_does_not_depend_on_row_or_traffic():
    generator = tiny_generator("tiny")
    settings = dict(temperature=0.9, top_k=20, top_p=0.9, seed=1234)
    alone = Engine(generator, slots=4, max_len=64).start()
    collector = Collector(alone)
    collector.submit("alone", [3, 4, 5], 25, **settings)
    collector.wait()
    alone.shutdown(5)

    busy = Engine(generator, slots=4, max_len=64).start()
    crowd = Collector(busy)
    for i in range(3):   # rows 0-2 taken: the request lands in another row, next to other sampled traffic
        crowd.submit(f"other{i}", [i + 1] * (i + 2), 25, temperature=1.0, seed=i)
    crowd.submit("crowded", [3, 4, 5], 25, **settings)
    crowd.wait()
    busy.shutdown(5)
    assert crowd.tokens["crowded"] == collector.tokens["alone"]
    assert crowd.tokens["other0"] != crowd.tokens["other1"]

    greedy = generator.generate([[3, 4, 5]], SamplingConfig(max_new_tokens=25)).completions()[0]
    assert collector.tokens["alone"] != greedy   # it did sample


def test_cancel_frees_the_row_for_the_next_request():
    generator = tiny_generator("tiny_llama")   # rotary positions: a long row, so the cancel lands mid-way
    engine = Engine(generator, slots=1, max_len=2048, queue_size=4).start()
    collector = Collector(engine)
    long = collector.submit("long", [1, 2, 3], 2000)
    collector.submit("short", [4, 5], 4)
    while len(collector.tokens["long"]) < 3:
        time.sleep(0.001)
    engine.cancel(long)
    collector.wait()
    engine.shutdown(5)
    assert collector.reasons == {"long": "cancelled", "short": "length"}
    assert len(collector.tokens["long"]) < 2000
    assert len(collector.tokens["short"]) == 4


def test_queue_is_bounded_and_requests_are_checked():
    generator = tiny_generator("tiny")
    engine = Engine(generator, slots=1, max_len=64, queue_size=1)   # not started: nothing leaves the queue
    engine.submit(Request(prompt=[1], max_tokens=5))    # takes the free row
    engine.submit(Request(prompt=[1], max_tokens=5))    # waits
    with pytest.raises(QueueFull, match="queue_size 1"):
        engine.submit(Request(prompt=[1], max_tokens=5))
    with pytest.raises(ValueError, match="max_tokens: the prompt's 10 tokens \\+ max_tokens 60 exceed the context of 64"):
        engine.check(Request(prompt=[1] * 10, max_tokens=60))
    with pytest.raises(ValueError, match="prompt: token ids outside the vocabulary of 256"):
        engine.check(Request(prompt=[300], max_tokens=1))
    with pytest.raises(ValueError, match="prompt: it has no tokens"):
        engine.check(Request(prompt=[], max_tokens=1))


def test_shutdown_finishes_requests_in_flight_then_refuses_new_ones():
    generator = tiny_generator("tiny")
    engine = Engine(generator, slots=2, max_len=64).start()
    collector = Collector(engine)
    collector.submit("a", [1, 2], 30)
    collector.submit("b", [3], 20)
    assert engine.shutdown(timeout=60)
    assert collector.reasons == {"a": "length", "b": "length"}
    assert len(collector.tokens["a"]) == 30
    with pytest.raises(EngineStopped):
        engine.submit(Request(prompt=[1], max_tokens=1))


def test_sharded_engine_equals_single_device():
    if jax.device_count() < 8:
        pytest.skip("needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
    mesh = shd.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    requests = mixed_requests(256, 4, seed=3)
    outputs = []
    for generator in (tiny_generator("tiny_llama"), tiny_generator("tiny_llama", mesh=mesh)):
        engine = Engine(generator, slots=4, max_len=72).start()
        collector = Collector(engine)
        for i, (prompt, max_tokens) in enumerate(requests):
            collector.submit(i, prompt, max_tokens)
        collector.wait()
        engine.shutdown(5)
        outputs.append(collector.tokens)
    assert outputs[0] == outputs[1]
    # The cache rows are split over the batch axes, kv heads over tensor, as generation's cache is.
    spec = jax.tree.leaves(engine._cache.k)[0].sharding.spec
    assert spec[:2] == (("data", "fsdp"), "tensor")
