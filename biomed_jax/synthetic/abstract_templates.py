"""The sentences abstracts are made of, as data: templates with named slots (see phrasing.Text).

Numeric slots ({int:3-12}, {pct:8-30}, {num:0.2-90.0}, {pval}, {pick:a|b}) are drawn only for the
template that is chosen. A slot named after a relation ({treats}, {inhibits}, {causes},
{adverse_effect}, {infects}) is a whole sentence stating that fact, in one of its phrasings.
"""

from __future__ import annotations


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
# The one slot they share, {start} and {end} (the recruitment years), is given by abstracts._filler.
METHODS_FILLER = (
    "Eligible participants were aged {int:12-30} to {int:60-85} years.",
    "Patients with severe renal or hepatic impairment were excluded.",
    "The protocol was approved by the ethics committees of all participating centres.",
    "All participants gave written informed consent.",
    "Outcomes were assessed by investigators unaware of treatment assignment.",
    "Missing data were handled by multiple imputation.",
    "The study was registered before enrolment (registration number WR-{int:10000-99999}).",
    "Follow-up visits took place every {int:2-12} weeks.",
    "The sample size provided {pick:80|85|90}% power to detect an absolute difference of {int:5-25} percentage "
    "points.",
    "Statistical analyses used mixed-effects models adjusted for baseline values.",
    "Participants were recruited between {start} and {end}.",
    "Adherence was monitored by pill counts and electronic diaries.",
)
RESULTS_FILLER = (
    "The mean age of participants was {int:25-68} years, and {pct:35-70}% were women.",
    "Baseline characteristics were balanced between groups.",
    "Overall, {pct:80-97}% of participants completed the study.",
    "Effects were consistent across prespecified subgroups.",
    "Quality-of-life scores improved by {int:5-25} points relative to baseline.",
    "Median follow-up was {int:6-60} months.",
    "Sensitivity analyses gave similar results.",
    "{int:3-60} participants withdrew before the final visit.",
)
LAB_FILLER = (
    "Experiments were performed in triplicate and repeated on {int:2-12} separate days.",
    "Selectivity was assessed against a panel of {int:3-60} related proteins.",
    "Dose-response curves were fitted with a four-parameter logistic model.",
    "Results were confirmed in primary cells from {int:2-12} donors.",
    "Compound exposure in plasma was measured by mass spectrometry.",
    "Animal procedures followed institutional guidelines.",
)
CASE_FILLER = (
    "On examination, vital signs were within normal limits.",
    "Laboratory studies showed a mildly raised C-reactive protein.",
    "The family history was unremarkable.",
    "There was no history of recent travel or medication changes.",
    "Imaging of the chest and abdomen was normal.",
    "The patient was discharged after {int:2-12} days and remained well at {int:6-60} months.",
)
REVIEW_FILLER = (
    "Diagnosis relies on clinical assessment supported by laboratory testing.",
    "Early recognition improves long-term outcomes.",
    "Management should be individualized and reviewed regularly.",
    "Prognosis has improved considerably over the past two decades.",
    "Access to specialist care remains uneven across regions.",
    "Several investigational therapies are in early clinical development.",
)
DESIGNS = ("randomized, double-blind, placebo-controlled", "open-label, randomized",
           "multicentre, randomized, double-blind", "phase 2, randomized, placebo-controlled",
           "phase 3, randomized, double-blind")

# --- one set of phrasings per document type ------------------------------------------------------------

TRIAL = {
    "methods": (
        "In this {design} trial, we randomly assigned {n} patients with {disease} to receive {drug} {dose} mg or "
        "placebo for {wk} weeks.",
        "We conducted a {design} trial at {int:3-60} centres. Adults with {disease} (n = {n}) were assigned to "
        "{drug} {dose} mg or placebo.",
        "A total of {n} patients with {disease} were enrolled in a {design} study comparing {drug} with placebo "
        "over {wk} weeks."),
    "endpoint": "The primary endpoint was {endpoint}.",
    "efficacy": (
        "The primary endpoint was met by {pct:45-85}% of patients in the {drug} group and {pct:8-35}% in the "
        "placebo group ({pval}).",
        "{drug} was superior to placebo for the primary endpoint ({pct:45-85}% vs {pct:8-35}%; {pval}).",
        "Compared with placebo, {drug} increased the response rate from {pct:8-35}% to {pct:45-85}% ({pval})."),
    "adverse": (
        "The most common adverse event in the {drug} group was {ae} ({pct:8-30}%).",
        "{adverse_effect}",
        "{ae} occurred in {pct:8-30}% of patients receiving {drug} and led to discontinuation in {pct:1-6}%."),
    "serious": "Serious adverse events were reported in {pct:2-12}% and {pct:2-12}% of patients, respectively.",
    "titles": (
        "{drug} versus placebo in {disease}: a randomized controlled trial",
        "Efficacy and safety of {drug} in patients with {disease}",
        "{drug} for the treatment of {disease}: results of a {design_kind} trial",
        "A randomized trial of {drug} in adults with {disease}",
        "Long-term outcomes of {drug} therapy in {disease}"),
}
MECHANISM = {
    "ic50": ("{num:0.2-90.0} nM", "{num:0.10-2.00} \u00b5M"),
    "background": (
        "Increased {gene} activity has been observed in tissue from patients with {disease}.",
        "{drug} was developed for {disease}, but its molecular mode of action has not been fully described.",
        "The contribution of {gene} to {disease} remains incompletely understood."),
    "methods": (
        "We characterized {drug} in biochemical assays, {int:3-12} cell lines and a mouse model.",
        "Binding of {drug} was measured by surface plasmon resonance, and its activity in {int:3-12} cell lines.",
        "Kinetic assays, crystallography and knockdown experiments were used to define the target of {drug}."),
    "binding": (
        "{drug} inhibited {gene} with a half-maximal inhibitory concentration of {ic50}.",
        "{drug} bound {gene} with high affinity ({ic50}) and showed little activity against {int:40-400} other "
        "proteins.",
        "{inhibits}"),
    "effect": (
        "Inhibition reduced markers of {process} by {pct:30-80}%.",
        "Knockdown of {gene} reproduced the effects of {drug}.",
        "Treated animals showed a {pct:30-80}% reduction in disease scores."),
    "target": ("{inhibits}", "These data identify {gene} as the molecular target of {drug}."),
    "rationale": ("They provide a mechanistic rationale for the use of {drug} in {disease}.", "{treats}"),
    "titles": (
        "{drug} inhibits {gene} and attenuates disease activity in models of {disease}",
        "Structural basis of {gene} inhibition by {drug}",
        "Preclinical characterization of {drug}, a selective {gene} inhibitor",
        "Targeting {gene} with {drug}: mechanism and therapeutic implications for {disease}"),
}
GENETICS = {
    "methods": (
        "We performed exome sequencing in {n} families affected by {disease}.",
        "Genome sequencing was carried out in {n} unrelated probands with {disease} and their relatives.",
        "We reviewed the genotypes and clinical records of {n} patients with {disease} from {int:2-20} centres."),
    "variants": (
        "We identified {variants} distinct pathogenic variants in {gene} in {families} families.",
        "Biallelic or heterozygous variants in {gene} were found in {pct:60-98}% of probands.",
        "All affected individuals carried a rare variant in {gene}, which was absent from unaffected relatives."),
    "onset": "Earlier onset was associated with truncating variants ({pval}).",
    "response": ("Affected individuals responded to {drug}.", "{treats}"),
    "titles": (
        "Variants in {gene} cause {disease}",
        "Genetic architecture of {disease}: the role of {gene}",
        "Exome sequencing identifies {gene} variants in families with {disease}",
        "Genotype-phenotype correlations in {gene}-associated {disease}"),
}
CASE = {
    "presentation": (
        "We describe {an_age} {age}-year-old {sex} who presented with {s1} and {s2}.",
        "{an_age} {age}-year-old {sex} was referred with {an_weeks} {weeks}-week history of {s1} and {s2}."),
    "gene_finding": ("Genetic testing revealed a pathogenic variant in {gene}.",
                     "Sequencing identified a heterozygous {gene} variant."),
    "organism_finding": ("Blood cultures grew {org}.", "Polymerase chain reaction was positive for {org}."),
    "diagnosis": (
        "A diagnosis of {disease} was made and treatment with {drug} was started.",
        "{He} was diagnosed with {disease} and received {drug} {dose} mg.",
        "{disease} was diagnosed, and {drug} was initiated."),
    "course": (
        "After {int:2-16} weeks, the patient developed {ae}, which resolved after dose reduction.",
        "The course was complicated by {ae}, a recognized adverse effect of {drug}.",
        "Symptoms improved, although {ae} required temporary interruption of {drug}."),
    "lesson": (
        "This case illustrates the typical course of {disease} and the need to monitor for {ae} during {drug} "
        "therapy.", "{adverse_effect}", "{treats}"),
    "titles": (
        "{disease} treated with {drug}: a case report",
        "{ae} during {drug} therapy for {disease}",
        "An unusual presentation of {disease} in {an_age} {age}-year-old {sex}"),
}
REVIEW = {
    "scope": (
        "This review summarizes current evidence and highlights open questions.",
        "We discuss diagnostic strategies and emerging therapies.",
        "Areas of uncertainty and priorities for research are outlined."),
    "titles": (
        "{disease}: current concepts in diagnosis and treatment",
        "Advances in the management of {disease}",
        "{disease}: an update for clinicians", "Pathogenesis and therapy of {disease}"),
}
MICROBIOLOGY = {
    "background": ("{org} is a {gram} organism of increasing clinical importance.",
                   "The epidemiology of {org} is poorly described."),
    "methods": (
        "We collected {n} isolates from patients with {disease} over {int:2-10} years.",
        "Clinical isolates (n = {n}) were tested by broth microdilution.",
        "We prospectively enrolled {n} patients with suspected {disease}."),
    "isolation": ("{org} was isolated in {pct:70-99}% of confirmed cases.", "{infects}"),
    "susceptibility": ("All isolates were susceptible to {drug}.",
                       "{drug} cleared the infection in {pct:75-98}% of treated patients."),
    "cause": ("{infects}", "{org} remains the cause of {disease}."),
    "monitoring": "Monitoring for {ae} is advised during {drug} therapy.",
    "titles": (
        "Clinical and microbiological features of {disease} caused by {org}",
        "Antimicrobial susceptibility of {org} isolates from patients with {disease}",
        "{org} and {disease}: a {int:2-12}-year surveillance study"),
}
SAFETY = {
    "background": ("Post-marketing data on the safety of {drug} are limited.",
                   "The safety profile of {drug} in routine practice has not been described."),
    "methods": (
        "We analysed {n:,} reports in a national pharmacovigilance database.",
        "This retrospective cohort included {n:,} patients who started {drug} between {int:2005-2014} and "
        "{int:2015-2023}.",
        "We performed a disproportionality analysis of {n:,} spontaneous reports."),
    "incidence": (
        "{ae} was reported in {pct:5-25}% of patients treated with {drug}.",
        "{adverse_effect}",
        "The reporting odds ratio for {ae} with {drug} was {num:2.0-12.0}."),
    "onset": "Median time to onset was {int:2-30} weeks.",
    "titles": (
        "{ae} associated with {drug}: a pharmacovigilance study",
        "Incidence of {ae} in patients treated with {drug} for {disease}",
        "Real-world safety of {drug} in {disease}"),
}
EPIDEMIOLOGY = {
    "methods": (
        "We analysed a national registry of {n:,} patients with {disease}.",
        "This population-based study identified {n:,} cases of {disease} over {int:5-25} years."),
    "age": "The median age at diagnosis was {int:4-70} years.",
    "titles": (
        "Prevalence and clinical spectrum of {disease}: a registry study",
        "The natural history of {disease} in a population-based cohort",
        "Epidemiology of {disease} over {int:5-25} years"),
}
