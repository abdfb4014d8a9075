"""The synthetic world's options and their defaults (configs read these without importing the generator)."""

from __future__ import annotations

from typing import Any


# Bumped whenever the generator's output for the same options changes; a world written by another
# version is refused rather than silently reused.
GENERATOR_VERSION = 2

WORLD_DEFAULTS: dict[str, Any] = {
    "seed": 0,                       # the one seed every random stream is derived from
    # --- entities ---------------------------------------------------------------------------------
    "genetic_diseases": 80,          # diseases each caused by variants of one gene (one gene per disease)
    "infectious_diseases": 25,       # diseases each caused by one invented organism
    "targeted_drugs": 120,           # drugs that each treat one genetic disease and inhibit one target gene
    "antimicrobials": 40,            # drugs that each treat one infectious disease (no human target)
    "target_genes": 60,              # genes inhibited by the targeted drugs (disjoint from disease genes)
    "adverse_effects": 36,           # how many terms of ADVERSE_EFFECTS the world uses (at most its length)
    "adverse_effects_per_drug": 1,   # characteristic adverse effects of each drug
    # --- corpus -----------------------------------------------------------------------------------
    "docs_per_fact": 36,             # every fact is stated in at least this many abstracts
    "structured_fraction": 0.5,      # abstracts with BACKGROUND/METHODS/RESULTS/CONCLUSIONS sections
    "records_per_file": 2000,        # PubmedArticle records per world_abstracts_NNNN.xml.gz
    "records_without_abstract": 12,  # comments and errata with no abstract (readers skip and count them)
    "exact_duplicates": 8,           # abstracts republished verbatim under another PMID
    "near_duplicates": 8,            # abstracts republished with a few words changed (5-gram Jaccard > 0.8)
    "guidelines_per_disease": 3,     # guideline documents per disease, from different invented societies
    "replay_docs": 1200,             # general-domain (non-biomedical) documents for replay
    # --- fact split -------------------------------------------------------------------------------
    "dev_fact_fraction": 0.1,        # of each relation's facts, asked about only in dev questions
    "test_fact_fraction": 0.2,       # of each relation's facts, asked about only in test questions
    # --- questions --------------------------------------------------------------------------------
    "medqa_questions_per_fact": 3,   # MedQA-style 4-option questions per fact (different styles)
    "pubmedqa_items": 1000,          # ori_pqal.json items (test ids plus the train pool)
    "pubmedqa_test_items": 500,      # of which in test_ground_truth.json (about test facts only)
    "pubmedqa_yes_fraction": 0.45,   # label mix in both parts; "no" takes what yes and maybe leave
    "pubmedqa_maybe_fraction": 0.15,
    "medalpaca_per_fact": 2,         # instruction pairs per train fact
}

# A world small enough for `make quickstart` (a tiny model pretrains on it in minutes on 2 CPU cores).
QUICKSTART_WORLD: dict[str, Any] = {
    "genetic_diseases": 16, "infectious_diseases": 8, "targeted_drugs": 24, "antimicrobials": 12,
    "target_genes": 12, "adverse_effects": 16, "docs_per_fact": 16, "guidelines_per_disease": 1,
    "replay_docs": 150, "records_without_abstract": 6, "exact_duplicates": 4, "near_duplicates": 4,
    "pubmedqa_items": 300, "pubmedqa_test_items": 150,
}
