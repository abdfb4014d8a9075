"""Domain byte-level BPE: exact vocab, eos, byte-exact round trips, loading errors, fertility, the CLI."""

from __future__ import annotations

import json
import os
import random
import textwrap

import ml_collections
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from biomed_jax.data.readers import Document
from biomed_jax.data.tokenizer import (BIOMEDICAL_TERMS, EOS_TOKEN, build_or_load, byte_level_bpe,
                                       eos_token_id, fertility_report, load_tokenizer, save_tokenizer,
                                       term_pieces, train_bpe)
from tests.helpers import run_cli

_SYLLABLES = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "fa", "gu", "hi", "jo", "be", "zu", "xo"]
_DOMAIN_WORD = "acetylcholinesterase"


def _corpus(n_docs: int = 300, words: int = 100, seed: int = 0) -> list[str]:
    """Made-up words from syllables (many pairs to merge) with one domain word at ~5% of positions."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(2000)]
    return [" ".join(_DOMAIN_WORD if rng.random() < 0.05 else rng.choice(vocab) for _ in range(words)) + "."
            for _ in range(n_docs)]


@pytest.fixture(scope="module")
def trained() -> Tokenizer:
    return train_bpe(_corpus(), vocab_size=500)


def test_vocab_size_exact_and_eos_special(trained):
    assert trained.get_vocab_size() == 500
    eos = eos_token_id(trained)
    assert trained.id_to_token(eos) == EOS_TOKEN
    # The eos string in text is the eos token, never split into pieces.
    assert trained.encode("a" + EOS_TOKEN + "b").ids.count(eos) == 1
    # Every byte is in the vocabulary: no unknown token is ever needed.
    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(trained.get_vocab())


def test_round_trip_is_byte_exact_for_arbitrary_unicode(trained):
    texts = ["  leading and trailing spaces  ", "Ünïcödé e\u0301 ﬁ 世界 🧬\u200d Ελληνικά",
             "tabs\tand\r\nCRLF\n\n\npara", "\x00\x07 control", "x" * 50 + " " + _DOMAIN_WORD * 3,
             f"two docs{EOS_TOKEN}joined", ""]
    for text in texts:
        ids = trained.encode(text).ids
        assert trained.decode(ids, skip_special_tokens=False) == text


def test_frequent_domain_word_is_one_token(trained):
    assert term_pieces(trained, _DOMAIN_WORD) == [" " + _DOMAIN_WORD]
    assert len(term_pieces(trained, "thrombocytopenia")) > 5   # never seen: split into bytes/pieces


def test_small_corpus_gives_a_smaller_vocab_not_an_error():
    small = train_bpe(_corpus(n_docs=3, words=30), vocab_size=5000)
    assert 257 < small.get_vocab_size() < 5000
    # With min_frequency above any pair count, no merges: bytes + eos only.
    assert train_bpe(["abc abd"], vocab_size=5000, min_frequency=100).get_vocab_size() == 257


def test_training_is_deterministic():
    texts = _corpus(n_docs=100)
    assert train_bpe(texts, 400).to_str() == train_bpe(texts, 400).to_str()


def test_train_errors_name_the_field():
    with pytest.raises(ValueError, match="tokenizer.vocab_size"):
        train_bpe(["text"], vocab_size=100)
    with pytest.raises(ValueError, match="no training text"):
        train_bpe(iter([]), vocab_size=300)
    with pytest.raises(ValueError, match="no training text"):
        train_bpe(["", ""], vocab_size=300)


def test_save_and_load_file_or_folder(trained, tmp_path):
    path = save_tokenizer(trained, str(tmp_path / "tok" / "tokenizer.json"))
    assert os.listdir(tmp_path / "tok") == ["tokenizer.json"]   # no temp file left behind
    for where in (path, str(tmp_path / "tok")):
        loaded = load_tokenizer(where)
        assert loaded.encode("acetylcholinesterase tu").ids == trained.encode("acetylcholinesterase tu").ids


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json.*train_tokenizer"):
        load_tokenizer(str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        load_tokenizer(str(tmp_path))                             # a folder without one
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_tokenizer(str(bad))


def test_gpt2_style_vocab_and_merges_folder(tmp_path):
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({"ab": 256, EOS_TOKEN: 257})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.encode("ab" + EOS_TOKEN).ids == [256, 257]
    assert eos_token_id(tokenizer) == 257


def test_eos_token_id_missing_names_token_and_file(trained):
    with pytest.raises(ValueError, match=r"'</s>'.*'/x/tokenizer.json'"):
        eos_token_id(trained, "</s>", "/x/tokenizer.json")


def _hand_made_tokenizer() -> Tokenizer:
    """Byte-level BPE with six merges: "cat", " cat" (as "Ġcat") and " dog" are single tokens; "dog"
    without a space before it is three, and so is every other word's byte count."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({"ca": 256, "cat": 257, "Ġcat": 258, "Ġd": 259, "Ġdo": 260, "Ġdog": 261, EOS_TOKEN: 262})
    tokenizer = byte_level_bpe()
    tokenizer.model = models.BPE(vocab=vocab, merges=[("c", "a"), ("ca", "t"), ("Ġ", "cat"), ("Ġ", "d"),
                                                      ("Ġd", "o"), ("Ġdo", "g")])
    tokenizer.add_special_tokens([EOS_TOKEN])
    return tokenizer


def test_fertility_numbers_on_a_hand_checkable_case():
    tokenizer = _hand_made_tokenizer()
    # "cat cat dog" -> [cat][Ġcat][Ġdog]; "dog" -> [d][o][g]: 4 words, 14 chars, 6 tokens.
    # Words are counted as they appear mid-sentence (" dog" is one token), so all 4 are single tokens.
    report = fertility_report(tokenizer, ["cat cat dog", "dog", ""], ["cat", "cod", "cat", " "])
    assert report["held_out"] == {"docs": 2, "words": 4, "chars": 14, "tokens": 6, "single_token_words": 4}
    summary = report["summary"]
    assert summary["tokens_per_word"] == 1.5
    assert summary["chars_per_token"] == 2.3333
    assert summary["single_token_word_fraction"] == 1.0
    assert report["terms"] == [{"term": "cat", "tokens": 1, "pieces": [" cat"]},
                               {"term": "cod", "tokens": 4, "pieces": [" ", "c", "o", "d"]}]
    assert (summary["terms"], summary["mean_tokens_per_term"], summary["single_token_terms"]) == (2, 2.5, 1)
    assert summary["vocab_size"] == 263
    partial = fertility_report(tokenizer, ["cat fish"], [])
    assert partial["held_out"]["single_token_words"] == 1 and partial["summary"]["mean_tokens_per_term"] is None


def test_fertility_without_held_out_text():
    report = fertility_report(_hand_made_tokenizer(), [], BIOMEDICAL_TERMS)
    assert report["summary"]["tokens_per_word"] is None and report["held_out"]["docs"] == 0
    assert report["summary"]["terms"] == len(BIOMEDICAL_TERMS) >= 20


# ----------------------------------------------------------------------------------------------------
# build_or_load and the CLI


class _FakeCorpus:
    """What build_or_load needs from a CleanCorpus: iter_documents(split), the report and the settings."""

    def __init__(self, texts: list[str], manual_dir: str = "", seed: int = 0):
        self.texts = texts
        self.report = {"manual_dir": manual_dir}
        self.settings = {"seed": seed, "clean": {"min_words": 5}}

    def iter_documents(self, split):
        for i, text in enumerate(self.texts):
            if (split == "validation") == (i % 10 == 0):
                yield Document(id=str(i), text=text, title="", source="s")


def _data_cfg(**tokenizer) -> ml_collections.ConfigDict:
    section = dict(path="", vocab_size=400, min_frequency=2, eos_token=EOS_TOKEN, max_train_docs=0,
                   held_out_docs=5, terms_file="")
    section.update(tokenizer)
    return ml_collections.ConfigDict(dict(manual_dir="", tokenizer=section))


def test_build_or_load_trains_reuses_and_refuses_stale(tmp_path):
    (tmp_path / "terms.txt").write_text("# world terms\nkalomi\n\nacetylcholinesterase\n")
    corpus = _FakeCorpus(_corpus(n_docs=200), manual_dir=str(tmp_path))
    out = str(tmp_path / "out")
    tokenizer, path, report = build_or_load(_data_cfg(), corpus, out)
    assert path == os.path.join(out, "tokenizer.json") and tokenizer.get_vocab_size() == 400
    assert report["tokenizer"]["training"]["status"] == "trained"
    assert report["held_out"]["docs"] == 5
    terms = [row["term"] for row in report["terms"]]
    assert terms[:len(BIOMEDICAL_TERMS)] == list(BIOMEDICAL_TERMS) and terms[-1] == "kalomi"
    assert json.load(open(os.path.join(out, "fertility.json"))) == report

    mtime = os.path.getmtime(path)
    _, _, again = build_or_load(_data_cfg(), corpus, out)
    assert again["tokenizer"]["training"]["status"] == "reused" and os.path.getmtime(path) == mtime
    with pytest.raises(FileExistsError, match="tokenizer.vocab_size.*overwrite"):
        build_or_load(_data_cfg(vocab_size=300), corpus, out)
    with pytest.raises(FileExistsError, match="the cleaned corpus's seed"):
        build_or_load(_data_cfg(), _FakeCorpus(corpus.texts, seed=1), out)
    retrained, _, _ = build_or_load(_data_cfg(vocab_size=300), corpus, out, overwrite=True)
    assert retrained.get_vocab_size() == 300
    os.remove(os.path.join(out, "tokenizer_training.json"))
    with pytest.raises(FileExistsError, match="how it was trained"):
        build_or_load(_data_cfg(vocab_size=300), corpus, out)

    # max_train_docs limits the training text: 2 documents cannot make 400 tokens.
    few, _, _ = build_or_load(_data_cfg(max_train_docs=2), corpus, str(tmp_path / "few"))
    assert few.get_vocab_size() < 400


def test_build_or_load_config_errors(tmp_path):
    corpus = _FakeCorpus(_corpus(n_docs=20))
    with pytest.raises(FileNotFoundError, match="tokenizer.path"):
        build_or_load(_data_cfg(path=str(tmp_path / "nope.json")), corpus, str(tmp_path))
    with pytest.raises(ValueError, match="tokenizer.vocab_size"):
        build_or_load(_data_cfg(vocab_size=10), corpus, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="tokenizer.terms_file"):
        build_or_load(_data_cfg(terms_file=str(tmp_path / "t.txt")), corpus, str(tmp_path))
    with pytest.raises(ValueError, match="no training text"):
        build_or_load(_data_cfg(), _FakeCorpus([]), str(tmp_path))


_TINY_CONFIG = '''
import ml_collections

def get_config(arg=""):
    return ml_collections.ConfigDict(dict(
        name="tiny", seed=0, manual_dir={manual!r}, generate_world=False,
        sources=dict(notes=dict(kind="jsonl", paths="notes/*.jsonl", epochs=1.0, fraction=0.0)),
        clean=dict(unicode_form="NFKC", min_chars=20, min_words=5, exact_dedup=True, near_dedup=True,
                   jaccard_threshold=0.8, num_perm=64, shingle_words=5),
        tokenizer=dict(path="", vocab_size=350, min_frequency=2, eos_token="<|endoftext|>",
                       max_train_docs=0, held_out_docs=20, terms_file=""),
        split=dict(validation_fraction=0.2),
        build=dict(num_workers=1, docs_per_shard=1000),
    ))
'''


def test_cli_trains_then_skips_then_loads_a_given_tokenizer(tmp_path):
    manual = tmp_path / "manual"
    (manual / "notes").mkdir(parents=True)
    texts = _corpus(n_docs=150, words=60, seed=3)
    with open(manual / "notes" / "a.jsonl", "w") as f:
        for i, text in enumerate(texts + texts[:10]):          # 10 exact duplicates for the cleaner
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    (manual / "terms.txt").write_text("kalomi\n")
    config = tmp_path / "tiny_data.py"
    config.write_text(textwrap.dedent(_TINY_CONFIG.format(manual=str(manual))))
    workdir = tmp_path / "work"

    proc = run_cli("experiments.train_tokenizer", f"--config={config}", f"--workdir={workdir}")
    assert "kept 150 of 160 documents" in proc.stdout
    assert "vocab size 350" in proc.stdout and "tokens/word" in proc.stdout
    tokenizer = load_tokenizer(str(workdir / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 350
    report = json.load(open(workdir / "fertility.json"))
    assert report["held_out"]["docs"] == 20 and report["terms"][-1]["term"] == "kalomi"
    assert report["summary"]["tokens_per_word"] > 1.0
    assert json.load(open(workdir / "config.json"))["tokenizer"]["vocab_size"] == 350

    again = run_cli("experiments.train_tokenizer", f"--config={config}", f"--workdir={workdir}")
    assert "skipped training" in again.stdout

    loaded_dir = tmp_path / "loaded"
    given = run_cli("experiments.train_tokenizer", f"--config={config}", f"--workdir={loaded_dir}",
                    f"--config.tokenizer.path={workdir / 'tokenizer.json'}")
    assert "nothing trained" in given.stdout
    assert not (loaded_dir / "tokenizer.json").exists() and (loaded_dir / "fertility.json").exists()

    bad = run_cli("experiments.train_tokenizer", f"--config={config}", f"--workdir={tmp_path / 'bad'}",
                  f"--config.tokenizer.path={tmp_path / 'none.json'}", check=False)
    assert bad.returncode != 0 and "tokenizer.path" in bad.stderr and "none.json" in bad.stderr
