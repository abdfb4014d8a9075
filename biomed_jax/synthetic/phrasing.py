"""How facts are said: the text helpers and the varied phrasings of each relation."""

from __future__ import annotations

import string
from typing import Any, Callable, Sequence

import numpy as np

from biomed_jax.synthetic.facts import World
from biomed_jax.synthetic.vocabulary import GENE_FAMILIES


class Text:
    """Random choices and numbers for one stream of text; every method draws from `rng` only.

    Templates are data: plain strings with named slots. `say` picks one template first and only then
    draws the random numbers that the chosen template itself names, in the order they appear:
        {int:3-12}    an integer from 3 to 12 (inclusive)
        {pct:8-30}    a percentage from 8 to 30, one decimal ("17.4")
        {num:0.10-2.00}  a number in that range, with as many decimals as its bounds are written with
        {pval}        a significant P value ("P < 0.001"); {pval:ns} a non-significant one ("P = 0.43")
        {pick:a|b|c}  one of the listed words
    Any other slot is a keyword argument (with an optional format spec, "{n:,}"); a callable slot is
    called at its first use in the template, so a value only some templates need is drawn only for them.
    """

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

    def render(self, template: str, **slots: Any) -> str:
        """The template with its slots filled, numeric slots drawn left to right (no capitalising)."""
        out, values = [], {}
        for literal, field, spec, conversion in _FORMATTER.parse(template):
            out.append(literal)
            if field is None:
                continue
            if conversion:
                raise ValueError(f"template slot {{{field}!{conversion}}}: conversions are not supported")
            if field in _DRAWS:
                out.append(_DRAWS[field](self, spec))
                continue
            if field not in values:
                if field not in slots:
                    raise KeyError(f"template slot {{{field}}} has no value in: {template!r}")
                value = slots[field]
                values[field] = value() if callable(value) else value
            out.append(format(values[field], spec))
        return "".join(out)

    def fill(self, template: str, **slots: Any) -> str:
        """The rendered template as a sentence: its first letter upper-cased."""
        return cap(self.render(template, **slots))

    def say(self, templates: str | Sequence[str], **slots: Any) -> str:
        """One of `templates` (or the one template given as a string), chosen first, then filled."""
        return self.fill(templates if isinstance(templates, str) else self.pick(templates), **slots)


def _bounds(spec: str) -> tuple[str, str]:
    lo, sep, hi = spec.partition("-")
    if not (sep and lo and hi):
        raise ValueError(f"a numeric template slot needs a range LO-HI, got {spec!r}")
    return lo, hi


def _num(t: Text, spec: str) -> str:
    lo, hi = _bounds(spec)
    decimals = max(len(lo.partition(".")[2]), len(hi.partition(".")[2]))
    return f"{t.rng.uniform(float(lo), float(hi)):.{decimals}f}"


def _pval(t: Text, spec: str) -> str:
    if spec not in ("", "ns"):
        raise ValueError(f"{{pval:{spec}}}: the only P value spec is 'ns' (not significant)")
    return t.pval(spec != "ns")


_FORMATTER = string.Formatter()
_DRAWS: dict[str, Callable[[Text, str], str]] = {
    "int": lambda t, spec: str(t.int(*map(int, _bounds(spec)))),
    "pct": lambda t, spec: t.pct(*map(float, _bounds(spec))),
    "num": _num,
    "pval": _pval,
    "pick": lambda t, spec: t.pick(spec.split("|")),
}


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
    return t.say(STATEMENTS[relation], **{h: head, tl: tail})


DISEASE_TRAITS = (
    "{disease} typically presents with {s1} and {s2}.",
    "Common manifestations of {disease} include {s1}, {s2} and {s3}.",
    "{disease} mainly affects the {organ}.",
    "{disease} affects approximately 1 in {prevalence:,} individuals.",
    "Symptoms of {disease} usually begin in {onset}.",
    "Patients with {disease} often report {s3}.",
    "{disease} is a disorder of the {organ} that commonly begins in {onset}.",
)
AUTOSOMAL_TRAITS = ("{disease} is inherited in an {inheritance} pattern.",
                    "{disease} is a rare {inheritance} disorder.")
X_LINKED_TRAITS = ("{disease} shows {inheritance} inheritance.", "{disease} is a rare {inheritance} disorder.")
INFECTIOUS_TRAITS = ("{disease} is transmitted {transmission}.",
                     "Most infections leading to {disease} are acquired {transmission}.")
TARGET_GENE = ("{gene} encodes {desc} involved in {process}.", "{gene} is {desc} that regulates {process}.",
               "Aberrant {gene} activity drives {process}.")
DISEASE_GENE = ("{gene} encodes {function}.", "The {gene} gene encodes {function}.", "{gene} codes for {function}.")


def describe_disease(t: Text, w: World, disease: str, n: int = 2) -> list[str]:
    """Sentences on the disease's (consistent) attributes: symptoms, organ, prevalence, inheritance."""
    a = w.diseases[disease]
    s1, s2, s3 = a["symptoms"]
    inheritance = a["inheritance"]
    options = DISEASE_TRAITS + (INFECTIOUS_TRAITS if not inheritance else
                                AUTOSOMAL_TRAITS if inheritance.startswith("a") else X_LINKED_TRAITS)
    slots = {"disease": disease, "s1": s1, "s2": s2, "s3": s3, "organ": a["organ"],
             "prevalence": a["prevalence"], "onset": a["onset"], "inheritance": inheritance,
             "transmission": a["transmission"]}
    return [t.fill(options[i], **slots) for i in t.rng.choice(len(options), size=min(n, len(options)), replace=False)]


def describe_gene(t: Text, w: World, gene: str) -> str:
    a = w.genes[gene]
    if a["role"] == "target":
        return t.say(TARGET_GENE, gene=gene, desc=GENE_FAMILIES[a["family"]][0], process=a["process"])
    return t.say(DISEASE_GENE, gene=gene, function=a["function"])


def cause_of(t: Text, w: World, disease: str) -> tuple[str, tuple[str, str, str]]:
    """A sentence on the disease's cause and the fact it states."""
    a = w.diseases[disease]
    if a["gene"]:
        return state(t, "causes", a["gene"], disease), ("causes", a["gene"], disease)
    return state(t, "infects", a["organism"], disease), ("infects", a["organism"], disease)
