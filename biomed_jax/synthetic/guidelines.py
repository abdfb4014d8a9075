"""Guideline-like JSONL documents: recommendations per disease from invented societies."""

from __future__ import annotations

from biomed_jax.synthetic.facts import World
from biomed_jax.synthetic.phrasing import describe_disease, Text


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


# Recommendations restating the disease's facts (each becomes "Recommendation k: ... (grade).").
DIAGNOSIS = {
    "gene": (
        "In patients with suspected {disease}, sequencing of {gene} is recommended to confirm the diagnosis, "
        "because pathogenic {gene} variants cause the disease",
        "Genetic testing for variants in {gene}, the causal gene of {disease}, should be offered to patients and "
        "their first-degree relatives"),
    "organism": (
        "Microbiological testing for {org}, the causative agent of {disease}, should be performed in every "
        "suspected case",
        "Because {disease} is caused by {org}, culture or PCR for the organism is recommended before treatment"),
}
TREATMENT = {
    "first": ("In adults with {disease}, {drug} is recommended as first-line therapy",
              "{drug} is recommended as initial treatment for {disease}"),
    "alternative": ("{drug} is recommended as an alternative treatment for {disease}",
                    "In patients with {disease} who cannot take {first}, {drug} is an effective option"),
    "target": ("Clinicians should note that {drug} acts by inhibiting {gene}; combining it with other {gene} "
               "inhibitors is not recommended",
               "{drug}, a {gene} inhibitor, should be taken at a dose of {dose} mg as labelled"),
    "monitoring": ("Patients treated with {drug} should be monitored for {ae} at baseline and every {int:2-12} weeks",
                   "Because {drug} can cause {ae}, patients should be counselled about its early signs"),
}
INTRO = ("This guideline from the {society} updates recommendations for the diagnosis and management of {disease}.",
         "The {society} convened a panel to review the evidence on {disease}.")
TITLES = ("{society}: {year} guideline for the diagnosis and management of {disease}",
          "Management of {disease}: {year} recommendations of the {society}",
          "{disease}: clinical practice guideline ({abbreviation}, {year})")


def guideline(t: Text, w: World, disease: str, society: tuple[str, str], year: int) -> dict:
    """One guideline document of numbered recommendations restating the disease's facts."""
    a = w.diseases[disease]
    recs = [t.say(DIAGNOSIS["gene" if a["gene"] else "organism"], disease=disease, gene=a["gene"],
                  org=a["organism"])]
    drugs = t.shuffled(a["drugs"])
    for k, drug in enumerate(drugs):
        d = w.drugs[drug]
        recs.append(t.say(TREATMENT["first" if k == 0 else "alternative"], drug=drug, disease=disease,
                          first=drugs[0]))
        if d["target"] and t.chance(0.7):
            recs.append(t.say(TREATMENT["target"], drug=drug, gene=d["target"], dose=d["dose"]))
        for ae in d["aes"]:
            recs.append(t.say(TREATMENT["monitoring"], drug=drug, ae=ae))
    extra = [t.fill(s, disease=disease) for s in t.shuffled(list(GENERIC_RECOMMENDATIONS))[:t.int(1, 3)]]
    recs += [r.rstrip(".") for r in extra]
    intro = " ".join(describe_disease(t, w, disease, 2) + [t.say(INTRO, society=society[0], disease=disease)])
    lines = [intro] + [f"Recommendation {i + 1}: {r} ({t.pick(GRADES)})." for i, r in enumerate(recs)]
    title = t.say(TITLES, society=society[0], year=year, disease=disease, abbreviation=society[1].upper())
    return {"title": title, "text": "\n".join(lines), "source": society[1]}
