"""Text <-> token ids for generation, with the HF `tokenizers` library (tokenizer.json files)."""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from tokenizers import Tokenizer

# Names end-of-text tokens go by in GPT-2, Llama-2/3 and SentencePiece-converted vocabularies.
EOS_TOKENS = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>", "<eos>", "[EOS]")
PAD_TOKENS = ("<pad>", "[PAD]", "<|pad|>")


def find_tokenizer(run_dir: str, override: str | None = None) -> str:
    """The tokenizer.json to use: `override`, else RUN_DIR/tokenizer.json (which hf_to_jax copies)."""
    path = override or os.path.join(run_dir, "tokenizer.json")
    if not os.path.isfile(path):
        hint = "" if override else " (experiments.convert copies it from the Hugging Face folder)"
        raise FileNotFoundError(f"tokenizer file {path} not found{hint}; pass --tokenizer=PATH/tokenizer.json")
    return path


def load_tokenizer(path: str) -> Tokenizer:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file {path} not found")
    try:
        return Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise ValueError(f"{path} is not a valid tokenizers tokenizer.json: {e}") from None


def special_id(tokenizer: Tokenizer, names: Iterable[str]) -> int | None:
    """The id of the first of `names` the vocabulary has, or None."""
    for name in names:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return token_id
    return None


def eos_id(tokenizer: Tokenizer) -> int | None:
    return special_id(tokenizer, EOS_TOKENS)


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
