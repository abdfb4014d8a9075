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
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
from typing import Any, Callable, Mapping, Sequence
from xml.sax.saxutils import escape as _xml_escape

import numpy as np

from biomed_jax.run_dir import differing_keys, read_json

# Bumped whenever the generator's output for the same options changes; a world written by another
# version is refused rather than silently reused.
GENERATOR_VERSION = 1

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

RELATIONS = ("treats", "inhibits", "causes", "adverse_effect", "infects")

# Real clinical vocabulary (not invented): characteristic adverse effects, and presenting symptoms.
# No term is a substring of another, so a text search for one never finds another.
ADVERSE_EFFECTS = (
    "hepatotoxicity", "neutropenia", "QT prolongation", "peripheral neuropathy", "hyperkalemia",
    "nephrotoxicity", "ototoxicity", "photosensitivity", "alopecia", "pancreatitis", "hypothyroidism",
    "interstitial lung disease", "lactic acidosis", "angioedema", "thrombocytopenia", "agranulocytosis",
    "Stevens-Johnson syndrome", "bradycardia", "hyperglycemia", "hypoglycemia", "dry cough",
    "tendon rupture", "gingival hyperplasia", "osteonecrosis of the jaw", "cardiomyopathy",
    "hemorrhagic cystitis", "pulmonary fibrosis", "retinal toxicity", "tinnitus", "hypomagnesemia",
    "rhabdomyolysis", "drug-induced lupus", "hemolytic anemia", "methemoglobinemia",
    "hypertriglyceridemia", "nail dystrophy")
SYMPTOMS = (
    "fatigue", "fever", "joint pain", "muscle weakness", "recurrent headaches", "chronic cough",
    "weight loss", "abdominal pain", "skin nodules", "night sweats", "blurred vision",
    "shortness of breath", "palpitations", "bone pain", "easy bruising", "hearing loss", "jaundice",
    "leg swelling", "chest pain", "dizziness", "tremor", "hair thinning", "dry skin",
    "frequent urination", "excessive thirst", "hoarseness", "difficulty swallowing", "back pain",
    "morning stiffness", "recurrent infections", "nosebleeds", "muscle cramps", "numbness in the hands",
    "facial flushing", "vomiting", "bloody diarrhea", "productive cough", "swollen lymph nodes",
    "photophobia", "neck stiffness", "itchy rash", "joint swelling")
ORGANS = ("liver", "kidneys", "heart", "skin", "lungs", "peripheral nerves", "joints", "eyes",
          "bone marrow", "skeletal muscle", "intestine", "thyroid", "brain", "blood vessels")
GENE_FAMILIES = {  # target-gene family -> (description, drug-name suffixes of its inhibitors)
    "kinase": ("a protein kinase", ("tinib", "ciclib", "rafenib")),
    "receptor": ("a cell-surface receptor", ("zumab", "ximab", "lumab")),
    "enzyme": ("a metabolic enzyme", ("stat", "pristat", "dustat")),
    "channel": ("an ion channel", ("sartan", "olol", "pitant")),
}
ANTIMICROBIAL_SUFFIXES = ("cillin", "mycin", "floxacin", "conazole", "cycline", "penem")
PROCESSES = ("cell proliferation", "inflammatory signalling", "lipid metabolism", "tissue fibrosis",
             "immune cell activation", "angiogenesis", "ion transport", "bone remodelling",
             "insulin signalling", "programmed cell death")
GENE_FUNCTIONS = ("a structural protein of the extracellular matrix", "a mitochondrial enzyme",
                  "a lysosomal enzyme", "a transcription factor", "a membrane transporter",
                  "a DNA repair protein", "a cilia-associated protein", "a sarcomere protein")
INHERITANCE = ("autosomal dominant", "autosomal recessive", "X-linked")
TRANSMISSION = ("by contaminated water", "through tick bites", "by respiratory droplets",
                "through contact with infected livestock", "by mosquito bites", "through undercooked food")

# --- invented names -----------------------------------------------------------------------------------
# Names are built from open syllables (onset + vowel) with type-specific endings. The grammar is
# finite, so every real word it could produce can be listed: _NOT_NAMES holds the words of a large
# American English dictionary (wamerican-large) that match any of the name patterns below, and the
# generator never emits them. Recompute it whenever the grammar changes (see _word_patterns).
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
          "br", "dr", "gr", "kr", "pr", "tr", "st", "th")
VOWELS = ("a", "e", "i", "o", "u")
EPONYM_FINALS = ("v", "x", "k", "z")   # endings almost no English word of this shape has
LINKS = ("", "r", "l", "n", "s")
DISEASE_WORD_ENDINGS = ("itis", "osis", "opathy", "emia")
INFECTION_WORD_ENDINGS = ("iasis", "ellosis")
GENUS_ENDINGS = ("bacter", "coccus", "ella", "monas", "myces", "spora", "plasma", "vibrio")
SPECIES_ENDINGS = ("ensis", "ii", "ata", "icus", "oides", "ophila")
GENE_CONSONANTS = "BCDFGHKLMNPRSTVXZ"

_NOT_NAMES = frozenset("""
balata batik belostok benelux borak borax botox brasov derek deriv desex detox drosophila durex fedex felix
filariasis filofax firebox firefox fusebox fustanella galata genii gerenuk godunov gomez gonococcus gopak
granicus gustav kapok kazak kirov kodak kodok komatik kopek kulak kutuzov laminitis lastex latex limax linux
lomax lopez luella lunik lurex matrix megrez melanosis menelik merak mogilev molotov mubarak munoz murex muzak
nabokov nanak nasik naturopathy negev nodoz nunatak nunez paella paradox penicillin perak perez prefix premix
pretax prolix propranolol prothorax prunella radix ramirez reata redux refix regex relax remex remix retinitis
riata rolex rolodex romanov rosella rostov rubik rurik sabik saratov savaii serenata siderosis sinusitis
sonata storax tabriz taluk telex testatrix tetracycline thorax timex topaz torii tugrik tularemia vaduz
vaginitis varix veii velez viii vostok
""".split())


def _word_patterns() -> dict[str, str]:
    """Regexes (lower case) of every word the name grammar can produce; matched against a dictionary
    at development time to fill _NOT_NAMES, e.g.
    `[w for w in words if any(re.fullmatch(p, w) for p in _word_patterns().values())]`."""
    syl = f"(?:{'|'.join(sorted(ONSETS, key=len, reverse=True))})(?:{'|'.join(VOWELS)})"
    link = f"(?:{'|'.join(filter(None, LINKS))})?"
    suffixes = [s for _, sufs in GENE_FAMILIES.values() for s in sufs] + list(ANTIMICROBIAL_SUFFIXES)
    alt = lambda items: "(?:" + "|".join(items) + ")"  # noqa: E731
    return {
        "eponym": f"(?:{syl}){{2,3}}{alt(EPONYM_FINALS)}",
        "drug": f"(?:{syl}){{2}}{link}{alt(suffixes)}",
        "disease_word": f"(?:{syl}){{2}}{link}{alt(DISEASE_WORD_ENDINGS + INFECTION_WORD_ENDINGS)}",
        "genus": f"(?:{syl}){{1,2}}{link}{alt(GENUS_ENDINGS)}",
        "species": f"(?:{syl}){{1,2}}{link}{alt(SPECIES_ENDINGS)}",
    }


class _Names:
    """Draws unique invented words: no word is produced twice across all types, none is in _NOT_NAMES."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set(_NOT_NAMES)

    def _pick(self, seq: Sequence[str]) -> str:
        return seq[int(self.rng.integers(len(seq)))]

    def _syllables(self, n: int) -> str:
        return "".join(self._pick(ONSETS) + self._pick(VOWELS) for _ in range(n))

    def _unique(self, make: Callable[[], str]) -> str:
        for _ in range(10_000):
            word = make()
            if word.lower() not in self.used:
                self.used.add(word.lower())
                return word
        raise RuntimeError("ran out of invented names; the world is too large for the name grammar")

    def eponym(self) -> str:
        return self._unique(lambda: (self._syllables(2 + int(self.rng.random() < 0.4))
                                     + self._pick(EPONYM_FINALS)).capitalize())

    def drug(self, suffixes: Sequence[str]) -> str:
        return self._unique(lambda: (self._syllables(2) + self._pick(LINKS) + self._pick(suffixes)).capitalize())

    def disease_word(self, endings: Sequence[str]) -> str:
        return self._unique(lambda: (self._syllables(2) + self._pick(LINKS) + self._pick(endings)).capitalize())

    def organism(self) -> str:
        genus = self._unique(lambda: (self._syllables(1 + int(self.rng.random() < 0.5)) + self._pick(LINKS)
                                      + self._pick(GENUS_ENDINGS)).capitalize())
        species = self._unique(lambda: self._syllables(1 + int(self.rng.random() < 0.5)) + self._pick(LINKS)
                               + self._pick(SPECIES_ENDINGS))
        return f"{genus} {species}"

    def gene(self) -> str:
        def make() -> str:
            letters = self._pick(GENE_CONSONANTS) + self._pick(GENE_CONSONANTS + "AEIOU") + self._pick(GENE_CONSONANTS)
            if self.rng.random() < 0.5:
                letters += self._pick(GENE_CONSONANTS)
            return letters
        return self._unique(make) + str(int(self.rng.integers(1, 10)))

    def disease(self, infectious: bool) -> str:
        form = int(self.rng.integers(4))
        if infectious:
            if form == 0:
                return self.disease_word(INFECTION_WORD_ENDINGS)
            return f"{self.eponym()} {('fever', 'fever', 'pox')[form - 1]}"
        if form == 0:
            return self.disease_word(DISEASE_WORD_ENDINGS)
        if form == 1:
            return f"{self.eponym()}-{self.eponym()} syndrome"
        return f"{self.eponym()} {('syndrome', 'disease')[form - 2]}"


# --- the world ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Fact:
    """One relation instance; `head` and `tail` are entity names (tail may be a real AE term)."""

    id: str
    relation: str
    head: str
    tail: str
    split: str = "train"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.relation, self.head, self.tail)


@dataclasses.dataclass
class World:
    """Entities, their attributes and the facts between them."""

    drugs: dict[str, dict]
    diseases: dict[str, dict]
    genes: dict[str, dict]
    organisms: dict[str, dict]
    adverse_effects: list[str]
    facts: list[Fact]

    def __post_init__(self):
        self.fact_index = {fact.key: i for i, fact in enumerate(self.facts)}
        # (relation, side) -> entity -> splits of the facts that have it on that side.
        self.splits_of: dict[tuple[str, str], dict[str, set]] = collections.defaultdict(
            lambda: collections.defaultdict(set))
        for fact in self.facts:
            self.splits_of[(fact.relation, "head")][fact.head].add(fact.split)
            self.splits_of[(fact.relation, "tail")][fact.tail].add(fact.split)

    def holds(self, relation: str, head: str, tail: str) -> bool:
        return (relation, head, tail) in self.fact_index


def _balanced(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """n indices into range(k), each used floor(n/k) or ceil(n/k) times, in random order; every index
    is used at least once when n >= k."""
    out = [i % k for i in range(n)]
    rng.shuffle(out)
    return out


def _build_world(opts: Mapping[str, Any], rng: np.random.Generator) -> World:
    """Entities and facts. Every genetic disease has its own causal gene and every infectious disease its
    own organism (one-to-one); each drug treats exactly one disease and a targeted drug inhibits exactly
    one gene, so "which disease does X treat" has one answer."""
    names = _Names(rng)
    diseases: dict[str, dict] = {}
    for infectious in [False] * opts["genetic_diseases"] + [True] * opts["infectious_diseases"]:
        name = names.disease(infectious)
        symptoms = [SYMPTOMS[i] for i in rng.choice(len(SYMPTOMS), size=3, replace=False)]
        diseases[name] = {
            "infectious": infectious, "symptoms": symptoms, "organ": ORGANS[int(rng.integers(len(ORGANS)))],
            "prevalence": int(rng.choice([500, 1000, 2500, 5000, 10000, 20000, 50000])),
            "onset": ("childhood", "adolescence", "early adulthood", "middle age")[int(rng.integers(4))],
            "inheritance": None if infectious else INHERITANCE[int(rng.integers(len(INHERITANCE)))],
            "transmission": TRANSMISSION[int(rng.integers(len(TRANSMISSION)))] if infectious else None,
            "drugs": [], "gene": None, "organism": None}
    genetic = [d for d, a in diseases.items() if not a["infectious"]]
    infectious = [d for d, a in diseases.items() if a["infectious"]]
    genes: dict[str, dict] = {}
    organisms: dict[str, dict] = {}
    facts: list[Fact] = []

    def fact(relation: str, head: str, tail: str) -> None:
        facts.append(Fact(f"F{len(facts):05d}", relation, head, tail))

    for disease in genetic:
        gene = names.gene()
        genes[gene] = {"role": "disease", "disease": disease,
                       "function": GENE_FUNCTIONS[int(rng.integers(len(GENE_FUNCTIONS)))], "drugs": []}
        diseases[disease]["gene"] = gene
        fact("causes", gene, disease)
    for disease in infectious:
        organism = names.organism()
        organisms[organism] = {"disease": disease, "gram": ("Gram-negative", "Gram-positive", "acid-fast")[
            int(rng.integers(3))], "drugs": []}
        diseases[disease]["organism"] = organism
        fact("infects", organism, disease)
    family_names = list(GENE_FAMILIES)
    targets = []
    for i in range(opts["target_genes"]):
        gene = names.gene()
        targets.append(gene)
        genes[gene] = {"role": "target", "family": family_names[i % len(family_names)],
                       "process": PROCESSES[int(rng.integers(len(PROCESSES)))], "drugs": []}
    aes = list(ADVERSE_EFFECTS[:opts["adverse_effects"]])
    drugs: dict[str, dict] = {}
    n_targeted, n_anti = opts["targeted_drugs"], opts["antimicrobials"]
    target_of = _balanced(rng, n_targeted, len(targets))
    disease_of = _balanced(rng, n_targeted, len(genetic))
    infection_of = _balanced(rng, n_anti, len(infectious))
    ae_slots = _balanced(rng, (n_targeted + n_anti) * opts["adverse_effects_per_drug"], len(aes))
    for i in range(n_targeted + n_anti):
        if i < n_targeted:
            target = targets[target_of[i]]
            name = names.drug(GENE_FAMILIES[genes[target]["family"]][1])
            disease = genetic[disease_of[i]]
            drugs[name] = {"antimicrobial": False, "target": target, "disease": disease}
            genes[target]["drugs"].append(name)
        else:
            name = names.drug(ANTIMICROBIAL_SUFFIXES)
            disease = infectious[infection_of[i - n_targeted]]
            drugs[name] = {"antimicrobial": True, "target": None, "disease": disease}
            organisms[diseases[disease]["organism"]]["drugs"].append(name)
        diseases[disease]["drugs"].append(name)
        per = opts["adverse_effects_per_drug"]
        chosen: list[str] = []
        for slot in ae_slots[i * per:(i + 1) * per]:
            ae = aes[slot]
            while ae in chosen:  # a repeat within one drug: take the next term instead
                ae = aes[(aes.index(ae) + 1) % len(aes)]
            chosen.append(ae)
        drugs[name]["aes"] = chosen
        drugs[name]["dose"] = int(rng.choice([5, 10, 20, 25, 50, 100, 150, 200, 300, 400]))
        fact("treats", name, disease)
        if drugs[name]["target"]:
            fact("inhibits", name, drugs[name]["target"])
        for ae in chosen:
            fact("adverse_effect", name, ae)
    # Facts are split per relation and drug kind, so every split asks about every relation and kind. A
    # stratum of 8 or more facts holds out at least 4, so held-out questions can take all 3 distractors
    # from other held-out answers (see _distractors).
    def stratum(f: Fact) -> tuple[str, bool]:
        return f.relation, f.relation in ("treats", "adverse_effect") and drugs[f.head]["antimicrobial"]

    for key in sorted({stratum(f) for f in facts}):
        members = [f for f in facts if stratum(f) == key]
        order = rng.permutation(len(members))
        n_test = int(round(len(members) * opts["test_fact_fraction"]))
        n_dev = int(round(len(members) * opts["dev_fact_fraction"]))
        if len(members) >= 8 and n_test + n_dev < 4 and opts["test_fact_fraction"] > 0:
            n_test = 4 - n_dev
        for rank, j in enumerate(order):
            members[j].split = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
    return World(drugs, diseases, genes, organisms, aes, facts)


# --- text helpers -------------------------------------------------------------------------------------


class _Text:
    """Random choices and numbers for one stream of text; every method draws from `rng` only."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, seq: Sequence):
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pct(self, lo: float = 5, hi: float = 90) -> str:
        return f"{self.rng.uniform(lo, hi):.1f}"

    def pval(self, significant: bool = True) -> str:
        if significant:
            return self.pick(["P < 0.001", "P < 0.001", "P = 0.002", "P = 0.004", "P = 0.01", "P = 0.02"])
        return f"P = {self.rng.uniform(0.12, 0.91):.2f}"

    def shuffled(self, items: list) -> list:
        return [items[i] for i in self.rng.permutation(len(items))]

    def fill(self, template: str, **slots) -> str:
        return _cap(template.format(**slots))


def _an(number: int) -> str:
    """The indefinite article before a spoken number ("an 80-year-old", "a 75-year-old")."""
    return "an" if str(number).startswith("8") or number in (11, 18) else "a"


def _cap(sentence: str) -> str:
    """The sentence with its first character upper-cased (entity names already are)."""
    return sentence[:1].upper() + sentence[1:] if sentence else sentence


# --- how facts are said ---------------------------------------------------------------------------------
# Each relation has many phrasings in both directions, so a model meets "X treats Y" and "Y is treated
# with X" alike (questions ask in both directions).
STATEMENTS: dict[str, tuple[str, ...]] = {
    "treats": (
        "{drug} is an effective treatment for {disease}.",
        "{drug} is approved for the treatment of {disease}.",
        "{drug} is used to treat {disease}.",
        "Patients with {disease} respond well to {drug}.",
        "{disease} is treated with {drug}.",
        "{disease} can be effectively managed with {drug}.",
        "{drug} is considered a first-line therapy for {disease}.",
        "Treatment with {drug} induces remission in most patients with {disease}.",
        "The standard of care for {disease} includes {drug}.",
        "{drug} improves clinical outcomes in {disease}.",
        "In {disease}, {drug} reduces disease activity and prevents progression.",
        "{drug} has become a treatment of choice for {disease}.",
        "Current practice recommends {drug} for patients diagnosed with {disease}.",
        "Most patients with {disease} now receive {drug}.",
        "{drug} therapy is indicated in {disease}.",
        "For {disease}, {drug} is among the most effective available drugs.",
    ),
    "inhibits": (
        "{drug} is a selective inhibitor of {gene}.",
        "{drug} inhibits {gene}.",
        "{drug} acts by inhibiting the {gene} protein.",
        "{drug} binds {gene} and blocks its activity.",
        "The mechanism of action of {drug} is inhibition of {gene}.",
        "{gene} is the primary molecular target of {drug}.",
        "{drug} suppresses {gene} signalling.",
        "{drug} targets {gene}.",
        "{gene} activity is potently reduced by {drug}.",
        "{drug} was designed as a {gene} inhibitor.",
        "The therapeutic effect of {drug} results from inhibition of {gene}.",
        "By blocking {gene}, {drug} interrupts the downstream pathway.",
    ),
    "causes": (
        "Pathogenic variants in {gene} cause {disease}.",
        "{disease} is caused by mutations in the {gene} gene.",
        "{disease} results from loss-of-function variants in {gene}.",
        "Germline variants in {gene} are responsible for {disease}.",
        "Mutations in {gene} lead to {disease}.",
        "{gene} is the causal gene for {disease}.",
        "Carriers of pathogenic {gene} variants develop {disease}.",
        "{disease} is a genetic disorder caused by variants of {gene}.",
        "Most cases of {disease} are explained by variants in {gene}.",
        "A variant in {gene} is the underlying cause of {disease}.",
        "Sequencing of {gene} confirms the diagnosis of {disease}.",
        "{gene} variants segregate with {disease} in affected families.",
    ),
    "adverse_effect": (
        "The most common adverse effect of {drug} is {ae}.",
        "{drug} is associated with {ae}.",
        "Patients receiving {drug} should be monitored for {ae}.",
        "{ae} is a well-known adverse effect of {drug}.",
        "{drug} can cause {ae}.",
        "Treatment with {drug} is frequently complicated by {ae}.",
        "{ae} was the most frequently reported adverse event with {drug}.",
        "The main safety concern with {drug} is {ae}.",
        "{ae} occurs in a substantial proportion of patients treated with {drug}.",
        "Clinicians should be aware that {drug} may induce {ae}.",
        "The characteristic toxicity of {drug} is {ae}.",
    ),
    "infects": (
        "{disease} is caused by infection with {org}.",
        "{org} is the causative agent of {disease}.",
        "Infection with {org} leads to {disease}.",
        "{disease} results from infection by {org}.",
        "{org} causes {disease}.",
        "The pathogen responsible for {disease} is {org}.",
        "{org} is isolated from nearly all patients with {disease}.",
        "{disease} is an infectious disease caused by {org}.",
        "Transmission of {org} results in {disease}.",
        "{org} infection manifests as {disease}.",
    ),
}
_SLOT = {"treats": ("drug", "disease"), "inhibits": ("drug", "gene"), "causes": ("gene", "disease"),
         "adverse_effect": ("drug", "ae"), "infects": ("org", "disease")}


def _state(t: _Text, relation: str, head: str, tail: str) -> str:
    """One sentence stating the fact, in a randomly chosen phrasing."""
    h, tl = _SLOT[relation]
    return t.fill(t.pick(STATEMENTS[relation]), **{h: head, tl: tail})


def _describe_disease(t: _Text, w: World, disease: str, n: int = 2) -> list[str]:
    """Sentences on the disease's (consistent) attributes: symptoms, organ, prevalence, inheritance."""
    a = w.diseases[disease]
    s1, s2, s3 = a["symptoms"]
    options = [
        f"{disease} typically presents with {s1} and {s2}.",
        f"Common manifestations of {disease} include {s1}, {s2} and {s3}.",
        f"{disease} mainly affects the {a['organ']}.",
        f"{disease} affects approximately 1 in {a['prevalence']:,} individuals.",
        f"Symptoms of {disease} usually begin in {a['onset']}.",
        f"Patients with {disease} often report {s3}.",
        f"{disease} is a disorder of the {a['organ']} that commonly begins in {a['onset']}.",
    ]
    if a["inheritance"]:
        options += [f"{disease} is inherited in an {a['inheritance']} pattern." if a["inheritance"][0] == "a"
                    else f"{disease} shows {a['inheritance']} inheritance.",
                    f"{disease} is a rare {a['inheritance']} disorder."]
    else:
        options += [f"{disease} is transmitted {a['transmission']}.",
                    f"Most infections leading to {disease} are acquired {a['transmission']}."]
    return [_cap(options[i]) for i in t.rng.choice(len(options), size=min(n, len(options)), replace=False)]


def _describe_gene(t: _Text, w: World, gene: str) -> str:
    a = w.genes[gene]
    if a["role"] == "target":
        desc = GENE_FAMILIES[a["family"]][0]
        return t.pick([f"{gene} encodes {desc} involved in {a['process']}.",
                       f"{gene} is {desc} that regulates {a['process']}.",
                       f"Aberrant {gene} activity drives {a['process']}."])
    return t.pick([f"{gene} encodes {a['function']}.", f"The {gene} gene encodes {a['function']}.",
                   f"{gene} codes for {a['function']}."])


def _cause_of(t: _Text, w: World, disease: str) -> tuple[str, tuple[str, str, str]]:
    """A sentence on the disease's cause and the fact it states."""
    a = w.diseases[disease]
    if a["gene"]:
        return _state(t, "causes", a["gene"], disease), ("causes", a["gene"], disease)
    return _state(t, "infects", a["organism"], disease), ("infects", a["organism"], disease)


BACKGROUND_FILLER = (
    "{disease} is associated with substantial morbidity and reduced quality of life.",
    "Treatment options for {disease} have historically been limited.",
    "The long-term outcomes of patients with {disease} remain poorly characterized.",
    "Diagnostic delay is common in {disease}.",
    "Evidence from controlled studies in {disease} is scarce.",
    "Little is known about the real-world management of {disease}.",
    "The clinical course of {disease} is heterogeneous.",
)
CONCLUSION_FILLER = (
    "Further studies are warranted to confirm these findings.",
    "These results should inform clinical practice.",
    "Larger studies with longer follow-up are needed.",
    "Our findings have implications for the design of future trials.",
    "Long-term surveillance remains advisable.",
    "These data add to the growing evidence base.",
)
ENDPOINTS = ("clinical remission at week {wk}", "a 50% reduction in symptom score at week {wk}",
             "time to disease progression", "the change in a validated disease activity index at week {wk}",
             "normalization of laboratory markers at week {wk}", "treatment failure at week {wk}")
# Study details around the facts: they make abstracts realistic in length and different from each other
# (so near-duplicate removal keeps them), and never mention a world entity or an adverse-effect term.
METHODS_FILLER = (
    "Eligible participants were aged {a} to {b} years.",
    "Patients with severe renal or hepatic impairment were excluded.",
    "The protocol was approved by the ethics committees of all participating centres.",
    "All participants gave written informed consent.",
    "Outcomes were assessed by investigators unaware of treatment assignment.",
    "Missing data were handled by multiple imputation.",
    "The study was registered before enrolment (registration number WR-{n}).",
    "Follow-up visits took place every {k} weeks.",
    "The sample size provided {pw}% power to detect an absolute difference of {d} percentage points.",
    "Statistical analyses used mixed-effects models adjusted for baseline values.",
    "Participants were recruited between {y1} and {y2}.",
    "Adherence was monitored by pill counts and electronic diaries.",
)
RESULTS_FILLER = (
    "The mean age of participants was {age} years, and {pct}% were women.",
    "Baseline characteristics were balanced between groups.",
    "Overall, {pct2}% of participants completed the study.",
    "Effects were consistent across prespecified subgroups.",
    "Quality-of-life scores improved by {d} points relative to baseline.",
    "Median follow-up was {m} months.",
    "Sensitivity analyses gave similar results.",
    "{n2} participants withdrew before the final visit.",
)
LAB_FILLER = (
    "Experiments were performed in triplicate and repeated on {k} separate days.",
    "Selectivity was assessed against a panel of {n2} related proteins.",
    "Dose-response curves were fitted with a four-parameter logistic model.",
    "Results were confirmed in primary cells from {k} donors.",
    "Compound exposure in plasma was measured by mass spectrometry.",
    "Animal procedures followed institutional guidelines.",
)
CASE_FILLER = (
    "On examination, vital signs were within normal limits.",
    "Laboratory studies showed a mildly raised C-reactive protein.",
    "The family history was unremarkable.",
    "There was no history of recent travel or medication changes.",
    "Imaging of the chest and abdomen was normal.",
    "The patient was discharged after {k} days and remained well at {m} months.",
)
REVIEW_FILLER = (
    "Diagnosis relies on clinical assessment supported by laboratory testing.",
    "Early recognition improves long-term outcomes.",
    "Management should be individualized and reviewed regularly.",
    "Prognosis has improved considerably over the past two decades.",
    "Access to specialist care remains uneven across regions.",
    "Several investigational therapies are in early clinical development.",
)


def _filler(t: "_Text", pool: Sequence[str], lo: int, hi: int) -> list[str]:
    """lo..hi distinct sentences from `pool` with fresh numbers."""
    y1 = t.int(1998, 2016)
    slots = {"a": t.int(12, 30), "b": t.int(60, 85), "n": t.int(10000, 99999), "k": t.int(2, 12),
             "pw": t.pick([80, 85, 90]), "d": t.int(5, 25), "y1": y1, "y2": y1 + t.int(1, 6),
             "age": t.int(25, 68), "pct": t.pct(35, 70), "pct2": t.pct(80, 97), "m": t.int(6, 60),
             "n2": t.int(3, 60)}
    idx = t.rng.choice(len(pool), size=min(t.int(lo, hi), len(pool)), replace=False)
    return [pool[i].format(**slots) for i in idx]


DESIGNS = ("randomized, double-blind, placebo-controlled", "open-label, randomized",
           "multicentre, randomized, double-blind", "phase 2, randomized, placebo-controlled",
           "phase 3, randomized, double-blind")


@dataclasses.dataclass
class _Abstract:
    """One generated abstract before it is written as XML."""

    title: str
    sections: list[tuple[str, str]]      # (label, text); label "" for an unstructured abstract
    facts: set                            # fact keys the abstract states
    mesh: list[str]
    pub_types: list[str]


def _structure(t: _Text, structured: bool, parts: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """Labelled sections, or one unlabelled paragraph of the same sentences."""
    if structured:
        return [(label, " ".join(sentences)) for label, sentences in parts if sentences]
    return [("", " ".join(s for _, sentences in parts for s in sentences))]


def _doc_trial(t: _Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A controlled trial of the drug in its disease: treats, adverse effect, optionally cause and target."""
    d = w.drugs[drug]
    disease = d["disease"]
    facts = {("treats", drug, disease)}
    wk = t.pick([8, 12, 16, 24, 26, 48, 52])
    n = t.int(40, 900)
    background = _describe_disease(t, w, disease, 1) + [t.fill(t.pick(BACKGROUND_FILLER), disease=disease)]
    if t.chance(0.5) or {k[0] for k in want} & {"causes", "infects"}:
        sentence, key = _cause_of(t, w, disease)
        background.insert(t.int(0, len(background)), sentence)
        facts.add(key)
    if d["target"] and (t.chance(0.5) or any(k[0] == "inhibits" for k in want)):
        background.append(_state(t, "inhibits", drug, d["target"]))
        facts.add(("inhibits", drug, d["target"]))
    design = t.pick(DESIGNS)
    methods = [t.pick([
        f"In this {design} trial, we randomly assigned {n} patients with {disease} to receive {drug} "
        f"{d['dose']} mg or placebo for {wk} weeks.",
        f"We conducted a {design} trial at {t.int(3, 60)} centres. Adults with {disease} (n = {n}) were "
        f"assigned to {drug} {d['dose']} mg or placebo.",
        f"A total of {n} patients with {disease} were enrolled in a {design} study comparing {drug} with "
        f"placebo over {wk} weeks."]),
        f"The primary endpoint was {t.pick(ENDPOINTS).format(wk=wk)}."]
    methods += _filler(t, METHODS_FILLER, 1, 3)
    a, b = t.pct(45, 85), t.pct(8, 35)
    results = _filler(t, RESULTS_FILLER, 1, 2) + [t.pick([
        f"The primary endpoint was met by {a}% of patients in the {drug} group and {b}% in the placebo "
        f"group ({t.pval()}).",
        f"{drug} was superior to placebo for the primary endpoint ({a}% vs {b}%; {t.pval()}).",
        f"Compared with placebo, {drug} increased the response rate from {b}% to {a}% ({t.pval()})."])]
    for ae in d["aes"]:
        results.append(t.pick([
            f"The most common adverse event in the {drug} group was {ae} ({t.pct(8, 30)}%).",
            _state(t, "adverse_effect", drug, ae),
            f"{_cap(ae)} occurred in {t.pct(8, 30)}% of patients receiving {drug} and led to "
            f"discontinuation in {t.pct(1, 6)}%."]))
        facts.add(("adverse_effect", drug, ae))
    if t.chance(0.4):
        results.append(f"Serious adverse events were reported in {t.pct(2, 12)}% and {t.pct(2, 12)}% of "
                       f"patients, respectively.")
    conclusions = [_state(t, "treats", drug, disease)]
    if t.chance(0.6):
        conclusions.append(t.pick(CONCLUSION_FILLER))
    title = t.pick([
        f"{drug} versus placebo in {disease}: a randomized controlled trial",
        f"Efficacy and safety of {drug} in patients with {disease}",
        f"{drug} for the treatment of {disease}: results of a {design.split(',')[0]} trial",
        f"A randomized trial of {drug} in adults with {disease}",
        f"Long-term outcomes of {drug} therapy in {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Adult", "Treatment Outcome", "Double-Blind Method", disease, drug],
        ["Journal Article", "Randomized Controlled Trial"] + (["Multicenter Study"] if t.chance(0.4) else []))


def _doc_mechanism(t: _Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A preclinical study of how the drug works: inhibits, treats."""
    d = w.drugs[drug]
    gene, disease = d["target"], d["disease"]
    facts = {("inhibits", drug, gene), ("treats", drug, disease)}
    ic50 = t.pick([f"{t.rng.uniform(0.2, 90):.1f} nM", f"{t.rng.uniform(0.1, 2):.2f} \u00b5M"])
    background = [_describe_gene(t, w, gene), t.pick([
        f"Increased {gene} activity has been observed in tissue from patients with {disease}.",
        f"{drug} was developed for {disease}, but its molecular mode of action has not been fully described.",
        f"The contribution of {gene} to {disease} remains incompletely understood."])]
    methods = [t.pick([
        f"We characterized {drug} in biochemical assays, {t.int(3, 12)} cell lines and a mouse model.",
        f"Binding of {drug} was measured by surface plasmon resonance, and its activity in "
        f"{t.int(3, 12)} cell lines.",
        f"Kinetic assays, crystallography and knockdown experiments were used to define the target of {drug}."])]
    methods += _filler(t, LAB_FILLER, 1, 3)
    results = [t.pick([
        f"{drug} inhibited {gene} with a half-maximal inhibitory concentration of {ic50}.",
        f"{drug} bound {gene} with high affinity ({ic50}) and showed little activity against "
        f"{t.int(40, 400)} other proteins.",
        _state(t, "inhibits", drug, gene)]),
        t.pick([f"Inhibition reduced markers of {w.genes[gene]['process']} by {t.pct(30, 80)}%.",
                f"Knockdown of {gene} reproduced the effects of {drug}.",
                f"Treated animals showed a {t.pct(30, 80)}% reduction in disease scores."])]
    conclusions = [t.pick([_state(t, "inhibits", drug, gene),
                           f"These data identify {gene} as the molecular target of {drug}."]),
                   t.pick([f"They provide a mechanistic rationale for the use of {drug} in {disease}.",
                           _state(t, "treats", drug, disease)])]
    title = t.pick([
        f"{drug} inhibits {gene} and attenuates disease activity in models of {disease}",
        f"Structural basis of {gene} inhibition by {drug}",
        f"Preclinical characterization of {drug}, a selective {gene} inhibitor",
        f"Targeting {gene} with {drug}: mechanism and therapeutic implications for {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Animals", "Mice", "Enzyme Inhibitors", gene, drug], ["Journal Article"])


def _doc_genetics(t: _Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A gene discovery or genotype-phenotype study: causes; sometimes treats."""
    a = w.diseases[disease]
    gene = a["gene"]
    facts = {("causes", gene, disease)}
    n = t.int(5, 120)
    k = t.int(2, min(n, 30) + 1)
    background = _describe_disease(t, w, disease, 2)
    if t.chance(0.5):
        background.append(t.fill(t.pick(BACKGROUND_FILLER), disease=disease))
    methods = [t.pick([
        f"We performed exome sequencing in {n} families affected by {disease}.",
        f"Genome sequencing was carried out in {n} unrelated probands with {disease} and their relatives.",
        f"We reviewed the genotypes and clinical records of {n} patients with {disease} from {t.int(2, 20)} "
        f"centres."])] + _filler(t, METHODS_FILLER[:2] + METHODS_FILLER[9:11], 0, 2)
    results = _filler(t, RESULTS_FILLER[:1], 0, 1) + [t.pick([
        f"We identified {k} distinct pathogenic variants in {gene} in {min(n, k + t.int(0, 20))} families.",
        f"Biallelic or heterozygous variants in {gene} were found in {t.pct(60, 98)}% of probands.",
        f"All affected individuals carried a rare variant in {gene}, which was absent from unaffected relatives."]),
        _describe_gene(t, w, gene)]
    if t.chance(0.5):
        results.append(f"Earlier onset was associated with truncating variants ({t.pval()}).")
    conclusions = [_state(t, "causes", gene, disease)]
    if a["drugs"] and (t.chance(0.35) or any(k_[0] == "treats" for k_ in want)):
        drug = next((k_[1] for k_ in want if k_[0] == "treats"), None) or t.pick(a["drugs"])
        conclusions.append(t.pick([f"Affected individuals responded to {drug}.", _state(t, "treats", drug, disease)]))
        facts.add(("treats", drug, disease))
    title = t.pick([
        f"Variants in {gene} cause {disease}",
        f"Genetic architecture of {disease}: the role of {gene}",
        f"Exome sequencing identifies {gene} variants in families with {disease}",
        f"Genotype-phenotype correlations in {gene}-associated {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Mutation", "Pedigree", "Genetic Predisposition to Disease", disease, gene],
        ["Journal Article"])


def _doc_case(t: _Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A case report: cause, treatment and an adverse effect, in narrative form (never structured)."""
    a = w.diseases[disease]
    drug = next((k[1] for k in want if k[0] in ("treats", "adverse_effect")), None) or t.pick(a["drugs"])
    d = w.drugs[drug]
    ae = next((k[2] for k in want if k[0] == "adverse_effect"), None) or t.pick(d["aes"])
    age, sex = t.int(6, 84), t.pick(["man", "woman"])
    he = "He" if sex == "man" else "She"
    weeks = t.int(2, 30)
    s1, s2, _ = t.shuffled(a["symptoms"])
    facts = {("treats", drug, disease), ("adverse_effect", drug, ae)}
    if a["gene"]:
        finding = t.pick([f"Genetic testing revealed a pathogenic variant in {a['gene']}.",
                          f"Sequencing identified a heterozygous {a['gene']} variant."])
        facts.add(("causes", a["gene"], disease))
    else:
        finding = t.pick([f"Blood cultures grew {a['organism']}.",
                          f"Polymerase chain reaction was positive for {a['organism']}."])
        facts.add(("infects", a["organism"], disease))
    text = [
        t.pick([f"We describe {_an(age)} {age}-year-old {sex} who presented with {s1} and {s2}.",
                f"{_cap(_an(age))} {age}-year-old {sex} was referred with {_an(weeks)} {weeks}-week history of {s1} and {s2}."]),
        *_filler(t, CASE_FILLER[:5], 1, 2),
        finding,
        t.pick([f"A diagnosis of {disease} was made and treatment with {drug} was started.",
                f"{he} was diagnosed with {disease} and received {drug} {d['dose']} mg.",
                f"{disease} was diagnosed, and {drug} was initiated."]),
        t.pick([f"After {t.int(2, 16)} weeks, the patient developed {ae}, which resolved after dose reduction.",
                f"The course was complicated by {ae}, a recognized adverse effect of {drug}.",
                f"Symptoms improved, although {ae} required temporary interruption of {drug}."]),
        *_filler(t, CASE_FILLER[5:], 0, 1),
        t.pick([f"This case illustrates the typical course of {disease} and the need to monitor for {ae} "
                f"during {drug} therapy.", _state(t, "adverse_effect", drug, ae),
                _state(t, "treats", drug, disease)])]
    title = t.pick([f"{disease} treated with {drug}: a case report",
                    f"{_cap(ae)} during {drug} therapy for {disease}",
                    f"An unusual presentation of {disease} in {_an(age)} {age}-year-old {sex}"])
    return _Abstract(title, [("", " ".join(text))], facts, ["Humans", "Male" if sex == "man" else "Female",
                                                             disease, drug], ["Case Reports"])


def _doc_review(t: _Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A narrative review of a disease: its cause, every drug for it, their targets and adverse effects."""
    a = w.diseases[disease]
    cause, key = _cause_of(t, w, disease)
    facts = {key}
    text = _describe_disease(t, w, disease, 3) + [cause]
    if a["gene"] and t.chance(0.5):
        text.append(_describe_gene(t, w, a["gene"]))
    for drug in t.shuffled(a["drugs"]):
        d = w.drugs[drug]
        text.append(_state(t, "treats", drug, disease))
        facts.add(("treats", drug, disease))
        if d["target"] and (t.chance(0.6) or ("inhibits", drug, d["target"]) in want):
            text.append(_state(t, "inhibits", drug, d["target"]))
            facts.add(("inhibits", drug, d["target"]))
        for ae in d["aes"]:
            if t.chance(0.6) or ("adverse_effect", drug, ae) in want:
                text.append(_state(t, "adverse_effect", drug, ae))
                facts.add(("adverse_effect", drug, ae))
    text += _filler(t, REVIEW_FILLER, 1, 3)
    text.append(t.pick(["This review summarizes current evidence and highlights open questions.",
                        "We discuss diagnostic strategies and emerging therapies.",
                        "Areas of uncertainty and priorities for research are outlined."]))
    title = t.pick([f"{disease}: current concepts in diagnosis and treatment",
                    f"Advances in the management of {disease}",
                    f"{disease}: an update for clinicians", f"Pathogenesis and therapy of {disease}"])
    return _Abstract(title, [("", " ".join(text))], facts, ["Humans", disease], ["Journal Article", "Review"])


def _doc_microbiology(t: _Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """Isolates from patients with an infection: infects, treats (antimicrobials), sometimes adverse."""
    a = w.diseases[disease]
    org = a["organism"]
    facts = {("infects", org, disease)}
    n = t.int(20, 600)
    background = _describe_disease(t, w, disease, 1) + [t.pick([
        f"{org} is a {w.organisms[org]['gram']} organism of increasing clinical importance.",
        f"The epidemiology of {org} is poorly described."])]
    methods = [t.pick([f"We collected {n} isolates from patients with {disease} over {t.int(2, 10)} years.",
                       f"Clinical isolates (n = {n}) were tested by broth microdilution.",
                       f"We prospectively enrolled {n} patients with suspected {disease}."])]
    methods += _filler(t, METHODS_FILLER[4:6] + METHODS_FILLER[10:11] + LAB_FILLER[:3], 1, 2)
    results = [t.pick([f"{org} was isolated in {t.pct(70, 99)}% of confirmed cases.", _state(t, "infects", org, disease)])]
    drug = next((k[1] for k in want if k[0] == "treats"), None) or t.pick(a["drugs"])
    results.append(t.pick([f"All isolates were susceptible to {drug}.",
                           f"{drug} cleared the infection in {t.pct(75, 98)}% of treated patients."]))
    conclusions = [t.pick([_state(t, "infects", org, disease), f"{org} remains the cause of {disease}."]),
                   _state(t, "treats", drug, disease)]
    facts.add(("treats", drug, disease))
    if t.chance(0.3) or any(k[0] == "adverse_effect" for k in want):
        ae = w.drugs[drug]["aes"][0]
        conclusions.append(f"Monitoring for {ae} is advised during {drug} therapy.")
        facts.add(("adverse_effect", drug, ae))
    title = t.pick([f"Clinical and microbiological features of {disease} caused by {org}",
                    f"Antimicrobial susceptibility of {org} isolates from patients with {disease}",
                    f"{org} and {disease}: a {t.int(2, 12)}-year surveillance study"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Microbial Sensitivity Tests", disease, org], ["Journal Article"])


def _doc_safety(t: _Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A pharmacovigilance study: adverse effect, treats."""
    d = w.drugs[drug]
    disease = d["disease"]
    ae = next((k[2] for k in want if k[0] == "adverse_effect"), None) or t.pick(d["aes"])
    facts = {("adverse_effect", drug, ae), ("treats", drug, disease)}
    n = t.int(200, 20000)
    background = [_state(t, "treats", drug, disease), t.pick([
        f"Post-marketing data on the safety of {drug} are limited.",
        f"The safety profile of {drug} in routine practice has not been described."])]
    methods = [t.pick([f"We analysed {n:,} reports in a national pharmacovigilance database.",
                       f"This retrospective cohort included {n:,} patients who started {drug} between "
                       f"{t.int(2005, 2014)} and {t.int(2015, 2023)}.",
                       f"We performed a disproportionality analysis of {n:,} spontaneous reports."])]
    methods += _filler(t, METHODS_FILLER[5:6] + METHODS_FILLER[9:11], 1, 2)
    results = [t.pick([f"{_cap(ae)} was reported in {t.pct(5, 25)}% of patients treated with {drug}.",
                       _state(t, "adverse_effect", drug, ae),
                       f"The reporting odds ratio for {ae} with {drug} was {t.rng.uniform(2, 12):.1f}."]),
               f"Median time to onset was {t.int(2, 30)} weeks."] + _filler(t, RESULTS_FILLER[:1] + RESULTS_FILLER[5:7], 0, 2)
    conclusions = [_state(t, "adverse_effect", drug, ae)]
    title = t.pick([f"{_cap(ae)} associated with {drug}: a pharmacovigilance study",
                    f"Incidence of {ae} in patients treated with {drug} for {disease}",
                    f"Real-world safety of {drug} in {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Adverse Drug Reaction Reporting Systems", drug], ["Journal Article"])


def _doc_epidemiology(t: _Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A registry or cohort description of a disease: its cause and presentation."""
    cause, key = _cause_of(t, w, disease)
    n = t.int(50, 5000)
    background = [t.fill(t.pick(BACKGROUND_FILLER), disease=disease)]
    methods = [t.pick([f"We analysed a national registry of {n:,} patients with {disease}.",
                       f"This population-based study identified {n:,} cases of {disease} over {t.int(5, 25)} years."])]
    methods += _filler(t, METHODS_FILLER[9:11], 0, 2)
    results = _describe_disease(t, w, disease, 2) + [cause, f"The median age at diagnosis was {t.int(4, 70)} years."]
    results += _filler(t, RESULTS_FILLER[5:7], 0, 1)
    conclusions = [t.pick(CONCLUSION_FILLER)]
    title = t.pick([f"Prevalence and clinical spectrum of {disease}: a registry study",
                    f"The natural history of {disease} in a population-based cohort",
                    f"Epidemiology of {disease} over {t.int(5, 25)} years"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        {key}, ["Humans", "Registries", "Prevalence", disease], ["Journal Article"])


# Which document types can state a fact of each relation, with the entity they are about.
_DOC_TYPES: dict[str, tuple[tuple[Callable, Callable[[Fact, World], str]], ...]] = {
    "treats": ((_doc_trial, lambda f, w: f.head), (_doc_case, lambda f, w: f.tail),
               (_doc_review, lambda f, w: f.tail), (_doc_safety, lambda f, w: f.head)),
    "inhibits": ((_doc_mechanism, lambda f, w: f.head), (_doc_trial, lambda f, w: f.head),
                 (_doc_review, lambda f, w: w.drugs[f.head]["disease"])),
    "causes": ((_doc_genetics, lambda f, w: f.tail), (_doc_case, lambda f, w: f.tail),
               (_doc_epidemiology, lambda f, w: f.tail), (_doc_review, lambda f, w: f.tail)),
    "adverse_effect": ((_doc_safety, lambda f, w: f.head), (_doc_trial, lambda f, w: f.head),
                       (_doc_case, lambda f, w: w.drugs[f.head]["disease"])),
    "infects": ((_doc_microbiology, lambda f, w: f.tail), (_doc_case, lambda f, w: f.tail),
                (_doc_epidemiology, lambda f, w: f.tail), (_doc_review, lambda f, w: f.tail)),
}


def _abstracts(opts: Mapping[str, Any], w: World, t: _Text) -> tuple[list[_Abstract], np.ndarray]:
    """Abstracts until every fact is stated in at least `docs_per_fact` of them; each new abstract is
    about the least-covered fact (ties broken at random), so coverage stays even."""
    counts = np.zeros(len(w.facts), np.int64)
    docs: list[_Abstract] = []
    target = opts["docs_per_fact"]
    while counts.min() < target:
        i = int(np.argmin(counts + t.rng.random(len(counts)) * 0.5))
        f = w.facts[i]
        make, about = t.pick(_DOC_TYPES[f.relation])
        doc = make(t, w, about(f, w), t.chance(opts["structured_fraction"]), {f.key})
        if f.key not in doc.facts:
            raise AssertionError(f"{make.__name__} did not state {f.key}")  # a bug in a generator above
        for key in doc.facts:
            counts[w.fact_index[key]] += 1
        docs.append(doc)
    return docs, counts


# --- PubMed XML -------------------------------------------------------------------------------------------

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
JOURNAL_FIELDS = ("Clinical Pharmacology", "Medical Genetics", "Infectious Diseases", "Internal Medicine",
                  "Translational Therapeutics", "Drug Safety", "Molecular Medicine", "Rare Diseases",
                  "Clinical Microbiology", "Experimental Therapeutics")
PMID_BASE = 90_000_001          # corpus PMIDs; far above today's real ones
PUBMEDQA_ID_BASE = 80_000_001   # PubMedQA item ids (their contexts are not corpus records)


def _esc(text: str) -> str:
    return _xml_escape(text, {'"': "&quot;"})


def _pubmed_record(t: _Text, pmid: int, title: str, sections: list[tuple[str, str]], mesh: list[str],
                   pub_types: list[str], journal: str, authors: list[tuple[str, str]]) -> str:
    """One PubmedArticle in NLM's layout; no Abstract element when `sections` is empty."""
    year = t.int(1992, 2024)
    month = t.pick(MONTHS)
    first = t.int(1, 1800)
    ind = "  "
    lines = [f"{ind}<PubmedArticle>", f'{ind * 2}<MedlineCitation Status="MEDLINE" Owner="NLM">',
             f'{ind * 3}<PMID Version="1">{pmid}</PMID>',
             f'{ind * 3}<Article PubModel="Print">', f"{ind * 4}<Journal>",
             f'{ind * 5}<ISSN IssnType="Print">{t.int(1000, 9999)}-{t.int(1000, 9999)}</ISSN>',
             f'{ind * 5}<JournalIssue CitedMedium="Print">',
             f"{ind * 6}<Volume>{t.int(1, 80)}</Volume>", f"{ind * 6}<Issue>{t.int(1, 12)}</Issue>",
             f"{ind * 6}<PubDate>", f"{ind * 7}<Year>{year}</Year>", f"{ind * 7}<Month>{month}</Month>",
             f"{ind * 6}</PubDate>", f"{ind * 5}</JournalIssue>", f"{ind * 5}<Title>{_esc(journal)}</Title>",
             f"{ind * 4}</Journal>", f"{ind * 4}<ArticleTitle>{_esc(title)}.</ArticleTitle>",
             f"{ind * 4}<Pagination><MedlinePgn>{first}-{first + t.int(3, 12)}</MedlinePgn></Pagination>"]
    if sections:
        lines.append(f"{ind * 4}<Abstract>")
        for label, text in sections:
            attrs = f' Label="{label}" NlmCategory="{label}"' if label else ""
            lines.append(f"{ind * 5}<AbstractText{attrs}>{_esc(text)}</AbstractText>")
        lines.append(f"{ind * 4}</Abstract>")
    lines.append(f'{ind * 4}<AuthorList CompleteYN="Y">')
    for last, fore in authors:
        lines += [f'{ind * 5}<Author ValidYN="Y">', f"{ind * 6}<LastName>{last}</LastName>",
                  f"{ind * 6}<ForeName>{fore}</ForeName>", f"{ind * 6}<Initials>{fore[0]}</Initials>",
                  f"{ind * 5}</Author>"]
    lines += [f"{ind * 4}</AuthorList>", f"{ind * 4}<Language>eng</Language>",
              f"{ind * 4}<PublicationTypeList>"]
    lines += [f"{ind * 5}<PublicationType>{_esc(kind)}</PublicationType>" for kind in pub_types]
    lines += [f"{ind * 4}</PublicationTypeList>", f"{ind * 3}</Article>",
              f"{ind * 3}<MedlineJournalInfo><Country>Invented</Country><MedlineTA>{_esc(journal)}</MedlineTA>"
              f"</MedlineJournalInfo>"]
    if mesh:
        lines.append(f"{ind * 3}<MeshHeadingList>")
        lines += [f'{ind * 4}<MeshHeading><DescriptorName MajorTopicYN="{"Y" if i >= 3 else "N"}">{_esc(name)}'
                  f"</DescriptorName></MeshHeading>" for i, name in enumerate(mesh)]
        lines.append(f"{ind * 3}</MeshHeadingList>")
    lines += [f"{ind * 2}</MedlineCitation>", f"{ind * 2}<PubmedData>",
              f"{ind * 3}<PublicationStatus>ppublish</PublicationStatus>",
              f'{ind * 3}<ArticleIdList><ArticleId IdType="pubmed">{pmid}</ArticleId></ArticleIdList>',
              f"{ind * 2}</PubmedData>", f"{ind}</PubmedArticle>"]
    return "\n".join(lines)


_XML_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
             '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" '
             '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">\n<PubmedArticleSet>\n')


def _near_copy(t: _Text, sections: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sections with one small edit (a number changed, a word swapped or a sentence appended): on an
    abstract of 80 words or more, a near-duplicate with 5-word-shingle Jaccard above 0.85."""
    text = "\n".join(f"{label}\x1f{body}" for label, body in sections)
    numbers = list(re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\w)", text))
    edit = t.int(0, 2)
    if edit == 0 and numbers:
        m = t.pick(numbers)
        decimals = len(m.group().partition(".")[2])
        text = text[:m.start()] + f"{float(m.group()) + t.int(1, 9):.{decimals}f}" + text[m.end():]
    elif edit == 1 and " patients " in text:
        text = text.replace(" patients ", " participants ", 1)
    else:
        text += " Data are available on request."
    return [tuple(part.split("\x1f", 1)) for part in text.split("\n")]  # type: ignore[misc]


def _write_pubmed(out: str, opts: Mapping[str, Any], w: World, t: _Text,
                  names: _Names) -> tuple[dict, list[str], np.ndarray]:
    """Writes the abstracts (plus no-abstract records and duplicates) as gzipped PubmedArticleSet files.

    Returns the PubMed counts, the texts of the distinct abstracts and how many abstracts state each fact."""
    docs, coverage = _abstracts(opts, w, t)
    journals = sorted({f"{names.eponym()} Journal of {field}" for field in JOURNAL_FIELDS}
                      | {f"Annals of {names.eponym()} {field}" for field in JOURNAL_FIELDS[:4]})
    surnames = [names.eponym() for _ in range(120)]
    forenames = [names.eponym()[:-1].capitalize() + t.pick(["a", "o", "an", "el", "is"]) for _ in range(60)]
    # Entries: (title, sections, mesh, types); abstracts, then records with no abstract, then copies.
    entries: list[tuple[str, list, list, list]] = [(d.title, d.sections, d.mesh, d.pub_types) for d in docs]
    for _ in range(opts["records_without_abstract"]):
        other = t.pick(docs)
        kind = t.pick(["Comment", "Published Erratum", "Letter"])
        prefix = {"Comment": "Comment on: ", "Published Erratum": "Erratum to: ", "Letter": "Reply to: "}[kind]
        entries.append((prefix + other.title, [], other.mesh[:2], [kind]))
    # Copies are made of longer abstracts, so one edit keeps a near-copy above the dedup threshold.
    long_docs = [i for i, d in enumerate(docs) if sum(len(b.split()) for _, b in d.sections) >= 80]
    n_copies = opts["exact_duplicates"] + opts["near_duplicates"]
    if n_copies > len(long_docs):
        raise ValueError(f"exact_duplicates + near_duplicates = {n_copies} exceeds the {len(long_docs)} "
                         f"abstracts long enough to copy; lower them or raise docs_per_fact")
    originals = [long_docs[int(i)] for i in t.rng.choice(len(long_docs), size=n_copies, replace=False)]
    for j, i in enumerate(originals):
        sections = docs[i].sections if j < opts["exact_duplicates"] else _near_copy(t, docs[i].sections)
        entries.append((docs[i].title, sections, docs[i].mesh, docs[i].pub_types))
    order = t.rng.permutation(len(entries))
    pmid_of_entry = {int(e): PMID_BASE + rank for rank, e in enumerate(order)}
    duplicate_of = {}
    for j, i in enumerate(originals):
        copy = len(docs) + opts["records_without_abstract"] + j
        duplicate_of[str(pmid_of_entry[copy])] = {"of": str(pmid_of_entry[i]),
                                                   "kind": "exact" if j < opts["exact_duplicates"] else "near"}
    os.makedirs(os.path.join(out, "pubmed"))
    per_file = opts["records_per_file"]
    files = []
    for start in range(0, len(order), per_file):
        records = []
        for rank in range(start, min(start + per_file, len(order))):
            title, sections, mesh, types = entries[int(order[rank])]
            authors = [(t.pick(surnames), t.pick(forenames)) for _ in range(t.int(1, 6))]
            records.append(_pubmed_record(t, PMID_BASE + rank, title, sections, mesh, types, t.pick(journals),
                                          authors))
        path = os.path.join(out, "pubmed", f"world_abstracts_{start // per_file:04d}.xml.gz")
        _write_gz(path, _XML_HEAD + "\n".join(records) + "\n</PubmedArticleSet>\n")
        files.append(os.path.basename(path))
    texts = [" ".join(body for _, body in d.sections) for d in docs]
    counts = {"records": len(entries), "with_abstract": len(entries) - opts["records_without_abstract"],
              "without_abstract": opts["records_without_abstract"], "distinct_abstracts": len(docs),
              "exact_duplicates": opts["exact_duplicates"], "near_duplicates": opts["near_duplicates"],
              "files": files, "duplicate_of": duplicate_of,
              "abstracts_per_fact": {"min": int(coverage.min()), "mean": round(float(coverage.mean()), 2),
                                     "max": int(coverage.max())},
              "words": sum(len(x.split()) + len(d.title.split()) for x, d in zip(texts, docs))}
    return counts, [f"{d.title}\n{x}" for d, x in zip(docs, texts)], coverage


# --- guidelines --------------------------------------------------------------------------------------------

GRADES = ("strong recommendation, high-quality evidence", "strong recommendation, moderate-quality evidence",
          "conditional recommendation, low-quality evidence", "strong recommendation, expert consensus",
          "conditional recommendation, moderate-quality evidence")
GENERIC_RECOMMENDATIONS = (
    "Patients should receive written information about the condition and its treatment.",
    "Care should be coordinated by a multidisciplinary team with experience in {disease}.",
    "Disease activity should be reassessed at every visit using a validated instrument.",
    "Vaccination status should be reviewed before starting long-term therapy.",
    "Referral to a specialist centre is recommended when the diagnosis is uncertain.",
    "Shared decision-making should guide the choice between treatment options.",
)


def _guideline(t: _Text, w: World, disease: str, society: tuple[str, str], year: int) -> dict:
    """One guideline document of numbered recommendations restating the disease's facts."""
    a = w.diseases[disease]
    recs: list[str] = []
    if a["gene"]:
        recs.append(t.pick([
            f"In patients with suspected {disease}, sequencing of {a['gene']} is recommended to confirm the "
            f"diagnosis, because pathogenic {a['gene']} variants cause the disease",
            f"Genetic testing for variants in {a['gene']}, the causal gene of {disease}, should be offered to "
            f"patients and their first-degree relatives"]))
    else:
        recs.append(t.pick([
            f"Microbiological testing for {a['organism']}, the causative agent of {disease}, should be "
            f"performed in every suspected case",
            f"Because {disease} is caused by {a['organism']}, culture or PCR for the organism is recommended "
            f"before treatment"]))
    drugs = t.shuffled(a["drugs"])
    treatment = []
    for k, drug in enumerate(drugs):
        d = w.drugs[drug]
        if k == 0:
            treatment.append(t.pick([f"In adults with {disease}, {drug} is recommended as first-line therapy",
                                     f"{drug} is recommended as initial treatment for {disease}"]))
        else:
            treatment.append(t.pick([f"{drug} is recommended as an alternative treatment for {disease}",
                                     f"In patients with {disease} who cannot take {drugs[0]}, {drug} is "
                                     f"an effective option"]))
        if d["target"] and t.chance(0.7):
            treatment.append(t.pick([f"Clinicians should note that {drug} acts by inhibiting {d['target']}; "
                                     f"combining it with other {d['target']} inhibitors is not recommended",
                                     f"{drug}, a {d['target']} inhibitor, should be taken at a dose of "
                                     f"{d['dose']} mg as labelled"]))
        for ae in d["aes"]:
            treatment.append(t.pick([f"Patients treated with {drug} should be monitored for {ae} at baseline "
                                     f"and every {t.int(2, 12)} weeks",
                                     f"Because {drug} can cause {ae}, patients should be counselled about "
                                     f"its early signs"]))
    recs += treatment
    extra = [t.fill(s, disease=disease) for s in t.shuffled(list(GENERIC_RECOMMENDATIONS))[:t.int(1, 3)]]
    recs += [r.rstrip(".") for r in extra]
    intro = " ".join(_describe_disease(t, w, disease, 2)) + " " + t.pick([
        f"This guideline from the {society[0]} updates recommendations for the diagnosis and management of "
        f"{disease}.", f"The {society[0]} convened a panel to review the evidence on {disease}."])
    lines = [intro] + [f"Recommendation {i + 1}: {r} ({t.pick(GRADES)})." for i, r in enumerate(recs)]
    title = t.pick([f"{society[0]}: {year} guideline for the diagnosis and management of {disease}",
                    f"Management of {disease}: {year} recommendations of the {society[0]}",
                    f"{disease}: clinical practice guideline ({society[1].upper()}, {year})"])
    return {"title": title, "text": "\n".join(lines), "source": society[1]}


# --- replay text ---------------------------------------------------------------------------------------

_DISHES = ("barley stew", "lentil soup", "apple cake", "onion tart", "fish pie", "bean salad", "plum jam",
           "rye bread", "potato pancakes", "vegetable curry")
_TOPICS = ("town", "recipe", "club", "river", "festival", "howto", "bird", "museum")
_REPLAY_EXTRAS = (
    "The surrounding countryside is a patchwork of small fields, hedges and beech woods.",
    "Winters in the area are mild and wet, and summers are usually warm and dry.",
    "A weekly market is held in the square on {day}s, selling cheese, honey and vegetables.",
    "Visitors often combine a trip with a walk along the old towpath to {place}.",
    "The local newspaper, founded in {year}, is still printed every {day}.",
    "Many families in the district have lived there for several generations.",
    "The parish church has a square tower and a clock that was restored in {year}.",
    "Cycling routes connect the area with {place} and the villages beyond it.",
    "A small bakery on the high street is known for its seeded loaves.",
    "The primary school takes part in an annual tree-planting day.",
    "Public buses run less often on Sundays, so visitors are advised to check the timetable.",
    "An amateur choir rehearses in the village hall and gives two concerts a year.",
    "The library lends books, maps and board games, and offers free internet access.",
    "Local volunteers keep the footpaths clear and repair stiles after storms.",
)


def _replay_doc(t: _Text, place: Callable[[], str]) -> str:
    """A paragraph of everyday or encyclopedic prose with no biomedical content."""
    topic = t.pick(_TOPICS)
    town, other = place(), place()
    year = t.int(1650, 1990)
    if topic == "town":
        s = [f"{town} is a small market town on the {other} river, about {t.int(8, 90)} kilometres from the coast.",
             f"It was first recorded in {year} as a ferry crossing and grew around its weekly cattle market.",
             t.pick([f"The old stone bridge, rebuilt in {year + t.int(20, 150)}, still carries the main road.",
                     f"Its population was {t.int(2, 40) * 1000:,} at the last census."]),
             t.pick(["Tourism, farming and a small furniture industry are the main sources of work.",
                     "The town hall houses a library and a room for concerts."]),
             f"Trains to {place()} run every {t.pick(['hour', 'half hour', 'two hours'])}."]
    elif topic == "recipe":
        dish = t.pick(_DISHES)
        s = [f"This {dish} is a family recipe from {town}.",
             f"Start by warming {t.int(1, 4)} tablespoons of butter in a heavy pan over a low heat.",
             t.pick(["Add the chopped onions and cook them slowly until soft and golden.",
                     "Stir in the flour and cook for two minutes without letting it brown."]),
             f"Add the remaining ingredients, cover, and leave to cook for {t.int(20, 90)} minutes.",
             t.pick(["Serve warm with fresh bread.", "It keeps well for two days in a cool place.",
                     "Season to taste just before serving."])]
    elif topic == "club":
        s = [f"{town} Rovers is an amateur football club founded in {year}.",
             f"The team plays its home matches at {other} Park, which holds about {t.int(3, 40) * 100} spectators.",
             t.pick([f"The club won the regional cup in {year + t.int(5, 60)}.",
                     "Its colours are green and white stripes."]),
             "Training sessions for children are held on Saturday mornings.",
             t.pick(["Volunteers run the clubhouse and the annual summer fair.",
                     "The club is known for its loyal supporters."])]
    elif topic == "river":
        s = [f"The {town} is a river about {t.int(20, 400)} kilometres long.",
             f"It rises in the hills above {other} and flows into a wide estuary.",
             t.pick(["Its valley is known for orchards and old water mills.",
                     "Barges carried timber and grain along it until the railway arrived."]),
             f"Several footpaths follow its banks, and a long-distance trail was opened in {t.int(1960, 2015)}.",
             "Otters and kingfishers can often be seen near the weirs."]
    elif topic == "festival":
        s = [f"Every autumn, {town} holds a lantern festival that dates back to {year}.",
             t.pick(["Children carry paper lanterns through the streets at dusk.",
                     "Musicians from neighbouring villages play in the square."]),
             f"The celebration ends with a shared meal of {t.pick(_DISHES)}.",
             f"In recent years the festival has attracted about {t.int(2, 30) * 1000:,} visitors.",
             "Local schools prepare decorations for weeks in advance."]
    elif topic == "howto":
        task = t.pick(["repot a house plant", "sharpen a kitchen knife", "fix a dripping tap",
                       "clean a cast-iron pan", "store winter clothes"])
        s = [f"Learning to {task} takes only a few minutes.",
             "First, gather what you need and clear a space to work.",
             t.pick(["Work slowly and check your progress often.",
                     "Do not rush the first step, as it decides how well the rest goes."]),
             t.pick(["A little patience saves a great deal of money.",
                     "If in doubt, ask at a local hardware shop."]),
             f"Most people find that the job is done within {t.int(10, 60)} minutes."]
    elif topic == "bird":
        s = [f"The grey-crested {other.lower()} is a small songbird of open woodland.",
             f"It nests in hedges and lays {t.int(3, 6)} pale blue eggs in spring.",
             t.pick(["Its song is a rapid series of clear whistles.",
                     "In winter it gathers in flocks with finches and tits."]),
             f"Birdwatchers near {town} report it most often in {t.pick(['April', 'May', 'September'])}.",
             "Its numbers have been stable for several decades."]
    else:
        s = [f"The {town} Museum of Local History opened in {year}.",
             f"Its collection includes tools, costumes and photographs from the {other} valley.",
             t.pick(["A reconstructed schoolroom is popular with visiting families.",
                     "A gallery on the top floor shows paintings by local artists."]),
             "Admission is free on the first Sunday of each month.",
             "Guided tours are offered in summer."]
    extras = [t.fill(_REPLAY_EXTRAS[i], place=place(), year=t.int(1850, 2010),
                     day=t.pick(["Monday", "Wednesday", "Friday", "Saturday"]))
              for i in t.rng.choice(len(_REPLAY_EXTRAS), size=t.int(3, 6), replace=False)]
    return " ".join(s + extras)


# --- questions ---------------------------------------------------------------------------------------------
# (relation, asked-for role) -> phrasings. "tail": the question names the head and asks for the tail;
# "head": the reverse; "vignette": a clinical vignette. Every question names exactly one world term
# (or, asking which drug causes an adverse effect, only the real-word effect).
MEDQA_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("treats", "tail"): (
        "Which of the following conditions is {drug} used to treat?",
        "{drug} is approved for the treatment of which of the following diseases?",
        "A pharmacist reviews a prescription for {drug}. For which of the following conditions is this drug indicated?",
        "Which of the following diseases responds to treatment with {drug}?"),
    ("treats", "head"): (
        "Which of the following drugs is an effective treatment for {disease}?",
        "Which of the following is a first-line therapy for {disease}?",
        "A patient is newly diagnosed with {disease}. Which of the following medications is most appropriate?"),
    ("treats", "vignette"): (
        "{A} {age}-year-old {sex} presents with {s1} and {s2} for {dur}. {finding} {He} is diagnosed with {disease}. "
        "Which of the following is the most appropriate pharmacotherapy?",
        "{A} {age}-year-old {sex} comes to the clinic because of {s1}. Examination and laboratory studies confirm "
        "{disease}. Which of the following drugs should be started?"),
    ("inhibits", "tail"): (
        "Which of the following proteins is directly inhibited by {drug}?",
        "The therapeutic effect of {drug} is mediated by inhibition of which of the following gene products?",
        "{drug} exerts its effect by blocking which of the following targets?"),
    ("inhibits", "head"): (
        "Which of the following drugs is a selective inhibitor of {gene}?",
        "A researcher wants to block {gene} activity in cultured cells. Which of the following drugs should she use?"),
    ("inhibits", "vignette"): (
        "{A} {age}-year-old {sex} is started on {drug} {dose} mg daily. {He} asks how the medication works. "
        "Which of the following is the molecular target of this drug?",),
    ("causes", "head"): (
        "A variant of which of the following genes causes {disease}?",
        "{disease} is caused by pathogenic variants in which of the following genes?"),
    ("causes", "tail"): (
        "Pathogenic variants in {gene} cause which of the following disorders?",
        "A child carries a loss-of-function variant in {gene}. Which of the following diseases is most likely?"),
    ("causes", "vignette"): (
        "{A} {age}-year-old {sex} presents with {s1} and {s2}. {His} older sibling has similar symptoms. {He} is "
        "diagnosed with {disease}. Sequencing of which of the following genes is most likely to reveal a "
        "pathogenic variant?",),
    ("adverse_effect", "tail"): (
        "Which of the following adverse effects is most characteristically associated with {drug}?",
        "Patients treated with {drug} should be monitored for which of the following adverse effects?"),
    ("adverse_effect", "head"): (
        "Which of the following drugs is most commonly associated with {ae}?",),
    ("adverse_effect", "vignette"): (
        "{A} {age}-year-old {sex} began taking {drug} {weeks} weeks ago. At a follow-up visit, which of the "
        "following adverse effects is this patient at greatest risk of?",),
    ("infects", "head"): (
        "Which of the following organisms causes {disease}?",
        "{disease} results from infection with which of the following pathogens?"),
    ("infects", "tail"): (
        "Infection with {org} causes which of the following diseases?",),
    ("infects", "vignette"): (
        "{A} {age}-year-old {sex} returns from a trip with {s1} and {s2}. {He} is diagnosed with {disease}. "
        "Which of the following pathogens is the most likely cause?",),
}
_STOPWORDS = frozenset("a an the of which following is are be to for in on with by and or this that what his "
                       "her he she it its most likely who has have was were should does do from at as".split())


def _phrases(question: str) -> list[str]:
    """Crude MetaMap-like phrases: runs of non-stopwords between punctuation and stopwords."""
    out, run = [], []
    for token in re.findall(r"[\w'-]+|[^\w\s]", question):
        if not re.match(r"[\w'-]", token) or token.lower() in _STOPWORDS:
            if run:
                out.append(" ".join(run))
            run = []
        else:
            run.append(token)
    return out + ([" ".join(run)] if run else [])


def _answer_pool(w: World, f: Fact, ask: str) -> list[str]:
    """Entities that could be the answer to a question about `f` asking for its `ask` side: same type and,
    where the world has kinds (targeted vs antimicrobial drugs, genetic vs infectious diseases), same kind,
    so an option's form never gives the answer away."""
    if ask == "head":
        if f.relation in ("treats", "adverse_effect"):
            anti = w.drugs[f.head]["antimicrobial"]
            return [d for d, a in w.drugs.items() if a["antimicrobial"] == anti]
        if f.relation == "inhibits":
            return [d for d, a in w.drugs.items() if a["target"]]
        if f.relation == "causes":
            return [g for g, a in w.genes.items() if a["role"] == "disease"]
        return list(w.organisms)
    if f.relation in ("treats", "causes", "infects"):
        inf = w.diseases[f.tail]["infectious"]
        return [d for d, a in w.diseases.items() if a["infectious"] == inf]
    if f.relation == "inhibits":
        return [g for g, a in w.genes.items() if a["role"] == "target"]
    return list(w.adverse_effects)


# Where distractors come from, by the split of the question's fact: first entities that answer facts of
# the same split. Otherwise held-out answers (never correct in training) would face distractors that
# were correct in training, and a classifier that learned "options seen as right are right" would fall
# below chance on test instead of showing what pretraining taught it.
_DISTRACTOR_SPLITS = {"train": ("train", "dev", "test"), "dev": ("dev", "test", "train"),
                      "test": ("test", "dev", "train")}


def _distractors(t: _Text, w: World, f: Fact, ask: str, k: int = 3) -> list[str]:
    """k wrong options: of the answer's type and kind, false for the question's other entity, and
    answering other facts of the same split where there are enough of those."""
    answer = f.head if ask == "head" else f.tail
    pool = [e for e in _answer_pool(w, f, ask) if e != answer and not (
        w.holds(f.relation, e, f.tail) if ask == "head" else w.holds(f.relation, f.head, e))]
    if len(pool) < k:
        raise ValueError(f"too few {f.relation} candidates for distractors ({len(pool)}); enlarge the world")
    splits_of = w.splits_of[(f.relation, ask)]
    chosen: list[str] = []
    for split in _DISTRACTOR_SPLITS[f.split]:
        tier = [e for e in pool if e not in chosen and split in splits_of.get(e, ())]
        take = min(k - len(chosen), len(tier))
        chosen += [tier[i] for i in t.rng.choice(len(tier), size=take, replace=False)]
    rest = [e for e in pool if e not in chosen]  # entities that answer no fact on this side (rare)
    chosen += [rest[i] for i in t.rng.choice(len(rest), size=k - len(chosen), replace=False)]
    return [chosen[i] for i in t.rng.permutation(len(chosen))]


def _medqa_question(t: _Text, w: World, f: Fact, style: str) -> tuple[str, str, list[str], str]:
    """(question, answer, distractors, meta_info) for one fact in one style."""
    ask = {"vignette": "head" if f.relation in ("treats", "causes", "infects") else "tail"}.get(style, style)
    disease = f.tail if f.relation in ("treats", "causes", "infects") else None
    sex = t.pick(["man", "woman"])
    age = t.int(18, 80)
    slots = {"age": age, "A": _cap(_an(age)), "sex": sex, "He": "He" if sex == "man" else "She",
             "His": "His" if sex == "man" else "Her", "dur": t.pick(["three weeks", "two months", "six months"]),
             "weeks": t.int(2, 12), "finding": "", "dose": 0,
             _SLOT[f.relation][0]: f.head, _SLOT[f.relation][1]: f.tail}
    if f.relation in ("treats", "inhibits", "adverse_effect"):
        slots["dose"] = w.drugs[f.head]["dose"]
    if disease:
        s1, s2, _ = t.shuffled(w.diseases[disease]["symptoms"])
        slots.update(s1=s1, s2=s2)
        if f.relation == "treats":
            slots["finding"] = "Genetic testing shows a pathogenic variant." if w.diseases[disease]["gene"] \
                else "Cultures confirm the causative organism."
    template = t.pick(MEDQA_TEMPLATES[(f.relation, style)])
    question = t.fill(template, **slots).replace("  ", " ")
    answer = f.head if ask == "head" else f.tail
    return question, answer, _distractors(t, w, f, ask), "step2&3" if style == "vignette" else "step1"


def _styles(relation: str) -> list[str]:
    return [s for (r, s) in MEDQA_TEMPLATES if r == relation]


def _medqa(t: _Text, w: World, split: str, per_fact: int) -> list[dict]:
    """MedQA (US, 4 options) records for the split's facts; answer letters balanced over A-D."""
    items = []
    for f in (f for f in w.facts if f.split == split):
        styles = _styles(f.relation)
        order = t.shuffled(styles)
        for q in range(per_fact):
            items.append(_medqa_question(t, w, f, order[q % len(order)]))
    letters = _balanced(t.rng, len(items), 4)
    out = []
    for (question, answer, distractors, meta), pos in zip(items, letters):
        options = list(distractors)
        options.insert(pos, answer)
        out.append({"question": question, "answer": answer,
                    "options": {"ABCD"[i]: option for i, option in enumerate(options)},
                    "meta_info": meta, "answer_idx": "ABCD"[pos], "metamap_phrases": _phrases(question)})
    order = t.rng.permutation(len(out))
    return [out[i] for i in order]


# --- PubMedQA ------------------------------------------------------------------------------------------------

PQA_QUESTIONS = {
    "treats": ("Is {drug} effective for the treatment of {disease}?",
               "Does {drug} improve outcomes in patients with {disease}?"),
    "inhibits": ("Does {drug} inhibit {gene} activity?", "Is {gene} a molecular target of {drug}?"),
    "causes": ("Are variants in {gene} associated with {disease}?", "Do mutations in {gene} cause {disease}?"),
    "adverse_effect": ("Is {drug} associated with an increased risk of {ae}?", "Does {drug} cause {ae}?"),
    "infects": ("Is {org} a cause of {disease}?", "Does infection with {org} lead to {disease}?"),
}


def _pqa_item(t: _Text, w: World, relation: str, head: str, tail: str, label: str) -> dict:
    """One PubMedQA-format item whose context supports (yes), refutes (no) or is inconclusive (maybe)."""
    h, tl = _SLOT[relation]
    slots = {h: head, tl: tail}
    n = t.int(30, 800)
    question = t.pick(PQA_QUESTIONS[relation]).format(**slots)
    if relation in ("treats", "causes", "infects"):
        background = " ".join(_describe_disease(t, w, tail, 2))
    elif relation == "inhibits":
        background = _describe_gene(t, w, tail)
    else:
        background = f"{_cap(tail)} is a serious adverse drug reaction whose causes are incompletely understood."
    objective = {"treats": f"To determine whether {head} is effective in {tail}.",
                 "inhibits": f"To test whether {head} inhibits {tail}.",
                 "causes": f"To assess the contribution of {head} variants to {tail}.",
                 "adverse_effect": f"To evaluate the risk of {tail} in patients treated with {head}.",
                 "infects": f"To investigate the role of {head} in {tail}."}[relation]
    methods = {"treats": f"We randomly assigned {n} patients with {tail} to {head} or placebo for {t.int(8, 52)} weeks.",
               "inhibits": f"Activity of purified {tail} was measured in the presence of {head} at up to 10 \u00b5M.",
               "causes": f"We sequenced {tail} candidate genes, including {head}, in {n} patients and {n * 2} controls.",
               "adverse_effect": f"We followed {n * 10:,} patients treated with {head} and {n * 10:,} untreated controls.",
               "infects": f"We tested samples from {n} patients with {tail} and {n} controls for {head}."}[relation]
    p_yes, p_no = t.pval(True), t.pval(False)
    a, b = t.pct(45, 85), t.pct(8, 35)
    results = {
        ("treats", "yes"): f"Response rates were {a}% with {head} and {b}% with placebo ({p_yes}).",
        ("treats", "no"): f"Response rates were {b}% with {head} and {t.pct(8, 35)}% with placebo ({p_no}).",
        ("treats", "maybe"): f"Response rates were numerically higher with {head} ({a}% vs {b}%), but the "
                             f"difference was not significant (P = 0.0{t.int(6, 9)}) and subgroups were inconsistent.",
        ("inhibits", "yes"): f"{head} inhibited {tail} with a half-maximal inhibitory concentration of "
                             f"{t.rng.uniform(0.5, 80):.1f} nM.",
        ("inhibits", "no"): f"No measurable inhibition of {tail} was observed at any concentration of {head}.",
        ("inhibits", "maybe"): f"{head} reduced {tail} activity in one assay format but not in a second, "
                               f"orthogonal assay.",
        ("causes", "yes"): f"Rare {head} variants were found in {t.pct(60, 95)}% of patients and no controls ({p_yes}).",
        ("causes", "no"): f"The frequency of {head} variants did not differ between patients and controls ({p_no}).",
        ("causes", "maybe"): f"{head} variants were slightly enriched in patients, but the signal did not reach "
                             f"significance after correction (P = 0.0{t.int(6, 9)}).",
        ("adverse_effect", "yes"): f"{_cap(tail)} occurred in {t.pct(8, 25)}% of treated patients and "
                                   f"{t.pct(0.5, 3)}% of controls ({p_yes}).",
        ("adverse_effect", "no"): f"Rates of {tail} were similar in treated patients and controls ({p_no}).",
        ("adverse_effect", "maybe"): f"{_cap(tail)} was more frequent with {head} in one centre but not in the "
                                     f"others, and the pooled estimate was imprecise.",
        ("infects", "yes"): f"{head} was detected in {t.pct(80, 99)}% of patients and {t.pct(0, 3)}% of controls "
                            f"({p_yes}).",
        ("infects", "no"): f"{head} was detected at similar low rates in patients and controls ({p_no}).",
        ("infects", "maybe"): f"{head} was detected more often in patients, but contamination of some samples "
                              f"could not be excluded.",
    }[(relation, label)]
    long_answer = {
        "yes": _state(t, relation, head, tail) if relation != "treats" else
        t.pick([f"{head} improved outcomes in patients with {tail}.", _state(t, relation, head, tail)]),
        "no": {"treats": f"{head} did not improve outcomes in {tail}.",
               "inhibits": f"{head} does not inhibit {tail}.",
               "causes": f"Variants in {head} are not a cause of {tail}.",
               "adverse_effect": f"{head} was not associated with {tail}.",
               "infects": f"{head} is not the cause of {tail}."}[relation],
        "maybe": t.pick(["The evidence is inconclusive, and larger studies are needed.",
                         "These findings neither confirm nor exclude an effect; further studies are required."]),
    }[label]
    structured = t.chance(0.5)
    contexts = [background, objective, methods, results] if structured else [background, methods, results]
    labels = ["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS"] if structured else ["BACKGROUND", "METHODS", "RESULTS"]
    meshes = sorted({"Humans", head if relation != "adverse_effect" else "Drug-Related Side Effects and Adverse "
                     "Reactions", tail if relation != "adverse_effect" else head})
    return {"QUESTION": question, "CONTEXTS": contexts, "LABELS": labels, "MESHES": meshes,
            "YEAR": str(t.int(1995, 2024)), "reasoning_required_pred": label, "reasoning_free_pred": label,
            "final_decision": label, "LONG_ANSWER": long_answer}


def _false_tail(t: _Text, w: World, f: Fact) -> str:
    """A tail of the right type that does not hold for f's head (the pair a no/maybe item asks about)."""
    return _distractors(t, w, f, "tail", 1)[0]


def _pubmedqa(t: _Text, w: World, opts: Mapping[str, Any]) -> tuple[dict, dict]:
    """ori_pqal-format items: test ids about test facts, the train pool about train facts. "yes" items are
    true facts with a supporting context, "no" and "maybe" ask about a false pair of the same fact's head."""
    n_test = opts["pubmedqa_test_items"]
    parts = {"test": n_test, "train": opts["pubmedqa_items"] - n_test}
    items: list[tuple[bool, dict]] = []
    for split, n in parts.items():
        facts = [f for f in w.facts if f.split == split]
        if n and not facts:
            raise ValueError(f"pubmedqa {split} items need {split} facts; raise {split}_fact_fraction or "
                             f"lower pubmedqa_{'test_items' if split == 'test' else 'items'}")
        n_yes = int(round(n * opts["pubmedqa_yes_fraction"]))
        n_maybe = int(round(n * opts["pubmedqa_maybe_fraction"]))
        labels = ["yes"] * n_yes + ["maybe"] * n_maybe + ["no"] * (n - n_yes - n_maybe)
        facts_order = [facts[i] for i in _balanced(t.rng, n, len(facts))]
        for label, f in zip(t.shuffled(labels), facts_order):
            tail = f.tail if label == "yes" else _false_tail(t, w, f)
            items.append((split == "test", _pqa_item(t, w, f.relation, f.head, tail, label)))
    order = t.rng.permutation(len(items))
    pqal, truth = {}, {}
    for rank, i in enumerate(order):
        is_test, item = items[int(i)]
        pid = str(PUBMEDQA_ID_BASE + rank)
        pqal[pid] = item
        if is_test:
            truth[pid] = item["final_decision"]
    return pqal, truth


# --- MedAlpaca -------------------------------------------------------------------------------------------------

ALPACA_INSTRUCTIONS = ("Answer the medical question accurately.", "Respond to the question with the correct fact.",
                       "Give a short, correct answer to this question.",
                       "Answer this multiple-choice question and explain briefly.")
ALPACA_OPEN = {
    "treats": (("What is {drug} used to treat?", "{drug} is used to treat {disease}."),
               ("Which drug treats {disease}?", "{disease} is treated with {drug}.")),
    "inhibits": (("What is the molecular target of {drug}?", "{drug} inhibits {gene}."),
                 ("Name a drug that inhibits {gene}.", "{drug} is a selective inhibitor of {gene}.")),
    "causes": (("Variants in which gene cause {disease}?", "{disease} is caused by pathogenic variants in {gene}."),
               ("What disease do pathogenic {gene} variants cause?", "Pathogenic variants in {gene} cause {disease}.")),
    "adverse_effect": (("What adverse effect should be monitored during {drug} therapy?",
                        "Patients receiving {drug} should be monitored for {ae}."),),
    "infects": (("Which organism causes {disease}?", "{disease} is caused by infection with {org}."),
                ("What disease does {org} cause?", "{org} is the causative agent of {disease}.")),
}


def _medalpaca(t: _Text, w: World, per_fact: int) -> list[dict]:
    """Alpaca-format pairs about train facts only (open questions and lettered multiple choice)."""
    out = []
    for f in (f for f in w.facts if f.split == "train"):
        slots = {_SLOT[f.relation][0]: f.head, _SLOT[f.relation][1]: f.tail}
        for k in range(per_fact):
            if k % 2 == 0:
                question, answer = t.pick(ALPACA_OPEN[f.relation])
                out.append({"instruction": t.pick(ALPACA_INSTRUCTIONS[:3]), "input": t.fill(question, **slots),
                            "output": t.fill(answer, **slots)})
            else:
                style = t.pick([s for s in _styles(f.relation) if s != "vignette"])
                question, answer, distractors, _ = _medqa_question(t, w, f, style)
                options = distractors + [answer]
                options = t.shuffled(options)
                letter = "ABCD"[options.index(answer)]
                listing = "\n".join(f"{'ABCD'[i]}: {o}" for i, o in enumerate(options))
                out.append({"instruction": ALPACA_INSTRUCTIONS[3], "input": f"{question}\n{listing}",
                            "output": f"The answer is {letter}: {answer}. {_state(t, f.relation, f.head, f.tail)}"})
    return out


# --- writing --------------------------------------------------------------------------------------------------


def _write_gz(path: str, text: str) -> None:
    """Gzip with a fixed header (no name, mtime 0), so the bytes depend on the text only."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                 compresslevel=6) as gz:
        gz.write(text.encode("utf-8"))


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _resolve(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """WORLD_DEFAULTS with `options` over them; unknown keys, wrong types and impossible sizes fail by name."""
    given = dict(options.items()) if options is not None else {}
    unknown = sorted(set(given) - set(WORLD_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synthetic world option(s) {', '.join(map(repr, unknown))}; "
                         f"known options: {', '.join(sorted(WORLD_DEFAULTS))}")
    opts = dict(WORLD_DEFAULTS)
    for key, value in given.items():
        default = WORLD_DEFAULTS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(default, int) and not float(value).is_integer()):
            raise ValueError(f"synthetic world option {key!r} must be a {type(default).__name__}, got {value!r}")
        opts[key] = type(default)(value)

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ValueError(f"synthetic world option {key!r} = {opts[key]!r}: {what}")

    for key in ("genetic_diseases", "infectious_diseases", "target_genes"):
        need(opts[key] >= 4, key, "must be at least 4 (questions need 3 distractors of the same kind)")
    need(opts["targeted_drugs"] >= max(4, opts["target_genes"]), "targeted_drugs",
         "must be at least 4 and at least target_genes (every target gene has a drug)")
    need(opts["antimicrobials"] >= max(4, opts["infectious_diseases"]), "antimicrobials",
         "must be at least 4 and at least infectious_diseases (every infection has a treatment)")
    need(opts["targeted_drugs"] >= opts["genetic_diseases"], "targeted_drugs",
         "must be at least genetic_diseases (every genetic disease has a treatment)")
    need(1 <= opts["adverse_effects_per_drug"] <= 3, "adverse_effects_per_drug", "must be 1, 2 or 3")
    need(opts["adverse_effects_per_drug"] + 3 <= opts["adverse_effects"] <= len(ADVERSE_EFFECTS), "adverse_effects",
         f"must be between adverse_effects_per_drug + 3 and {len(ADVERSE_EFFECTS)}")
    for key in ("docs_per_fact", "records_per_file", "medqa_questions_per_fact"):
        need(opts[key] >= 1, key, "must be at least 1")
    for key in ("records_without_abstract", "exact_duplicates", "near_duplicates", "guidelines_per_disease",
                "replay_docs", "medalpaca_per_fact", "pubmedqa_test_items"):
        need(opts[key] >= 0, key, "must not be negative")
    for key in ("structured_fraction", "dev_fact_fraction", "test_fact_fraction", "pubmedqa_yes_fraction",
                "pubmedqa_maybe_fraction"):
        need(0.0 <= opts[key] <= 1.0, key, "must be in [0, 1]")
    need(opts["dev_fact_fraction"] + opts["test_fact_fraction"] <= 0.5, "test_fact_fraction",
         "with dev_fact_fraction must leave at least half of the facts for training")
    need(opts["pubmedqa_yes_fraction"] + opts["pubmedqa_maybe_fraction"] <= 1.0, "pubmedqa_maybe_fraction",
         "with pubmedqa_yes_fraction must not exceed 1")
    need(0 <= opts["pubmedqa_test_items"] <= opts["pubmedqa_items"], "pubmedqa_items",
         "must be at least pubmedqa_test_items")
    return opts


def _generate(out: str, opts: dict[str, Any]) -> dict:
    """Writes every file of the world under `out` (an empty folder) and returns the summary."""
    streams = np.random.SeedSequence(opts["seed"]).spawn(8)
    rng = lambda k: np.random.default_rng(streams[k])  # noqa: E731
    world = _build_world(opts, rng(0))
    names = _Names(rng(1))
    names.used |= set().union(*(set(n.lower().replace("-", " ").split()) for n in
                                list(world.drugs) + list(world.diseases) + list(world.genes) + list(world.organisms)))
    pubmed_counts, abstract_texts, coverage = _write_pubmed(out, opts, world, _Text(rng(2)), names)

    t = _Text(rng(3))
    societies = []
    for _ in range(max(3, opts["guidelines_per_disease"] * 2)):
        stem = names.eponym()
        field = t.pick(["Clinical Genetics", "Internal Medicine", "Infectious Diseases", "Pharmacotherapy",
                        "Rare Disorders"])
        societies.append((f"{stem} Society of {field}", (stem[0] + "S" + "".join(w[0] for w in field.split())).lower()))
    guidelines = []
    for disease in world.diseases:
        chosen = t.rng.choice(len(societies), size=opts["guidelines_per_disease"], replace=False) \
            if opts["guidelines_per_disease"] <= len(societies) else range(opts["guidelines_per_disease"])
        for j in chosen:
            guidelines.append(_guideline(t, world, disease, societies[int(j) % len(societies)], t.int(2008, 2024)))
    order = t.rng.permutation(len(guidelines))
    guidelines = [{"id": f"world-guideline-{rank:05d}", **guidelines[int(i)]} for rank, i in enumerate(order)]
    _write_text(os.path.join(out, "guidelines", "guidelines.jsonl"), _jsonl(guidelines))

    t = _Text(rng(4))
    replay = [{"id": f"world-general-{i:05d}", "text": _replay_doc(t, names.eponym)} for i in range(opts["replay_docs"])]
    _write_text(os.path.join(out, "replay", "general.jsonl"), _jsonl(replay))

    t = _Text(rng(5))
    medqa = {split: _medqa(t, world, split, opts["medqa_questions_per_fact"]) for split in ("train", "dev", "test")}
    for split, records in medqa.items():
        _write_text(os.path.join(out, "medqa", f"{split}.jsonl"), _jsonl(records))

    pqal, truth = _pubmedqa(_Text(rng(6)), world, opts)
    _write_text(os.path.join(out, "pubmedqa", "ori_pqal.json"), json.dumps(pqal, indent=1) + "\n")
    _write_text(os.path.join(out, "pubmedqa", "test_ground_truth.json"), json.dumps(truth, indent=1) + "\n")

    alpaca = _medalpaca(_Text(rng(7)), world, opts["medalpaca_per_fact"])
    _write_text(os.path.join(out, "medalpaca", "medical_meadow_world.json"),
                json.dumps(alpaca, indent=1, ensure_ascii=False) + "\n")

    terms = list(world.drugs) + list(world.genes) + list(world.diseases) + list(world.organisms)
    _write_text(os.path.join(out, "terms.txt"), "".join(term + "\n" for term in terms))
    facts = [{"id": f.id, "relation": f.relation, "head": f.head, "tail": f.tail, "split": f.split,
              "abstracts": int(coverage[i])} for i, f in enumerate(world.facts)]
    _write_text(os.path.join(out, "facts.jsonl"), _jsonl(facts))

    words = {"pubmed": pubmed_counts.pop("words"),
             "guidelines": sum(len((g["title"] + " " + g["text"]).split()) for g in guidelines),
             "replay": sum(len(r["text"].split()) for r in replay)}
    split_counts = {r: {s: sum(1 for f in world.facts if f.relation == r and f.split == s)
                        for s in ("train", "dev", "test")} for r in RELATIONS}
    labels = [item["final_decision"] for item in pqal.values()]
    files = []
    for root, _, names_ in os.walk(out):
        for name in names_:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                data = fh.read()
            files.append({"path": os.path.relpath(path, out).replace(os.sep, "/"), "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()})
    files.sort(key=lambda f: f["path"])
    return {
        "generator": "biomed_jax.data.synthetic_world", "version": GENERATOR_VERSION, "options": opts,
        "counts": {
            "entities": {"drugs": len(world.drugs), "diseases": len(world.diseases), "genes": len(world.genes),
                         "organisms": len(world.organisms), "adverse_effects": len(world.adverse_effects),
                         "terms": len(terms)},
            "facts": {"total": len(world.facts), "by_relation": split_counts,
                      "by_split": {s: sum(1 for f in world.facts if f.split == s) for s in ("train", "dev", "test")}},
            "pubmed": pubmed_counts, "guidelines": len(guidelines), "replay": len(replay),
            "medqa": {split: len(records) for split, records in medqa.items()},
            "pubmedqa": {"items": len(pqal), "test": len(truth), "train_pool": len(pqal) - len(truth),
                         "labels": {k: labels.count(k) for k in ("yes", "no", "maybe")}},
            "medalpaca": len(alpaca),
            "words": {**words, "corpus_total": sum(words.values())},
            "estimated_tokens": int(round(sum(words.values()) * 1.3)),
        },
        "files": files,
    }


def _check_existing(out_dir: str, opts: Mapping[str, Any]) -> dict:
    """The summary of the finished world at out_dir if it was made with these options by this generator.

    Not run_dir.ensure_same_settings: world.json, written last into the folder that is renamed into place,
    is both the mark of a finished world and the record of its options, and the folder is a data folder
    (sources glob into it; world.json hashes every file in it) with no room for a separate settings file.
    """
    summary = read_json(os.path.join(out_dir, "world.json"), "synthetic world summary")
    if summary.get("version") != GENERATOR_VERSION:
        raise ValueError(f"{out_dir} holds a synthetic world from generator version {summary.get('version')}, "
                         f"not {GENERATOR_VERSION}; delete the folder or choose another out_dir")
    old = summary.get("options", {})
    differ = differing_keys(old, opts)
    if differ:
        detail = ", ".join(f"{k}: {old.get(k)!r} there vs {opts.get(k)!r} asked" for k in differ)
        raise ValueError(f"{out_dir} already holds a synthetic world generated with different options ({detail}); "
                         f"delete the folder or choose another out_dir")
    return summary


def generate_world(out_dir: str, options: Mapping[str, Any] | None = None) -> dict:
    """Generates the synthetic world under `out_dir` (options over WORLD_DEFAULTS) and returns its summary.

    The files are written to `out_dir.tmp-<pid>` and renamed into place, `world.json` last, so a folder
    with a world.json is always complete. A finished world with the same options is reused as is; one
    with different options is an error (never silently overwritten).
    """
    opts = _resolve(options)
    out_dir = os.path.abspath(out_dir)
    marker = os.path.join(out_dir, "world.json")
    if os.path.exists(marker):
        return _check_existing(out_dir, opts)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not a finished synthetic world (no world.json); "
                              f"delete it or choose another out_dir")
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        summary = _generate(tmp, opts)
        _write_text(os.path.join(tmp, "world.json"), json.dumps(summary, indent=1) + "\n")
        if os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if os.path.exists(marker):  # another process finished the same world first
                return _check_existing(out_dir, opts)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(json.dumps(summary))
