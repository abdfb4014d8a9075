"""How facts are said: the text helpers and the varied phrasings of each relation."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biomed_jax.synthetic.facts import World
from biomed_jax.synthetic.vocabulary import GENE_FAMILIES


class Text:
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
        return cap(template.format(**slots))


def an(number: int) -> str:
    """The indefinite article before a spoken number ("an 80-year-old", "a 75-year-old")."""
    return "an" if str(number).startswith("8") or number in (11, 18) else "a"


def cap(sentence: str) -> str:
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
SLOT = {"treats": ("drug", "disease"), "inhibits": ("drug", "gene"), "causes": ("gene", "disease"),
         "adverse_effect": ("drug", "ae"), "infects": ("org", "disease")}


def state(t: Text, relation: str, head: str, tail: str) -> str:
    """One sentence stating the fact, in a randomly chosen phrasing."""
    h, tl = SLOT[relation]
    return t.fill(t.pick(STATEMENTS[relation]), **{h: head, tl: tail})


def describe_disease(t: Text, w: World, disease: str, n: int = 2) -> list[str]:
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
    return [cap(options[i]) for i in t.rng.choice(len(options), size=min(n, len(options)), replace=False)]


def describe_gene(t: Text, w: World, gene: str) -> str:
    a = w.genes[gene]
    if a["role"] == "target":
        desc = GENE_FAMILIES[a["family"]][0]
        return t.pick([f"{gene} encodes {desc} involved in {a['process']}.",
                       f"{gene} is {desc} that regulates {a['process']}.",
                       f"Aberrant {gene} activity drives {a['process']}."])
    return t.pick([f"{gene} encodes {a['function']}.", f"The {gene} gene encodes {a['function']}.",
                   f"{gene} codes for {a['function']}."])


def cause_of(t: Text, w: World, disease: str) -> tuple[str, tuple[str, str, str]]:
    """A sentence on the disease's cause and the fact it states."""
    a = w.diseases[disease]
    if a["gene"]:
        return state(t, "causes", a["gene"], disease), ("causes", a["gene"], disease)
    return state(t, "infects", a["organism"], disease), ("infects", a["organism"], disease)
