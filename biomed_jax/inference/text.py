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


class TextStream:
    """Incremental detokenization for streaming: push() each generated id and get the text that is now
    final, and whether a stop string was reached. Text is held back while it ends in an incomplete UTF-8
    character or in what may be the start of a stop string; stop tokens are left out of the text, and a
    stop string and what follows are cut (as completion_text does for a whole completion)."""

    def __init__(self, tokenizer: Tokenizer, stop_tokens: Sequence[int] = (), stop_strings: Sequence[str] = ()):
        self.tokenizer, self.stop_tokens = tokenizer, set(stop_tokens)
        self.stop_strings = [s for s in stop_strings if s]
        self.ids: list[int] = []
        self.sent = 0      # characters already returned
        self.stopped = False

    def push(self, token_id: int) -> tuple[str, bool]:
        """(new final text, stopped)."""
        if self.stopped:
            return "", True
        if token_id not in self.stop_tokens:
            self.ids.append(int(token_id))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((text.find(s) for s in self.stop_strings if s in text), default=-1)
        if cut >= 0:
            self.stopped = True
            return self._take(text[:cut]), True
        ready = text.rstrip("\ufffd")
        hold = max((n for stop in self.stop_strings for n in range(1, min(len(stop), len(ready) + 1))
                    if ready.endswith(stop[:n])), default=0)   # a tail that could grow into a stop string
        return self._take(ready[:len(ready) - hold]), False

    def flush(self) -> str:
        """The rest of the text, at the end of the completion."""
        if self.stopped:
            return ""
        return self._take(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def _take(self, text: str) -> str:
        new = text[self.sent:]
        self.sent = max(self.sent, len(text))
        return new
