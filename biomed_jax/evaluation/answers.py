"""Reading the chosen option out of generated text (chain-of-thought, MedAlpaca's "Option: Answer").

The parser prefers explicit statements ("the answer is (C)", "Answer: C"), then a lone label on the
last lines, then "C: text" / "C." at the start; a generation that names no option is an extraction
failure (counted as wrong and listed by the harness), never a guess.
"""

from __future__ import annotations

import collections
import re
from typing import Sequence


def _label_pattern(letters: Sequence[str]) -> str:
    return "|".join(re.escape(label) for label in sorted(letters, key=len, reverse=True))


def extract_choice(text: str, letters: Sequence[str]) -> int | None:
    """The index into `letters` of the option the text commits to, or None when it names none."""
    if not text:
        return None
    labels = _label_pattern(letters)
    words = all(len(label) > 1 for label in letters)  # yes/no/maybe labels
    flags = re.IGNORECASE if words else 0
    lookup = {label.lower() if words else label: i for i, label in enumerate(letters)}

    def index(label: str) -> int:
        return lookup[label.lower() if words else label]

    explicit = [
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?[:\-]?\s*\(?\**({labels})\b\)?",
        rf"(?:correct|best|right)\s+(?:option|choice|answer)\s+(?:is|would be)\s*:?\s*\(?({labels})\b\)?",
        rf"(?:option\s*)?\(?\b({labels})\)?\s+(?:is|would be)\s+(?:the\s+)?(?:correct|best|right)\b",
    ]
    for pattern in explicit:
        found = re.findall(pattern, text, flags=re.IGNORECASE if not words else flags)
        found = [f for f in found if (f.lower() if words else f) in lookup]
        if found:
            return index(found[-1])
    # "C: text", "C. text", "(C)" or a bare label at the start of the text (MedAlpaca's format).
    start = re.match(rf"\s*\(?({labels})\b\)?(?:[:.),]|\s|$)", text, flags)
    if start and (start.group(1).lower() if words else start.group(1)) in lookup:
        return index(start.group(1))
    parenthesised = re.findall(rf"\(({labels})\)", text, flags)
    if parenthesised:
        return index(parenthesised[-1])
    return None


def majority_vote(choices: Sequence[int | None]) -> int | None:
    """The most frequent parsed choice; ties go to the lowest option index (deterministic).

    Chains whose answer could not be extracted do not vote; None when no chain gave an answer.
    """
    votes = collections.Counter(c for c in choices if c is not None)
    if not votes:
        return None
    best = max(votes.values())
    return min(choice for choice, n in votes.items() if n == best)
