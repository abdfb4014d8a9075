"""GAP-Replay style mixtures: how many times each source's documents appear in the token dataset.

A source is repeated `epochs` times: the whole part as copies of every document, the fractional part
as a deterministic sample (a hash of seed, source, id and copy number). A source with `fraction` > 0
is instead sized to make up that share of the mixture's characters (MEDITRON's 1% general replay),
which turns into an `epochs` value once the other sources' sizes are known.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping


def resolve_epochs(sources: Mapping[str, Mapping[str, Any]], chars: Mapping[str, int]) -> dict[str, float]:
    """Per-source epochs, with `fraction` sources sized against the others' characters (`chars`)."""
    epochs = {name: float(s.get("epochs", 1.0)) for name, s in sources.items()}
    fractions = {name: float(s.get("fraction", 0.0)) for name, s in sources.items()}
    fixed_chars = sum(epochs[n] * chars.get(n, 0) for n in sources if fractions[n] == 0)
    share_left = 1.0 - sum(fractions.values())
    for name, fraction in fractions.items():
        if fraction > 0:
            wanted = fraction * fixed_chars / share_left
            epochs[name] = wanted / chars[name] if chars.get(name) else 0.0
    return epochs


def copies(seed: int, source: str, doc_id: str, epochs: float) -> int:
    """How many times this document appears: floor(epochs), plus one with probability frac(epochs)."""
    whole = math.floor(epochs)
    frac = epochs - whole
    if frac <= 0:
        return whole
    digest = hashlib.sha256(f"{seed}:{source}:{doc_id}".encode()).digest()
    return whole + (int.from_bytes(digest[:8], "big") / 2**64 < frac)


def describe(epochs: Mapping[str, float], chars: Mapping[str, int]) -> dict[str, dict[str, float]]:
    """Per-source epochs and share of the mixture's characters, for the dataset's report."""
    mixed = {n: epochs[n] * chars.get(n, 0) for n in epochs}
    total = sum(mixed.values()) or 1.0
    return {n: {"epochs": round(epochs[n], 6), "char_share": round(mixed[n] / total, 6)} for n in epochs}
