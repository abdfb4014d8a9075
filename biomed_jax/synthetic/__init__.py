"""The embedded default corpus: a seeded, invented biomedical world, written as the real formats.

Invented drugs, genes, diseases and organisms are tied by a moderate number of facts (drug treats
disease, drug inhibits gene, gene variant causes disease, drug has an adverse effect, organism causes
disease). Every fact is stated many times, in varied phrasing, across PubMed-style abstracts (NLM XML,
so the real reader runs) and guideline-like JSONL; held-out questions ask about them in MedQA and
PubMedQA formats, and instruction pairs in Alpaca format. Facts, not questions, are split into
train/dev/test, so a model can only answer a test question with what pretraining on the corpus taught
it: the fine-tuning questions teach the format, never the test facts.

Everything is a pure function of the options: one numpy Generator stream per part, derived from
`seed`, and deterministic gzip headers, so the same options give byte-identical files.

The package: `defaults` (the options; configs read them without importing the rest), `vocabulary` and
`facts` (names and the fact graph), `phrasing` (how a fact is said, and `Text`: templates are data, and a
template's random numbers are drawn only when it is chosen), one module per released format (`abstracts`
with its templates in `abstract_templates`, and `pubmed`, `guidelines`, `replay`, `questions`: MedQA,
PubMedQA, MedAlpaca), `writing` (byte-stable writers) and `generate` (generate_world).
"""
