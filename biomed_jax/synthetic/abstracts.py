"""PubMed-style abstracts (trials, mechanisms, genetics, cases, reviews, microbiology, safety,
epidemiology), each stating facts among filler sentences (their templates: abstract_templates)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from biomed_jax.synthetic.abstract_templates import (
    BACKGROUND_FILLER, CASE, CASE_FILLER, CONCLUSION_FILLER, DESIGNS, ENDPOINTS, EPIDEMIOLOGY, GENETICS,
    LAB_FILLER, MECHANISM, METHODS_FILLER, MICROBIOLOGY, RESULTS_FILLER, REVIEW, REVIEW_FILLER, SAFETY, TRIAL)
from biomed_jax.synthetic.facts import Fact, World
from biomed_jax.synthetic.phrasing import an, cause_of, describe_disease, describe_gene, state, Text


def _recruitment(t: Text) -> dict[str, Callable[[], int]]:
    """The {start} and {end} slots of METHODS_FILLER: recruitment years, drawn only if a sentence asks."""
    start = functools.cache(lambda: t.int(1998, 2016))
    return {"start": start, "end": lambda: start() + t.int(1, 6)}


def _filler(t: Text, pool: Sequence[str], lo: int, hi: int) -> list[str]:
    """lo..hi distinct sentences from `pool`, each with fresh numbers of its own."""
    idx = t.rng.choice(len(pool), size=min(t.int(lo, hi), len(pool)), replace=False)
    return [t.fill(pool[i], **_recruitment(t)) for i in idx]


def _stated(t: Text, relation: str, head: str, tail: str) -> Callable[[], str]:
    """A slot value: a sentence stating the fact, said only if the chosen template asks for it."""
    return lambda: state(t, relation, head, tail)


@dataclasses.dataclass
class _Abstract:
    """One generated abstract before it is written as XML."""

    title: str
    sections: list[tuple[str, str]]      # (label, text); label "" for an unstructured abstract
    facts: set                            # fact keys the abstract states
    mesh: list[str]
    pub_types: list[str]


def _structure(t: Text, structured: bool, parts: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """Labelled sections, or one unlabelled paragraph of the same sentences."""
    if structured:
        return [(label, " ".join(sentences)) for label, sentences in parts if sentences]
    return [("", " ".join(s for _, sentences in parts for s in sentences))]


def _doc_trial(t: Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A controlled trial of the drug in its disease: treats, adverse effect, optionally cause and target."""
    d = w.drugs[drug]
    disease = d["disease"]
    facts = {("treats", drug, disease)}
    wk = t.pick([8, 12, 16, 24, 26, 48, 52])
    n = t.int(40, 900)
    background = describe_disease(t, w, disease, 1) + [t.say(BACKGROUND_FILLER, disease=disease)]
    if t.chance(0.5) or {k[0] for k in want} & {"causes", "infects"}:
        sentence, key = cause_of(t, w, disease)
        background.insert(t.int(0, len(background)), sentence)
        facts.add(key)
    if d["target"] and (t.chance(0.5) or any(k[0] == "inhibits" for k in want)):
        background.append(state(t, "inhibits", drug, d["target"]))
        facts.add(("inhibits", drug, d["target"]))
    design = t.pick(DESIGNS)
    slots = {"drug": drug, "disease": disease, "dose": d["dose"], "design": design, "n": n, "wk": wk}
    methods = [t.say(TRIAL["methods"], **slots),
               t.say(TRIAL["endpoint"], endpoint=t.render(t.pick(ENDPOINTS), wk=wk))]
    methods += _filler(t, METHODS_FILLER, 1, 3)
    results = _filler(t, RESULTS_FILLER, 1, 2) + [t.say(TRIAL["efficacy"], drug=drug)]
    for ae in d["aes"]:
        results.append(t.say(TRIAL["adverse"], drug=drug, ae=ae,
                             adverse_effect=_stated(t, "adverse_effect", drug, ae)))
        facts.add(("adverse_effect", drug, ae))
    if t.chance(0.4):
        results.append(t.say(TRIAL["serious"]))
    conclusions = [state(t, "treats", drug, disease)]
    if t.chance(0.6):
        conclusions.append(t.pick(CONCLUSION_FILLER))
    title = t.say(TRIAL["titles"], design_kind=design.split(",")[0], **slots)
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Adult", "Treatment Outcome", "Double-Blind Method", disease, drug],
        ["Journal Article", "Randomized Controlled Trial"] + (["Multicenter Study"] if t.chance(0.4) else []))


def _doc_mechanism(t: Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A preclinical study of how the drug works: inhibits, treats."""
    d = w.drugs[drug]
    gene, disease = d["target"], d["disease"]
    facts = {("inhibits", drug, gene), ("treats", drug, disease)}
    slots = {"drug": drug, "gene": gene, "disease": disease, "process": w.genes[gene]["process"],
             "ic50": lambda: t.render(t.pick(MECHANISM["ic50"])),
             "inhibits": _stated(t, "inhibits", drug, gene), "treats": _stated(t, "treats", drug, disease)}
    background = [describe_gene(t, w, gene), t.say(MECHANISM["background"], **slots)]
    methods = [t.say(MECHANISM["methods"], **slots)] + _filler(t, LAB_FILLER, 1, 3)
    results = [t.say(MECHANISM["binding"], **slots), t.say(MECHANISM["effect"], **slots)]
    conclusions = [t.say(MECHANISM["target"], **slots), t.say(MECHANISM["rationale"], **slots)]
    title = t.say(MECHANISM["titles"], **slots)
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Animals", "Mice", "Enzyme Inhibitors", gene, drug], ["Journal Article"])


def _doc_genetics(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A gene discovery or genotype-phenotype study: causes; sometimes treats."""
    a = w.diseases[disease]
    gene = a["gene"]
    facts = {("causes", gene, disease)}
    n = t.int(5, 120)
    variants = functools.cache(lambda: t.int(2, min(n, 30) + 1))
    slots = {"gene": gene, "disease": disease, "n": n, "variants": variants,
             "families": lambda: min(n, variants() + t.int(0, 20))}
    background = describe_disease(t, w, disease, 2)
    if t.chance(0.5):
        background.append(t.say(BACKGROUND_FILLER, disease=disease))
    methods = [t.say(GENETICS["methods"], **slots)] + _filler(t, METHODS_FILLER[:2] + METHODS_FILLER[9:11], 0, 2)
    results = _filler(t, RESULTS_FILLER[:1], 0, 1) + [t.say(GENETICS["variants"], **slots), describe_gene(t, w, gene)]
    if t.chance(0.5):
        results.append(t.say(GENETICS["onset"]))
    conclusions = [state(t, "causes", gene, disease)]
    if a["drugs"] and (t.chance(0.35) or any(k[0] == "treats" for k in want)):
        drug = next((k[1] for k in want if k[0] == "treats"), None) or t.pick(a["drugs"])
        conclusions.append(t.say(GENETICS["response"], drug=drug, treats=_stated(t, "treats", drug, disease)))
        facts.add(("treats", drug, disease))
    title = t.say(GENETICS["titles"], **slots)
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Mutation", "Pedigree", "Genetic Predisposition to Disease", disease, gene],
        ["Journal Article"])


def _doc_case(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A case report: cause, treatment and an adverse effect, in narrative form (never structured)."""
    a = w.diseases[disease]
    drug = next((k[1] for k in want if k[0] in ("treats", "adverse_effect")), None) or t.pick(a["drugs"])
    d = w.drugs[drug]
    ae = next((k[2] for k in want if k[0] == "adverse_effect"), None) or t.pick(d["aes"])
    age, sex = t.int(6, 84), t.pick(["man", "woman"])
    weeks = functools.cache(lambda: t.int(2, 30))
    s1, s2, _ = t.shuffled(a["symptoms"])
    slots = {"disease": disease, "drug": drug, "dose": d["dose"], "ae": ae, "age": age, "an_age": an(age),
             "sex": sex, "He": "He" if sex == "man" else "She", "weeks": weeks, "an_weeks": lambda: an(weeks()),
             "s1": s1, "s2": s2, "gene": a["gene"], "org": a["organism"],
             "adverse_effect": _stated(t, "adverse_effect", drug, ae), "treats": _stated(t, "treats", drug, disease)}
    facts = {("treats", drug, disease), ("adverse_effect", drug, ae)}
    if a["gene"]:
        finding = t.say(CASE["gene_finding"], **slots)
        facts.add(("causes", a["gene"], disease))
    else:
        finding = t.say(CASE["organism_finding"], **slots)
        facts.add(("infects", a["organism"], disease))
    text = [t.say(CASE["presentation"], **slots), *_filler(t, CASE_FILLER[:5], 1, 2), finding,
            t.say(CASE["diagnosis"], **slots), t.say(CASE["course"], **slots),
            *_filler(t, CASE_FILLER[5:], 0, 1), t.say(CASE["lesson"], **slots)]
    title = t.say(CASE["titles"], **slots)
    return _Abstract(title, [("", " ".join(text))], facts, ["Humans", "Male" if sex == "man" else "Female",
                                                             disease, drug], ["Case Reports"])


def _doc_review(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A narrative review of a disease: its cause, every drug for it, their targets and adverse effects."""
    a = w.diseases[disease]
    cause, key = cause_of(t, w, disease)
    facts = {key}
    text = describe_disease(t, w, disease, 3) + [cause]
    if a["gene"] and t.chance(0.5):
        text.append(describe_gene(t, w, a["gene"]))
    for drug in t.shuffled(a["drugs"]):
        d = w.drugs[drug]
        text.append(state(t, "treats", drug, disease))
        facts.add(("treats", drug, disease))
        if d["target"] and (t.chance(0.6) or ("inhibits", drug, d["target"]) in want):
            text.append(state(t, "inhibits", drug, d["target"]))
            facts.add(("inhibits", drug, d["target"]))
        for ae in d["aes"]:
            if t.chance(0.6) or ("adverse_effect", drug, ae) in want:
                text.append(state(t, "adverse_effect", drug, ae))
                facts.add(("adverse_effect", drug, ae))
    text += _filler(t, REVIEW_FILLER, 1, 3)
    text.append(t.say(REVIEW["scope"]))
    title = t.say(REVIEW["titles"], disease=disease)
    return _Abstract(title, [("", " ".join(text))], facts, ["Humans", disease], ["Journal Article", "Review"])


def _doc_microbiology(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """Isolates from patients with an infection: infects, treats (antimicrobials), sometimes adverse."""
    a = w.diseases[disease]
    org = a["organism"]
    facts = {("infects", org, disease)}
    slots = {"org": org, "disease": disease, "gram": w.organisms[org]["gram"], "n": t.int(20, 600),
             "infects": _stated(t, "infects", org, disease)}
    background = describe_disease(t, w, disease, 1) + [t.say(MICROBIOLOGY["background"], **slots)]
    methods = [t.say(MICROBIOLOGY["methods"], **slots)]
    methods += _filler(t, METHODS_FILLER[4:6] + METHODS_FILLER[10:11] + LAB_FILLER[:3], 1, 2)
    results = [t.say(MICROBIOLOGY["isolation"], **slots)]
    drug = next((k[1] for k in want if k[0] == "treats"), None) or t.pick(a["drugs"])
    results.append(t.say(MICROBIOLOGY["susceptibility"], drug=drug))
    conclusions = [t.say(MICROBIOLOGY["cause"], **slots), state(t, "treats", drug, disease)]
    facts.add(("treats", drug, disease))
    if t.chance(0.3) or any(k[0] == "adverse_effect" for k in want):
        ae = w.drugs[drug]["aes"][0]
        conclusions.append(t.say(MICROBIOLOGY["monitoring"], ae=ae, drug=drug))
        facts.add(("adverse_effect", drug, ae))
    title = t.say(MICROBIOLOGY["titles"], **slots)
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Microbial Sensitivity Tests", disease, org], ["Journal Article"])


def _doc_safety(t: Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A pharmacovigilance study: adverse effect, treats."""
    d = w.drugs[drug]
    disease = d["disease"]
    ae = next((k[2] for k in want if k[0] == "adverse_effect"), None) or t.pick(d["aes"])
    facts = {("adverse_effect", drug, ae), ("treats", drug, disease)}
    slots = {"drug": drug, "disease": disease, "ae": ae, "n": t.int(200, 20000),
             "adverse_effect": _stated(t, "adverse_effect", drug, ae)}
    background = [state(t, "treats", drug, disease), t.say(SAFETY["background"], **slots)]
    methods = [t.say(SAFETY["methods"], **slots)]
    methods += _filler(t, METHODS_FILLER[5:6] + METHODS_FILLER[9:11], 1, 2)
    results = [t.say(SAFETY["incidence"], **slots), t.say(SAFETY["onset"])]
    results += _filler(t, RESULTS_FILLER[:1] + RESULTS_FILLER[5:7], 0, 2)
    conclusions = [state(t, "adverse_effect", drug, ae)]
    title = t.say(SAFETY["titles"], **slots)
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Adverse Drug Reaction Reporting Systems", drug], ["Journal Article"])


def _doc_epidemiology(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A registry or cohort description of a disease: its cause and presentation."""
    cause, key = cause_of(t, w, disease)
    n = t.int(50, 5000)
    background = [t.say(BACKGROUND_FILLER, disease=disease)]
    methods = [t.say(EPIDEMIOLOGY["methods"], n=n, disease=disease)] + _filler(t, METHODS_FILLER[9:11], 0, 2)
    results = describe_disease(t, w, disease, 2) + [cause, t.say(EPIDEMIOLOGY["age"])]
    results += _filler(t, RESULTS_FILLER[5:7], 0, 1)
    conclusions = [t.pick(CONCLUSION_FILLER)]
    title = t.say(EPIDEMIOLOGY["titles"], disease=disease)
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


def abstracts(opts: Mapping[str, Any], w: World, t: Text) -> tuple[list[_Abstract], np.ndarray]:
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
