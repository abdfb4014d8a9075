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


def guideline(t: Text, w: World, disease: str, society: tuple[str, str], year: int) -> dict:
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
    intro = " ".join(describe_disease(t, w, disease, 2)) + " " + t.pick([
        f"This guideline from the {society[0]} updates recommendations for the diagnosis and management of "
        f"{disease}.", f"The {society[0]} convened a panel to review the evidence on {disease}."])
    lines = [intro] + [f"Recommendation {i + 1}: {r} ({t.pick(GRADES)})." for i, r in enumerate(recs)]
    title = t.pick([f"{society[0]}: {year} guideline for the diagnosis and management of {disease}",
                    f"Management of {disease}: {year} recommendations of the {society[0]}",
                    f"{disease}: clinical practice guideline ({society[1].upper()}, {year})"])
    return {"title": title, "text": "\n".join(lines), "source": society[1]}
