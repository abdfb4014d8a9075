"""The README's Python example (section "From Python (Colab, notebooks)") runs as written.

The code block is taken from README.md and executed against a tiny run directory built here (a random
tiny GPT-2 and a byte-level BPE trained on a few sentences, saved with run_dir.save_run); only its
`RUN = ...` line is pointed at that directory.
"""

from __future__ import annotations

import contextlib
import io
import os
import re


from helpers import REPO_ROOT, tiny_run

HEADING = "## From Python (Colab, notebooks)"
RUN_LINE = 'RUN = "runs/quickstart/pretrain"'


def readme_example() -> str:
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert readme.count(HEADING) == 1, f"README.md should have one {HEADING!r} section"
    section = readme.split(HEADING, 1)[1]
    match = re.search(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert match, f"no ```python block in the README's {HEADING!r} section"
    return match.group(1)


TEXTS = ["Question: Which drug treats Kalomi fever? Answer: amoxicillin treats Kalomi fever.",
         "Velortinib inhibits the kinase; metformin lowers glucose; velortinib treats the disease."] * 20


def test_readme_python_example_runs_on_a_run_directory(tmp_path):
    code = readme_example()
    assert code.count(RUN_LINE) == 1, f"the README example should set {RUN_LINE!r}"
    assert len([line for line in code.splitlines() if line.strip()]) <= 25  # a short example
    code = code.replace(RUN_LINE, f"RUN = {tiny_run(str(tmp_path), TEXTS)!r}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md (From Python)", "exec"), {})
    answer, completion = out.getvalue().split("\n", 1)
    assert answer in {"answer: velortinib", "answer: amoxicillin", "answer: metformin"}
    assert completion.strip()  # a random model still writes something
