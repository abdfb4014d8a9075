"""The OpenAI-compatible server, driven by the official `openai` client against a live server on a tiny
model: completions, chat, streaming, logprobs, usage, every bad request, 16 concurrent clients, a client
that goes away, a full queue, API keys, logs without text, SIGTERM, the chat page in a real headless
Chromium, and a converted Hugging Face GPT-2 answering as transformers does."""

import concurrent.futures
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import jax
import numpy as np
import pytest

import helpers
from biomed_jax.inference.engine import Engine
from biomed_jax.inference.sampling import SamplingConfig
from biomed_jax.inference.text import TextStream, completion_text
from biomed_jax.models.config import ModelConfig
from biomed_jax.models.decoder import init_params
from biomed_jax.run_dir import load_run, save_run
from biomed_jax.serving.chat import render_chat
from biomed_jax.serving.server import Served, check_bind, create_app, served
from configs.models import model_preset
from configs.serve import get_config

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

VOCAB = 128
EOS = VOCAB - 1
MAX_LEN = 512


def word_run(folder, max_seq_len: int = MAX_LEN) -> str:
    """A random tiny GPT-2 run directory whose tokenizer is helpers.word_tokenizer (text "w1 w2 ...")."""
    helpers.word_tokenizer(VOCAB).save(os.path.join(folder, "tokenizer.json"))
    cfg = ModelConfig.from_dict(dict(model_preset("tiny"), vocab_size=VOCAB, max_seq_len=max_seq_len,
                                     dtype="float32", init_std=0.2))
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0))
    return save_run(os.path.join(folder, "tiny"), {"params": params}, {"model": cfg.to_dict()},
                    tokenizer_from=os.path.join(folder, "tokenizer.json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """An app served by uvicorn in a thread of this process, on a free local port."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def client(self, api_key="unused", **kwargs):
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return word_run(str(tmp_path_factory.mktemp("serve")))


@pytest.fixture(scope="module")
def live(run_dir):
    cfg = get_config()
    cfg.slots, cfg.max_len = 4, MAX_LEN
    server = served(load_run(run_dir), cfg)
    live = LiveServer(create_app(server))
    live.served = server
    yield live
    live.stop()


def greedy_text(live, prompt_ids, max_tokens, stop_strings=()):
    """What experiments.generate prints for this prompt: the Generator's greedy completion as text."""
    out = live.served.engine.generator.generate([prompt_ids], SamplingConfig(max_new_tokens=max_tokens,
                                                                             stop_tokens=(EOS,)))
    return completion_text(live.served.tokenizer, out.completions()[0], (EOS,), stop_strings)


def encode(live, text):
    return live.served.tokenizer.encode(text).ids


# --- the API through the openai client ------------------------------------------------------------------


def test_completion_chat_models_usage_and_logprobs(live):
    client = live.client()
    assert [m.id for m in client.models.list().data] == ["tiny"]

    prompt = "w1 w2 w3 w4"
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0, logprobs=3)
    choice = out.choices[0]
    assert choice.text == greedy_text(live, encode(live, prompt), 12)
    assert choice.finish_reason == "length"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (4, 12, 16)
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 12
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and max(top.values()) == pytest.approx(logprob)   # greedy: the top token
        assert top[token] == pytest.approx(logprob) and logprob < 0
    assert "".join(lp.tokens).replace("w", " w").split() == choice.text.split()

    messages = [{"role": "system", "content": "w9"}, {"role": "user", "content": "w3 w5"}]
    chat = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0,
                                          logprobs=True, top_logprobs=2)
    rendered = render_chat("plain", messages)   # the run records no template: plain turns
    assert chat.choices[0].message.content == greedy_text(live, encode(live, rendered), 8, ("\nUser:",))
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage.prompt_tokens == len(encode(live, rendered))
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens and all(len(c.top_logprobs) == 2 for c in content)


def test_streaming_gives_the_same_text_in_server_sent_events(live):
    client = live.client()
    prompt = "w7 w8 w9"
    whole = client.completions.create(model="tiny", prompt=prompt, max_tokens=20, temperature=0).choices[0].text
    chunks = list(client.completions.create(model="tiny", prompt=prompt, max_tokens=20, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert len([c for c in chunks if c.choices and c.choices[0].text]) > 3   # token by token, not at the end
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20

    messages = [{"role": "user", "content": "w4"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=15, temperature=0)
    stream = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=15, temperature=0,
                                                 stream=True))
    assert stream[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in stream) == whole.choices[0].message.content
    assert stream[-1].choices[0].finish_reason == whole.choices[0].finish_reason

    # On the wire, exactly as OpenAI sends it: "data: {json}" events, then "data: [DONE]".
    with httpx.stream("POST", f"{live.url}/v1/completions", json={"model": "tiny", "prompt": prompt, "max_tokens": 5,
                                                                    "temperature": 0, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert all(json.loads(e[6:])["object"] == "text_completion" for e in events[:-1])


def test_stop_strings_and_seeded_sampling(live):
    client = live.client()
    prompt = "w1 w5"
    free = client.completions.create(model="tiny", prompt=prompt, max_tokens=20, temperature=0).choices[0].text
    words = free.split()
    stop = f" {words[3]}"
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=20, temperature=0, stop=[stop, "w999"])
    assert out.choices[0].text == free[:free.index(stop)]
    assert out.choices[0].finish_reason == "stop" and out.usage.completion_tokens < 20
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt=prompt, max_tokens=20, temperature=0, stop=stop, stream=True))
    assert streamed == out.choices[0].text

    sample = dict(model="tiny", prompt=prompt, max_tokens=20, temperature=1.0, top_p=0.95,
                  extra_body={"top_k": 40})
    first = client.completions.create(seed=7, **sample).choices[0].text
    assert client.completions.create(seed=7, **sample).choices[0].text == first
    assert first != free
    assert {client.completions.create(seed=s, **sample).choices[0].text for s in (8, 9, 10)} - {first}

    # n samples of one prompt (self-consistency): sample j is what seed + j gives alone; the prompt counts once.
    several = client.completions.create(seed=7, n=3, **sample)
    assert [c.index for c in several.choices] == [0, 1, 2]
    singles = [client.completions.create(seed=7 + j, **sample) for j in range(3)]
    assert [c.text for c in several.choices] == [one.choices[0].text for one in singles]
    assert several.usage.prompt_tokens == 2
    assert several.usage.completion_tokens == sum(one.usage.completion_tokens for one in singles)
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "w2"}], n=2,
                                          max_tokens=5, temperature=1.0, seed=3)
    assert [c.index for c in chat.choices] == [0, 1] and chat.choices[0].message.content != chat.choices[1].message.content


BAD_REQUESTS = [
    # (endpoint, body changes, param named, words in the message)
    ("completions", {"model": "other"}, "model", "not served"),
    ("completions", {"model": None}, "model", "required"),
    ("completions", {"max_tokens": 0}, "max_tokens", ">= 1"),
    ("completions", {"max_tokens": "5"}, "max_tokens", "integer"),
    ("completions", {"max_tokens": 600}, "max_tokens", f"context of {MAX_LEN}"),
    ("completions", {"prompt": "w1 " * 600}, "prompt", f"context holds {MAX_LEN}"),
    ("completions", {"prompt": [1, 2, 500]}, "prompt", "vocabulary of 128"),
    ("completions", {"prompt": {"text": "w1"}}, "prompt", "expected a string"),
    ("completions", {"prompt": ""}, "prompt", "no tokens"),
    ("completions", {"temperature": 5}, "temperature", "[0.0, 2.0]"),
    ("completions", {"temperature": True}, "temperature", "boolean"),
    ("completions", {"top_p": 0}, "top_p", "(0.0, 1.0]"),
    ("completions", {"top_k": -3}, "top_k", ">= 0"),
    ("completions", {"stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
    ("completions", {"logprobs": 9}, "logprobs", "[0, 5]"),
    ("completions", {"n": 17}, "n", "[1, 16]"),
    ("completions", {"stream": "yes"}, "stream", "boolean"),
    ("completions", {"echo": True}, "echo", "not supported"),
    ("chat/completions", {"messages": []}, "messages", "non-empty list"),
    ("chat/completions", {"messages": [{"role": "doctor", "content": "w1"}]}, "messages[0].role", "doctor"),
    ("chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
    ("chat/completions", {"top_logprobs": 3}, "top_logprobs", "logprobs: true"),
    ("chat/completions", {"max_tokens": 10_000}, "max_tokens", "exceed the context"),
]


@pytest.mark.parametrize("endpoint,change,param,words", BAD_REQUESTS, ids=[f"{e}-{p}" for e, _, p, _ in BAD_REQUESTS])
def test_bad_requests_get_400_naming_the_field(live, endpoint, change, param, words):
    body = {"model": "tiny", "max_tokens": 4}
    body.update({"prompt": "w1 w2"} if endpoint == "completions" else {"messages": [{"role": "user", "content": "w1"}]})
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(f"{live.url}/v1/{endpoint}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"] and error["type"] == "invalid_request_error"
    assert error["message"].startswith(param)


def test_malformed_json_unknown_paths_and_the_client_errors(live):
    response = httpx.post(f"{live.url}/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.get(f"{live.url}/v1/engines")
    assert response.status_code == 404 and "error" in response.json()
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        live.client().completions.create(model="tiny", prompt="w1", max_tokens=10_000)
    health = httpx.get(f"{live.url}/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny" and health["slots"] == 4


# --- load: concurrency, cancellation, a full queue --------------------------------------------------------


def test_sixty_four_requests_from_sixteen_clients_each_get_their_own_output(live):
    rng = np.random.default_rng(0)
    jobs = [([int(t) for t in rng.integers(0, VOCAB - 2, size=int(rng.integers(1, 33)))], int(rng.integers(1, 17)))
            for _ in range(64)]
    client = live.client(timeout=120)

    def complete(job):
        prompt, max_tokens = job
        return client.completions.create(model="tiny", prompt=prompt, max_tokens=max_tokens, temperature=0).choices[0]

    alone = [complete(job) for job in jobs]   # one at a time
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(complete, jobs))
    assert all(choice.finish_reason in ("length", "stop") for choice in together)
    for i in range(len(jobs)):
        assert together[i].text == alone[i].text, f"request {i}"
    assert len({choice.text for choice in together}) > 32
    assert httpx.get(f"{live.url}/health").json()["busy_slots"] == 0


def metric(live, name: str) -> float:
    for line in httpx.get(f"{live.url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_goes_away_frees_its_slot(live):
    cancelled = metric(live, 'biomed_completions_total{reason="cancelled"}')
    client = live.client()
    stream = client.completions.create(model="tiny", prompt="w1", max_tokens=MAX_LEN - 2, temperature=0, stream=True)
    for _, chunk in zip(range(3), stream):
        assert chunk.choices[0].text
    stream.close()
    deadline = time.monotonic() + 10
    while httpx.get(f"{live.url}/health").json()["busy_slots"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert httpx.get(f"{live.url}/health").json()["busy_slots"] == 0
    assert metric(live, 'biomed_completions_total{reason="cancelled"}') == cancelled + 1


def test_a_full_queue_answers_429_with_retry_after(live):
    engine = Engine(live.served.engine.generator, slots=1, max_len=MAX_LEN, queue_size=0)
    busy = LiveServer(create_app(Served(name="tiny", engine=engine, tokenizer=live.served.tokenizer)))
    try:
        client = busy.client()
        stream = client.completions.create(model="tiny", prompt="w1", max_tokens=MAX_LEN - 2, temperature=0, stream=True)
        next(iter(stream))   # the only slot is taken
        response = httpx.post(f"{busy.url}/v1/completions", json={"model": "tiny", "prompt": "w2", "max_tokens": 2})
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "rate_limit_error"
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="tiny", prompt="w2", max_tokens=2)
        stream.close()
        text = httpx.get(f"{busy.url}/metrics").text
        assert 'biomed_requests_total{path="/v1/completions",status="429"} 2.0' in text
    finally:
        busy.stop()


# --- security and privacy ---------------------------------------------------------------------------------


def test_api_key_is_required_beyond_localhost_and_checked(live):
    with pytest.raises(ValueError, match="--host=0.0.0.0 .* API key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "key")
    check_bind("127.0.0.1", None)

    engine = Engine(live.served.engine.generator, slots=1, max_len=64)
    guarded = LiveServer(create_app(Served(name="tiny", engine=engine, tokenizer=live.served.tokenizer),
                                    api_key="s3cret"))
    try:
        assert httpx.get(f"{guarded.url}/v1/models").status_code == 401
        wrong = httpx.get(f"{guarded.url}/v1/models", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{guarded.url}/metrics").status_code == 401
        assert httpx.get(f"{guarded.url}/health").json()["auth_required"] is True
        with pytest.raises(openai.AuthenticationError):
            guarded.client(api_key="nope").models.list()
        out = guarded.client(api_key="s3cret").completions.create(model="tiny", prompt="w3", max_tokens=3, temperature=0)
        assert out.usage.completion_tokens == 3
    finally:
        guarded.stop()


def test_logs_carry_sizes_and_timings_never_text(live, caplog):
    secret = "w42 w43 w44 w45"
    with caplog.at_level(logging.DEBUG):
        out = live.client().completions.create(model="tiny", prompt=secret, max_tokens=6, temperature=0)
        live.client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": secret}],
                                              max_tokens=6, temperature=0, stream=True).close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "prompt_tokens=4 completion_tokens=6" in logged
    for text in (secret, out.choices[0].text.strip(), "w42"):
        assert text not in logged


def test_chat_templates_follow_the_run_and_can_be_overridden():
    from biomed_jax.serving.chat import template_style
    from biomed_jax.tasks.sft import template_record

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What treats fever?"}]
    style = template_style(template_record("meditron"))   # what SFT records in the run directory
    assert render_chat(style, messages) == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
                                            "What treats fever?<|im_end|>\n<|im_start|>assistant\n")
    alpaca = render_chat(template_style(template_record("medalpaca")), messages[1:])
    assert "### Instruction:\nAnswer this question truthfully." in alpaca and alpaca.endswith("### Response:\n")
    assert "What treats fever?" in alpaca
    assert render_chat(template_style(None), messages) == "Be brief.\nUser: What treats fever?\nAssistant:"
    assert template_style(template_record("medalpaca"), "plain") == "plain"
    with pytest.raises(ValueError, match="template: unknown chat template 'vicuna'"):
        template_style(None, "vicuna")


# --- text streaming -----------------------------------------------------------------------------------


def test_text_stream_holds_back_partial_characters_and_stop_strings():
    from biomed_jax.data.tokenizer import train_bpe

    texts = ["Dose: 5 µg/kg of café au lait, then répéter. ### Next section"] * 20
    tokenizer = train_bpe(texts, vocab_size=270, min_frequency=1)
    ids = tokenizer.encode(texts[0]).ids
    stream = TextStream(tokenizer)
    deltas = [stream.push(i)[0] for i in ids] + [stream.flush()]
    assert "".join(deltas) == tokenizer.decode(ids) and not any("\ufffd" in d for d in deltas)

    stream = TextStream(tokenizer, stop_strings=["\n###", " ### Next"])
    pieces, stopped = [], False
    for i in ids:
        delta, stopped = stream.push(i)
        pieces.append(delta)
        if stopped:
            break
    assert stopped and "".join(pieces) == texts[0][:texts[0].index(" ### Next")]
    assert not any("#" in p for p in pieces)


# --- the command, SIGTERM, the page, a converted model ---------------------------------------------------


def serve_process(run_dir, port, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0",
               PYTHONPATH=helpers.REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "experiments.serve", f"--checkpoint={run_dir}", f"--port={port}",
                             "--config.slots=2", "--config.max_len=256", "--config.warmup=false", *args], cwd=helpers.REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_up(url, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_serve_command_finishes_requests_in_flight_on_sigterm(run_dir):
    refused = helpers.run_cli("experiments.serve", f"--checkpoint={run_dir}", "--host=0.0.0.0", check=False)
    assert refused.returncode != 0 and "API key" in refused.stderr and "Traceback" not in refused.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve_process(run_dir, port)
    try:
        wait_until_up(url, proc)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.completions.create(model="tiny", prompt="w1 w2", max_tokens=200, temperature=0, stream=True)
        first = next(iter(stream))
        proc.send_signal(signal.SIGTERM)
        rest = list(stream)
        assert rest[-1].choices[0].finish_reason == "length"
        text = first.choices[0].text + "".join(c.choices[0].text for c in rest)
        assert len(text.split()) >= 150   # all 200 tokens came (a few may be the end-of-text token's absence)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, stderr = proc.communicate()
    assert "w1 w2" not in stderr    # no request text in the log


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return browser, driver


def test_chat_page_streams_an_answer_in_headless_chromium(live):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium_paths()
    if not (browser and driver_path):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        driver.get(live.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "model").text == "tiny")
        assert "Runs on this machine" in driver.find_element(By.ID, "local").text
        box = driver.find_element(By.ID, "prompt")
        for turn in range(1, 4):   # the page samples: a first token that ends the answer leaves it empty
            box.send_keys(f"w5 w{turn}")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant[data-done='true']")) == turn)
            answer = driver.find_elements(By.CSS_SELECTOR, ".assistant")[-1].text
            if answer:
                break
        assert driver.find_elements(By.CSS_SELECTOR, ".user")[-1].text == f"w5 w{turn}"
        assert answer and answer.split()[0].startswith("w") and "Error" not in answer
        # The page loads nothing from elsewhere: every resource came from this server.
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(name.startswith(live.url) for name in resources)
    finally:
        driver.quit()


def test_converted_hf_gpt2_served_answers_as_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    hf_model = helpers.tiny_hf_model("gpt2", VOCAB)
    hf_dir, run_dir = str(tmp_path / "hf"), str(tmp_path / "run")
    hf_model.save_pretrained(hf_dir, safe_serialization=True)
    helpers.word_tokenizer(VOCAB).save(os.path.join(hf_dir, "tokenizer.json"))
    helpers.run_cli("experiments.convert", "--direction=hf_to_jax", f"--src={hf_dir}", f"--workdir={run_dir}")

    cfg = get_config()
    cfg.slots, cfg.warmup = 2, False
    server = LiveServer(create_app(served(load_run(run_dir), cfg)))
    try:
        prompt = "w3 w17 w9"
        out = server.client().completions.create(model="run", prompt=prompt, max_tokens=10, temperature=0)
        tokenizer = helpers.word_tokenizer(VOCAB)
        ids = torch.tensor([tokenizer.encode(prompt).ids])
        with torch.no_grad():
            hf = hf_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=10, pad_token_id=0, eos_token_id=EOS)
        expected = tokenizer.decode(hf[0, ids.shape[1]:].tolist(), skip_special_tokens=True)
        assert out.choices[0].text.strip() == expected and len(expected.split()) > 1
    finally:
        server.stop()
