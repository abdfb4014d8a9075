"""Chat messages -> one prompt, in the template a run was instruction-tuned with.

The run directory records the SFT template (run_dir.Run.template, biomed_jax.tasks.sft.SFT_TEMPLATES):
MedAlpaca's Alpaca prompt, MEDITRON's ChatML turns, or the compact / qa styles; a run without one
(a pretrained or converted model) gets `plain` turns. Each style also names the text that starts a new
turn, which ends the model's answer (the server's stop strings).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from biomed_jax.tasks.sft import SFT_TEMPLATES, render_instruction

# The instruction a MedAlpaca-style prompt gets when the chat has no system message (MedAlpaca's own
# instruction for medical question answering).
DEFAULT_INSTRUCTION = "Answer this question truthfully."
ROLES = ("system", "user", "assistant")
STYLES = ("plain", *(s for s in SFT_TEMPLATES if s != "medalpaca_no_input"))
# Text a model may go on with after its answer: the start of the next turn.
STOP_STRINGS = {
    "plain": ("\nUser:",),
    "meditron": ("<|im_end|>", "<|im_start|>"),
    "medalpaca": ("\n### ",),
    "compact": ("\n### ",),
    "qa": ("\nQuestion:",),
}


def template_style(recorded: Mapping | None, override: str = "") -> str:
    """The style to use: `override` if given, else the run's recorded one, else plain."""
    style = override or (recorded or {}).get("style") or "plain"
    if style == "medalpaca_no_input":
        style = "medalpaca"
    if style not in STYLES:
        raise ValueError(f"template: unknown chat template {style!r}; choose one of {', '.join(STYLES)}")
    return style


def render_chat(style: str, messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt for `messages` ([{role, content}], the last one the user's) in `style`."""
    if style == "meditron":   # ChatML: every turn kept as a turn
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    dialogue = [m for m in messages if m["role"] != "system"]
    if style == "plain":
        lines = [system] if system else []
        lines += [f"{m['role'].capitalize()}: {m['content']}" for m in dialogue]
        return "\n".join(lines) + "\nAssistant:"
    # Single-turn instruction styles: earlier turns go into the input before the last question.
    earlier = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in dialogue[:-1])
    question = dialogue[-1]["content"] if dialogue else ""
    return render_instruction(style, {"instruction": system or DEFAULT_INSTRUCTION, "input": earlier + question})
