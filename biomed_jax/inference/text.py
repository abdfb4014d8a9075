"""Text <-> token ids for generation, with the HF `tokenizers` library (tokenizer.json files).

Finding and loading a run's tokenizer and its BOS/EOS ids is biomed_jax.run_dir's job; what is here is
what only generating text needs: pad tokens, stop strings and cutting a completion at them.
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Tokenizer

# Names padding tokens go by; a tokenizer with none pads with its end-of-text token.
PAD_TOKENS = ("<pad>", "[PAD]", "<|pad|>")


def pad_id(tokenizer: Tokenizer) -> int | None:
    """The id of the vocabulary's padding token (the first of PAD_TOKENS it has), or None."""
    return next((i for i in map(tokenizer.token_to_id, PAD_TOKENS) if i is not None), None)


def stop_string_ids(tokenizer: Tokenizer, stop_strings: Sequence[str]) -> list[int]:
    """Ids of the stop strings that are one token, which can then also end decoding early."""
    ids = []
    for text in stop_strings:
        token_id = tokenizer.token_to_id(text)
        if token_id is None:
            encoded = tokenizer.encode(text, add_special_tokens=False).ids
            token_id = encoded[0] if len(encoded) == 1 else None
        if token_id is not None:
            ids.append(token_id)
    return ids


def completion_text(tokenizer: Tokenizer, ids: Sequence[int], stop_tokens: Sequence[int],
                    stop_strings: Sequence[str] = ()) -> str:
    """Decodes a completion without its final stop token, cut before the first stop string."""
    ids = list(ids)
    if ids and ids[-1] in set(stop_tokens):
        ids = ids[:-1]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = min((text.find(s) for s in stop_strings if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]
