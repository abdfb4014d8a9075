"""PubMed-style abstracts (trials, mechanisms, genetics, cases, reviews, microbiology, safety,
epidemiology), each stating facts among filler sentences."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from biomed_jax.synthetic.facts import Fact, World
from biomed_jax.synthetic.phrasing import an, cap, cause_of, describe_disease, describe_gene, state, Text


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


def _filler(t: "Text", pool: Sequence[str], lo: int, hi: int) -> list[str]:
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
    background = describe_disease(t, w, disease, 1) + [t.fill(t.pick(BACKGROUND_FILLER), disease=disease)]
    if t.chance(0.5) or {k[0] for k in want} & {"causes", "infects"}:
        sentence, key = cause_of(t, w, disease)
        background.insert(t.int(0, len(background)), sentence)
        facts.add(key)
    if d["target"] and (t.chance(0.5) or any(k[0] == "inhibits" for k in want)):
        background.append(state(t, "inhibits", drug, d["target"]))
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
            state(t, "adverse_effect", drug, ae),
            f"{cap(ae)} occurred in {t.pct(8, 30)}% of patients receiving {drug} and led to "
            f"discontinuation in {t.pct(1, 6)}%."]))
        facts.add(("adverse_effect", drug, ae))
    if t.chance(0.4):
        results.append(f"Serious adverse events were reported in {t.pct(2, 12)}% and {t.pct(2, 12)}% of "
                       f"patients, respectively.")
    conclusions = [state(t, "treats", drug, disease)]
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


def _doc_mechanism(t: Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A preclinical study of how the drug works: inhibits, treats."""
    d = w.drugs[drug]
    gene, disease = d["target"], d["disease"]
    facts = {("inhibits", drug, gene), ("treats", drug, disease)}
    ic50 = t.pick([f"{t.rng.uniform(0.2, 90):.1f} nM", f"{t.rng.uniform(0.1, 2):.2f} \u00b5M"])
    background = [describe_gene(t, w, gene), t.pick([
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
        state(t, "inhibits", drug, gene)]),
        t.pick([f"Inhibition reduced markers of {w.genes[gene]['process']} by {t.pct(30, 80)}%.",
                f"Knockdown of {gene} reproduced the effects of {drug}.",
                f"Treated animals showed a {t.pct(30, 80)}% reduction in disease scores."])]
    conclusions = [t.pick([state(t, "inhibits", drug, gene),
                           f"These data identify {gene} as the molecular target of {drug}."]),
                   t.pick([f"They provide a mechanistic rationale for the use of {drug} in {disease}.",
                           state(t, "treats", drug, disease)])]
    title = t.pick([
        f"{drug} inhibits {gene} and attenuates disease activity in models of {disease}",
        f"Structural basis of {gene} inhibition by {drug}",
        f"Preclinical characterization of {drug}, a selective {gene} inhibitor",
        f"Targeting {gene} with {drug}: mechanism and therapeutic implications for {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Animals", "Mice", "Enzyme Inhibitors", gene, drug], ["Journal Article"])


def _doc_genetics(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A gene discovery or genotype-phenotype study: causes; sometimes treats."""
    a = w.diseases[disease]
    gene = a["gene"]
    facts = {("causes", gene, disease)}
    n = t.int(5, 120)
    k = t.int(2, min(n, 30) + 1)
    background = describe_disease(t, w, disease, 2)
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
        describe_gene(t, w, gene)]
    if t.chance(0.5):
        results.append(f"Earlier onset was associated with truncating variants ({t.pval()}).")
    conclusions = [state(t, "causes", gene, disease)]
    if a["drugs"] and (t.chance(0.35) or any(k_[0] == "treats" for k_ in want)):
        drug = next((k_[1] for k_ in want if k_[0] == "treats"), None) or t.pick(a["drugs"])
        conclusions.append(t.pick([f"Affected individuals responded to {drug}.", state(t, "treats", drug, disease)]))
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


def _doc_case(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
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
        t.pick([f"We describe {an(age)} {age}-year-old {sex} who presented with {s1} and {s2}.",
                f"{cap(an(age))} {age}-year-old {sex} was referred with {an(weeks)} {weeks}-week history of {s1} and {s2}."]),
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
                f"during {drug} therapy.", state(t, "adverse_effect", drug, ae),
                state(t, "treats", drug, disease)])]
    title = t.pick([f"{disease} treated with {drug}: a case report",
                    f"{cap(ae)} during {drug} therapy for {disease}",
                    f"An unusual presentation of {disease} in {an(age)} {age}-year-old {sex}"])
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
    text.append(t.pick(["This review summarizes current evidence and highlights open questions.",
                        "We discuss diagnostic strategies and emerging therapies.",
                        "Areas of uncertainty and priorities for research are outlined."]))
    title = t.pick([f"{disease}: current concepts in diagnosis and treatment",
                    f"Advances in the management of {disease}",
                    f"{disease}: an update for clinicians", f"Pathogenesis and therapy of {disease}"])
    return _Abstract(title, [("", " ".join(text))], facts, ["Humans", disease], ["Journal Article", "Review"])


def _doc_microbiology(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """Isolates from patients with an infection: infects, treats (antimicrobials), sometimes adverse."""
    a = w.diseases[disease]
    org = a["organism"]
    facts = {("infects", org, disease)}
    n = t.int(20, 600)
    background = describe_disease(t, w, disease, 1) + [t.pick([
        f"{org} is a {w.organisms[org]['gram']} organism of increasing clinical importance.",
        f"The epidemiology of {org} is poorly described."])]
    methods = [t.pick([f"We collected {n} isolates from patients with {disease} over {t.int(2, 10)} years.",
                       f"Clinical isolates (n = {n}) were tested by broth microdilution.",
                       f"We prospectively enrolled {n} patients with suspected {disease}."])]
    methods += _filler(t, METHODS_FILLER[4:6] + METHODS_FILLER[10:11] + LAB_FILLER[:3], 1, 2)
    results = [t.pick([f"{org} was isolated in {t.pct(70, 99)}% of confirmed cases.", state(t, "infects", org, disease)])]
    drug = next((k[1] for k in want if k[0] == "treats"), None) or t.pick(a["drugs"])
    results.append(t.pick([f"All isolates were susceptible to {drug}.",
                           f"{drug} cleared the infection in {t.pct(75, 98)}% of treated patients."]))
    conclusions = [t.pick([state(t, "infects", org, disease), f"{org} remains the cause of {disease}."]),
                   state(t, "treats", drug, disease)]
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


def _doc_safety(t: Text, w: World, drug: str, structured: bool, want: set) -> _Abstract:
    """A pharmacovigilance study: adverse effect, treats."""
    d = w.drugs[drug]
    disease = d["disease"]
    ae = next((k[2] for k in want if k[0] == "adverse_effect"), None) or t.pick(d["aes"])
    facts = {("adverse_effect", drug, ae), ("treats", drug, disease)}
    n = t.int(200, 20000)
    background = [state(t, "treats", drug, disease), t.pick([
        f"Post-marketing data on the safety of {drug} are limited.",
        f"The safety profile of {drug} in routine practice has not been described."])]
    methods = [t.pick([f"We analysed {n:,} reports in a national pharmacovigilance database.",
                       f"This retrospective cohort included {n:,} patients who started {drug} between "
                       f"{t.int(2005, 2014)} and {t.int(2015, 2023)}.",
                       f"We performed a disproportionality analysis of {n:,} spontaneous reports."])]
    methods += _filler(t, METHODS_FILLER[5:6] + METHODS_FILLER[9:11], 1, 2)
    results = [t.pick([f"{cap(ae)} was reported in {t.pct(5, 25)}% of patients treated with {drug}.",
                       state(t, "adverse_effect", drug, ae),
                       f"The reporting odds ratio for {ae} with {drug} was {t.rng.uniform(2, 12):.1f}."]),
               f"Median time to onset was {t.int(2, 30)} weeks."] + _filler(t, RESULTS_FILLER[:1] + RESULTS_FILLER[5:7], 0, 2)
    conclusions = [state(t, "adverse_effect", drug, ae)]
    title = t.pick([f"{cap(ae)} associated with {drug}: a pharmacovigilance study",
                    f"Incidence of {ae} in patients treated with {drug} for {disease}",
                    f"Real-world safety of {drug} in {disease}"])
    return _Abstract(title, _structure(t, structured, [
        ("BACKGROUND", background), ("METHODS", methods), ("RESULTS", results), ("CONCLUSIONS", conclusions)]),
        facts, ["Humans", "Adverse Drug Reaction Reporting Systems", drug], ["Journal Article"])


def _doc_epidemiology(t: Text, w: World, disease: str, structured: bool, want: set) -> _Abstract:
    """A registry or cohort description of a disease: its cause and presentation."""
    cause, key = cause_of(t, w, disease)
    n = t.int(50, 5000)
    background = [t.fill(t.pick(BACKGROUND_FILLER), disease=disease)]
    methods = [t.pick([f"We analysed a national registry of {n:,} patients with {disease}.",
                       f"This population-based study identified {n:,} cases of {disease} over {t.int(5, 25)} years."])]
    methods += _filler(t, METHODS_FILLER[9:11], 0, 2)
    results = describe_disease(t, w, disease, 2) + [cause, f"The median age at diagnosis was {t.int(4, 70)} years."]
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
