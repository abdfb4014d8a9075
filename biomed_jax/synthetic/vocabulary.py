"""The words the world is made of: relations, adverse effects, symptoms, organs, gene families, and the
invented names of drugs, genes, diseases and organisms."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


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


class Names:
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
