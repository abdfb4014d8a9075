"""Held-out questions about the facts: MedQA-style multiple choice, PubMedQA items, MedAlpaca instruction
pairs."""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from biomed_jax.synthetic.facts import balanced, Fact, World
from biomed_jax.synthetic.phrasing import an, cap, describe_disease, describe_gene, SLOT, state, Text
from biomed_jax.synthetic.pubmed import PUBMEDQA_ID_BASE


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
        "{A} {age}-year-old {sex} presents with {s1} and {s2} for {pick:three weeks|two months|six months}. "
        "{finding} {He} is diagnosed with {disease}. Which of the following is the most appropriate pharmacotherapy?",
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
        "{A} {age}-year-old {sex} began taking {drug} {int:2-12} weeks ago. At a follow-up visit, which of the "
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


def _distractors(t: Text, w: World, f: Fact, ask: str, k: int = 3) -> list[str]:
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


def _medqa_question(t: Text, w: World, f: Fact, style: str) -> tuple[str, str, list[str], str]:
    """(question, answer, distractors, meta_info) for one fact in one style."""
    ask = {"vignette": "head" if f.relation in ("treats", "causes", "infects") else "tail"}.get(style, style)
    disease = f.tail if f.relation in ("treats", "causes", "infects") else None
    slots = {SLOT[f.relation][0]: f.head, SLOT[f.relation][1]: f.tail, "finding": "", "dose": 0}
    if f.relation in ("treats", "inhibits", "adverse_effect"):
        slots["dose"] = w.drugs[f.head]["dose"]
    if style == "vignette":  # every vignette names a patient, and those about a disease its symptoms
        sex = t.pick(["man", "woman"])
        age = t.int(18, 80)
        slots.update(age=age, A=cap(an(age)), sex=sex, He="He" if sex == "man" else "She",
                     His="His" if sex == "man" else "Her")
        if disease:
            s1, s2, _ = t.shuffled(w.diseases[disease]["symptoms"])
            slots.update(s1=s1, s2=s2)
    if f.relation == "treats":
        slots["finding"] = "Genetic testing shows a pathogenic variant." if w.diseases[f.tail]["gene"] \
            else "Cultures confirm the causative organism."
    question = t.say(MEDQA_TEMPLATES[(f.relation, style)], **slots).replace("  ", " ")
    answer = f.head if ask == "head" else f.tail
    return question, answer, _distractors(t, w, f, ask), "step2&3" if style == "vignette" else "step1"


def _styles(relation: str) -> list[str]:
    return [s for (r, s) in MEDQA_TEMPLATES if r == relation]


def medqa_questions(t: Text, w: World, split: str, per_fact: int) -> list[dict]:
    """MedQA (US, 4 options) records for the split's facts; answer letters balanced over A-D."""
    items = []
    for f in (f for f in w.facts if f.split == split):
        styles = _styles(f.relation)
        order = t.shuffled(styles)
        for q in range(per_fact):
            items.append(_medqa_question(t, w, f, order[q % len(order)]))
    letters = balanced(t.rng, len(items), 4)
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


# An item's context, as data. {head} and {tail} are the pair asked about; {n}, {n2} and {n10} are a study size
# and its multiples; {fact} is a sentence stating the (true) fact.
PQA_AE_BACKGROUND = "{tail} is a serious adverse drug reaction whose causes are incompletely understood."
PQA_OBJECTIVES = {
    "treats": "To determine whether {head} is effective in {tail}.",
    "inhibits": "To test whether {head} inhibits {tail}.",
    "causes": "To assess the contribution of {head} variants to {tail}.",
    "adverse_effect": "To evaluate the risk of {tail} in patients treated with {head}.",
    "infects": "To investigate the role of {head} in {tail}.",
}
PQA_METHODS = {
    "treats": "We randomly assigned {n} patients with {tail} to {head} or placebo for {int:8-52} weeks.",
    "inhibits": "Activity of purified {tail} was measured in the presence of {head} at up to 10 \u00b5M.",
    "causes": "We sequenced {tail} candidate genes, including {head}, in {n} patients and {n2} controls.",
    "adverse_effect": "We followed {n10:,} patients treated with {head} and {n10:,} untreated controls.",
    "infects": "We tested samples from {n} patients with {tail} and {n} controls for {head}.",
}
PQA_RESULTS = {
    ("treats", "yes"): "Response rates were {pct:45-85}% with {head} and {pct:8-35}% with placebo ({pval}).",
    ("treats", "no"): "Response rates were {pct:8-35}% with {head} and {pct:8-35}% with placebo ({pval:ns}).",
    ("treats", "maybe"): "Response rates were numerically higher with {head} ({pct:45-85}% vs {pct:8-35}%), but the "
                         "difference was not significant (P = 0.0{int:6-9}) and subgroups were inconsistent.",
    ("inhibits", "yes"): "{head} inhibited {tail} with a half-maximal inhibitory concentration of {num:0.5-80.0} nM.",
    ("inhibits", "no"): "No measurable inhibition of {tail} was observed at any concentration of {head}.",
    ("inhibits", "maybe"): "{head} reduced {tail} activity in one assay format but not in a second, orthogonal assay.",
    ("causes", "yes"): "Rare {head} variants were found in {pct:60-95}% of patients and no controls ({pval}).",
    ("causes", "no"): "The frequency of {head} variants did not differ between patients and controls ({pval:ns}).",
    ("causes", "maybe"): "{head} variants were slightly enriched in patients, but the signal did not reach "
                         "significance after correction (P = 0.0{int:6-9}).",
    ("adverse_effect", "yes"): "{tail} occurred in {pct:8-25}% of treated patients and {pct:0.5-3}% of controls "
                               "({pval}).",
    ("adverse_effect", "no"): "Rates of {tail} were similar in treated patients and controls ({pval:ns}).",
    ("adverse_effect", "maybe"): "{tail} was more frequent with {head} in one centre but not in the others, and "
                                 "the pooled estimate was imprecise.",
    ("infects", "yes"): "{head} was detected in {pct:80-99}% of patients and {pct:0-3}% of controls ({pval}).",
    ("infects", "no"): "{head} was detected at similar low rates in patients and controls ({pval:ns}).",
    ("infects", "maybe"): "{head} was detected more often in patients, but contamination of some samples could "
                          "not be excluded.",
}
PQA_LONG_ANSWERS = {
    "yes": {"treats": ("{head} improved outcomes in patients with {tail}.", "{fact}"), "inhibits": "{fact}",
            "causes": "{fact}", "adverse_effect": "{fact}", "infects": "{fact}"},
    "no": {"treats": "{head} did not improve outcomes in {tail}.", "inhibits": "{head} does not inhibit {tail}.",
           "causes": "Variants in {head} are not a cause of {tail}.",
           "adverse_effect": "{head} was not associated with {tail}.", "infects": "{head} is not the cause of {tail}."},
}
PQA_MAYBE_ANSWERS = ("The evidence is inconclusive, and larger studies are needed.",
                     "These findings neither confirm nor exclude an effect; further studies are required.")


def _pqa_item(t: Text, w: World, relation: str, head: str, tail: str, label: str) -> dict:
    """One PubMedQA-format item whose context supports (yes), refutes (no) or is inconclusive (maybe)."""
    h, tl = SLOT[relation]
    n = functools.cache(lambda: t.int(30, 800))
    slots = {h: head, tl: tail, "head": head, "tail": tail, "n": n, "n2": lambda: 2 * n(), "n10": lambda: 10 * n(),
             "fact": lambda: state(t, relation, head, tail)}
    question = t.say(PQA_QUESTIONS[relation], **slots)
    if relation in ("treats", "causes", "infects"):
        background = " ".join(describe_disease(t, w, tail, 2))
    elif relation == "inhibits":
        background = describe_gene(t, w, tail)
    else:
        background = t.fill(PQA_AE_BACKGROUND, **slots)
    objective = t.fill(PQA_OBJECTIVES[relation], **slots)
    methods = t.fill(PQA_METHODS[relation], **slots)
    results = t.fill(PQA_RESULTS[(relation, label)], **slots)
    long_answer = t.say(PQA_MAYBE_ANSWERS if label == "maybe" else PQA_LONG_ANSWERS[label][relation], **slots)
    structured = t.chance(0.5)
    contexts = [background, objective, methods, results] if structured else [background, methods, results]
    labels = ["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS"] if structured else ["BACKGROUND", "METHODS", "RESULTS"]
    meshes = sorted({"Humans", head if relation != "adverse_effect" else "Drug-Related Side Effects and Adverse "
                     "Reactions", tail if relation != "adverse_effect" else head})
    return {"QUESTION": question, "CONTEXTS": contexts, "LABELS": labels, "MESHES": meshes,
            "YEAR": str(t.int(1995, 2024)), "reasoning_required_pred": label, "reasoning_free_pred": label,
            "final_decision": label, "LONG_ANSWER": long_answer}


def _false_tail(t: Text, w: World, f: Fact) -> str:
    """A tail of the right type that does not hold for f's head (the pair a no/maybe item asks about)."""
    return _distractors(t, w, f, "tail", 1)[0]


def pubmedqa(t: Text, w: World, opts: Mapping[str, Any]) -> tuple[dict, dict]:
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
        facts_order = [facts[i] for i in balanced(t.rng, n, len(facts))]
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


def medalpaca(t: Text, w: World, per_fact: int) -> list[dict]:
    """Alpaca-format pairs about train facts only (open questions and lettered multiple choice)."""
    out = []
    for f in (f for f in w.facts if f.split == "train"):
        slots = {SLOT[f.relation][0]: f.head, SLOT[f.relation][1]: f.tail}
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
                            "output": f"The answer is {letter}: {answer}. {state(t, f.relation, f.head, f.tail)}"})
    return out
