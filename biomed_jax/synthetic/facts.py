"""The fact graph: entities tied by relations (drug treats disease, drug inhibits gene, gene variant causes
disease, drug has an adverse effect, organism causes disease), split into train/dev/test facts."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping

import numpy as np

from biomed_jax.synthetic.vocabulary import (
    ADVERSE_EFFECTS, ANTIMICROBIAL_SUFFIXES, GENE_FAMILIES, GENE_FUNCTIONS, INHERITANCE, Names, ORGANS,
    PROCESSES, SYMPTOMS, TRANSMISSION)


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


def balanced(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """n indices into range(k), each used floor(n/k) or ceil(n/k) times, in random order; every index
    is used at least once when n >= k."""
    out = [i % k for i in range(n)]
    rng.shuffle(out)
    return out


def build_world(opts: Mapping[str, Any], rng: np.random.Generator) -> World:
    """Entities and facts. Every genetic disease has its own causal gene and every infectious disease its
    own organism (one-to-one); each drug treats exactly one disease and a targeted drug inhibits exactly
    one gene, so "which disease does X treat" has one answer."""
    names = Names(rng)
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
    target_of = balanced(rng, n_targeted, len(targets))
    disease_of = balanced(rng, n_targeted, len(genetic))
    infection_of = balanced(rng, n_anti, len(infectious))
    ae_slots = balanced(rng, (n_targeted + n_anti) * opts["adverse_effects_per_drug"], len(aes))
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
