"""The documentation: the mkdocs site builds with --strict (no broken link or anchor, every page in the
nav), and the README stays a short entry whose links into docs/ resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from helpers import REPO_ROOT


def test_docs_site_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "data" / "index.html").exists()


def test_readme_is_short_and_its_links_into_docs_resolve():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 250
    with open(os.path.join(REPO_ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        nav = {page for entry in yaml.safe_load(f)["nav"] for page in entry.values()}
    assert nav == {name for name in os.listdir(os.path.join(REPO_ROOT, "docs")) if name.endswith(".md")}
    links = re.findall(r"\]\(docs/([\w.-]+\.md)(?:#([\w-]+))?\)", readme)
    assert {page for page, _ in links} == nav - {"index.md"}   # the map names every page
    for page, anchor in links:
        with open(os.path.join(REPO_ROOT, "docs", page), encoding="utf-8") as f:
            headings = [line.lstrip("#").strip() for line in f if line.startswith("#")]
        slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
        assert not anchor or anchor in slugs, f"README links to docs/{page}#{anchor}, which has no such heading"
