"""Cleaning and dedup: normalisation, the filters in order, shared cross-source index, exact report counts."""

from __future__ import annotations

import json
import os
import random

import ml_collections
import pytest

from biomed_jax.data.clean import Cleaner, dedup_key, normalize_text
from biomed_jax.data.readers import Document

_RNG = random.Random(1234)
_VOCAB = sorted({"".join(_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_RNG.randint(3, 10)))
                 for _ in range(3000)})


def _long_text(seed: int, words: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(words)) + "."


def _with_words_changed(text: str, positions: tuple[int, ...]) -> str:
    words = text.split()
    for position in positions:
        words[position] = "zzchanged"
    return " ".join(words)


def _doc(text: str, doc_id: str = "1", source: str = "abstracts", title: str = "") -> Document:
    return Document(id=doc_id, text=text, title=title, source=source)


def _cleaner(**overrides) -> Cleaner:
    options = dict(min_chars=0, min_words=0, jaccard_threshold=0.8)
    options.update(overrides)
    return Cleaner(options, seed=0)


# ----------------------------------------------------------------------------------------------------
# normalize_text


def test_nfkc_folds_full_width_letters_ligatures_and_superscripts():
    assert normalize_text("Ｉｌ-６ ﬁbrosis ﬂow m²") == "Il-6 fibrosis flow m2"
    # NFC keeps compatibility characters but composes e + combining acute.
    assert normalize_text("ﬁ cafe\u0301", "NFC") == "ﬁ caf\u00e9"
    assert normalize_text("ﬁ", "none") == "ﬁ"


def test_control_and_format_characters_removed_paragraphs_kept():
    raw = ("  Title\x00 line\r\nsecond\x07 line\u200b here\u00ad.\r\n\r\n\r\n\r\n"
           "Next\tparagraph\u00a0\u00a0with   spaces \n\n  last\u2028line\ufeff  ")
    assert normalize_text(raw) == "Title line\nsecond line here.\n\nNext paragraph with spaces\n\nlast\nline"


def test_replacement_runs_and_lone_surrogates_dropped():
    assert normalize_text("caf\ufffd\ufffd au lait \ud800ok") == "caf au lait ok"
    assert normalize_text("\ufffd\ufffd\ufffd") == ""
    # What remains is encodable: no surrogates survive.
    normalize_text("x\udc80y\ud83d").encode("utf-8")


def test_plain_text_unchanged_and_zwj_kept():
    text = "Acetylcholinesterase inhibitors (AChE-I) reduce p < 0.05 events.\nSecond line."
    assert normalize_text(text) == text
    assert normalize_text("\U0001F468\u200d\u2695") == "\U0001F468\u200d\u2695"


def test_unknown_unicode_form_raises():
    with pytest.raises(ValueError, match="unicode_form"):
        normalize_text("x", "NFX")


# ----------------------------------------------------------------------------------------------------
# Cleaner filters and the keeper rule


def _kept_ids(cleaner: Cleaner, docs) -> list[str]:
    return [doc.id for doc in cleaner.clean(docs)]


def test_exact_duplicate_dropped_case_and_whitespace_insensitively_keeping_the_smallest_id():
    docs = [_doc("ASPIRIN reduces platelet\n\naggregation.", "b"), _doc("Aspirin reduces   platelet aggregation.", "a"),
            _doc("Aspirin reduces platelet aggregation!", "c")]
    cleaner = _cleaner(near_dedup=False)
    assert _kept_ids(cleaner, docs) == ["a", "c"]     # "a" is kept although "b" was read first
    report = cleaner.report()
    assert report["total"]["exact_duplicate"] == 1 and report["total"]["kept"] == 2
    assert report["examples"]["exact_duplicate"] == [
        {"source": "abstracts", "id": "b", "duplicate_of": "abstracts/a"}]
    assert dedup_key("A  b\nc") == dedup_key("a b c") != dedup_key("a b d")


def test_exact_dedup_can_be_turned_off():
    cleaner = _cleaner(exact_dedup=False, near_dedup=False)
    assert _kept_ids(cleaner, [_doc("same text here", "a"), _doc("same text here", "b")]) == ["a", "b"]


def test_near_duplicate_dropped_at_0_8_kept_at_0_99_and_different_doc_kept():
    original = _long_text(seed=1)
    near = _with_words_changed(original, (100, 200))    # true Jaccard of 5-word shingles ~ 0.93
    other = _long_text(seed=2)
    docs = [_doc(near, "b-near"), _doc(original, "a-orig"), _doc(other, "c-other")]

    strict = _cleaner(jaccard_threshold=0.8)
    assert _kept_ids(strict, docs) == ["a-orig", "c-other"]   # "b-near" ranks after "a-orig": it goes
    assert strict.report()["total"]["near_duplicate"] == 1
    assert strict.report()["examples"]["near_duplicate"][0]["duplicate_of"] == "abstracts/a-orig"
    assert _kept_ids(_cleaner(jaccard_threshold=0.99), docs) == ["b-near", "a-orig", "c-other"]
    assert _kept_ids(_cleaner(near_dedup=False), docs) == ["b-near", "a-orig", "c-other"]


def test_threshold_is_sharp_pairs_above_all_dropped_pairs_well_below_all_kept():
    """LSH banding alone drops a pair at J=0.9 only ~93% of the time at threshold 0.8; with candidates
    verified by estimated Jaccard every such pair goes, and pairs at J~0.6 all stay."""
    docs = []
    for seed in range(100, 120):
        original = _long_text(seed)
        docs.append(_doc(original, f"o{seed}"))
        docs.append(_doc(_with_words_changed(original, (60, 150, 240)), f"x{seed}"))       # J = 281/311 ~ 0.90
        docs.append(_doc(_with_words_changed(original, tuple(range(10, 300, 20))), f"f{seed}"))  # J ~ 0.60
    cleaner = _cleaner(jaccard_threshold=0.8)
    kept = set(_kept_ids(cleaner, docs))
    assert kept == {f"{kind}{seed}" for kind in "of" for seed in range(100, 120)}
    report = cleaner.report()
    assert report["total"]["near_duplicate"] == 20
    assert report["lsh"]["candidates"]["checked"] >= 20


def test_keeper_rule_does_not_depend_on_reading_order():
    """The same documents in any order (a Beam pipeline's workers finish in any order) keep the same
    ones, ranked by (source priority, id): the config's first source wins across sources."""
    a, b = _long_text(seed=30), _long_text(seed=31)
    docs = [_doc(a, "5"), _doc(a.upper(), "2", source="replay"), _doc(_with_words_changed(a, (40,)), "1"),
            _doc(b, "9", source="replay"), _doc(_with_words_changed(b, (7, 90)), "3"), _doc(_long_text(32), "4")]
    outcomes = []
    for order in (docs, docs[::-1], docs[2:] + docs[:2]):
        cleaner = Cleaner(dict(min_chars=0, min_words=0), seed=0, priorities={"abstracts": 0, "replay": 1})
        outcomes.append((sorted(_kept_ids(cleaner, order)), cleaner.report()))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    # "1" (abstracts) outranks its exact and near copies; "3" (abstracts) outranks replay's "9".
    assert outcomes[0][0] == ["1", "3", "4"]


def test_estimated_jaccard_tracks_the_true_one():
    cleaner = _cleaner()
    original = _long_text(seed=3)
    changed = _with_words_changed(original, tuple(range(10, 300, 30)))   # 10 words: J ~ 0.71
    estimate = cleaner.minhash(original).jaccard(cleaner.minhash(changed))
    assert 0.6 < estimate < 0.82
    assert cleaner.minhash(original).jaccard(cleaner.minhash(_long_text(seed=4))) < 0.1


def test_too_short_by_chars_and_by_words():
    cleaner = _cleaner(min_chars=20, min_words=4, near_dedup=False)
    docs = [_doc("short text", "chars"), _doc("supercalifragilistic expialidocious", "words"),
            _doc("four words long enough here", "ok")]
    assert _kept_ids(cleaner, docs) == ["ok"]
    assert cleaner.report()["total"]["too_short"] == 2


def test_cleaned_document_is_normalised_and_keeps_fields():
    cleaner = _cleaner()
    doc = Document(id="7", text="ﬁbrosis\x00  of the ｌｉｖｅｒ", title="Ｔｉｔｌｅ\u200b", source="papers",
                   meta={"year": 2001})
    [out] = cleaner.clean([doc])
    assert (out.id, out.text, out.title, out.source, out.meta) == (
        "7", "fibrosis of the liver", "Title", "papers", {"year": 2001})


def test_report_counts_exact_per_source_and_cross_source_duplicates():
    cleaner = _cleaner(min_chars=30, min_words=5)
    a, b = _long_text(seed=10), _long_text(seed=11)
    stream = [
        (_doc(a, "a1"), True),
        (_doc("   \x00\u200b  ", "blank"), False),                        # empty after cleaning
        (_doc("too short", "short"), False),                                # too_short
        (_doc(a.upper(), "a1-upper"), False),                               # exact duplicate
        (_doc(_with_words_changed(a, (50,)), "a1-near"), False),            # near duplicate
        (_doc(b, "g1", source="guidelines"), True),
        (_doc(a, "g2", source="guidelines"), False),                       # exact, across sources
        (_doc(_with_words_changed(b, (7, 150)), "r1", source="replay"), False),  # near, across sources
        (_doc(_long_text(seed=12), "r2", source="replay"), True),
    ]
    assert _kept_ids(cleaner, [doc for doc, _ in stream]) == [doc.id for doc, kept in stream if kept]
    report = json.loads(json.dumps(cleaner.report()))
    assert report["total"] == dict(seen=9, kept=3, empty=1, too_short=1, exact_duplicate=2, near_duplicate=2)
    assert report["sources"] == {
        "abstracts": dict(seen=5, kept=1, empty=1, too_short=1, exact_duplicate=1, near_duplicate=1),
        "guidelines": dict(seen=2, kept=1, empty=0, too_short=0, exact_duplicate=1, near_duplicate=0),
        "replay": dict(seen=2, kept=1, empty=0, too_short=0, exact_duplicate=0, near_duplicate=1),
    }
    assert report["examples"]["exact_duplicate"][1] == {"source": "guidelines", "id": "g2",
                                                        "duplicate_of": "abstracts/a1"}
    assert report["examples"]["near_duplicate"][1]["duplicate_of"] == "guidelines/g1"
    assert report["options"]["jaccard_threshold"] == 0.8 and report["options"]["min_chars"] == 30
    assert report["chars"]["kept"] == len(a) + len(b) + len(_long_text(seed=12))


def test_same_seed_same_decisions():
    texts = [_long_text(seed=s) for s in range(5)] + [_with_words_changed(_long_text(seed=s), (9, 99, 199))
                                                      for s in range(5)]
    outcomes = [_kept_ids(_cleaner(jaccard_threshold=0.85), [_doc(t, str(i)) for i, t in enumerate(texts)])
                for _ in range(2)]
    assert outcomes[0] == outcomes[1]


def test_accepts_a_config_dict_section():
    options = ml_collections.ConfigDict(dict(unicode_form="NFC", min_chars=1, min_words=1, exact_dedup=True,
                                             near_dedup=True, jaccard_threshold=0.7, num_perm=64,
                                             shingle_words=3))
    report = Cleaner(options, seed=3).report()
    assert report["options"]["num_perm"] == 64 and report["seed"] == 3


@pytest.mark.parametrize("options, field", [
    ({"jaccard_threshold": 1.5}, "clean.jaccard_threshold"),
    ({"jaccard_threshold": 0.0}, "clean.jaccard_threshold"),
    ({"min_chars": -1}, "clean.min_chars"),
    ({"min_words": 2.5}, "clean.min_words"),
    ({"num_perm": 1}, "clean.num_perm"),
    ({"shingle_words": 0}, "clean.shingle_words"),
    ({"unicode_form": "NFX"}, "clean.unicode_form"),
    ({"near_dedup": "yes"}, "clean.near_dedup"),
    ({"min_lenght": 3}, "clean.min_lenght"),
])
def test_bad_options_raise_naming_the_field(options, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        Cleaner(options)


# ----------------------------------------------------------------------------------------------------
# Real PubMed: the truncated 2023 baseline and its repaired copy hold the same records.

_SHARED_PUBMED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                              "data", "pubmed", "pubmed23n0001_truncated")


@pytest.mark.skipif(not os.path.isdir(_SHARED_PUBMED),
                    reason=f"real data samples not found at {_SHARED_PUBMED} (only in the shared workspace)")
def test_real_pubmed_copies_are_exact_duplicates_across_sources():
    from biomed_jax.data.readers import read_documents

    cleaner = Cleaner(dict(min_chars=200, min_words=20), seed=0, priorities={"baseline": 0, "repaired": 1})
    docs = []
    for source, name in (("baseline", "pubmed23n0001.xml.gz"), ("repaired", "pubmed23n0001_first266_complete_records.xml")):
        for doc in read_documents("pubmed_xml", os.path.join(_SHARED_PUBMED, name)):
            doc.source = source
            docs.append(doc)
    kept = cleaner.clean(docs)
    report = cleaner.report()
    baseline = report["sources"]["baseline"]
    assert baseline["seen"] > 100 and baseline["exact_duplicate"] == baseline["near_duplicate"] == 0
    assert report["sources"]["repaired"]["seen"] == report["sources"]["repaired"]["exact_duplicate"]
    assert {doc.source for doc in kept} == {"baseline"}
    assert all("\x00" not in doc.text and doc.text == doc.text.strip() for doc in kept)
