"""The abstracts as NLM PubMed XML (gzipped baseline-style files), with exact and near duplicates planted."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping
from xml.sax.saxutils import escape as _xml_escape

import numpy as np

from biomed_jax.synthetic.abstracts import abstracts
from biomed_jax.synthetic.facts import World
from biomed_jax.synthetic.phrasing import Text
from biomed_jax.synthetic.vocabulary import Names
from biomed_jax.synthetic.writing import write_gz


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
JOURNAL_FIELDS = ("Clinical Pharmacology", "Medical Genetics", "Infectious Diseases", "Internal Medicine",
                  "Translational Therapeutics", "Drug Safety", "Molecular Medicine", "Rare Diseases",
                  "Clinical Microbiology", "Experimental Therapeutics")
# Records with no abstract: their publication type and the title prefix naming the record they concern.
NOTICES = {"Comment": "Comment on: ", "Published Erratum": "Erratum to: ", "Letter": "Reply to: "}
FORENAME_ENDINGS = ("a", "o", "an", "el", "is")
PMID_BASE = 90_000_001          # corpus PMIDs; far above today's real ones
PUBMEDQA_ID_BASE = 80_000_001   # PubMedQA item ids (their contexts are not corpus records)


def _esc(text: str) -> str:
    return _xml_escape(text, {'"': "&quot;"})


def _pubmed_record(t: Text, pmid: int, title: str, sections: list[tuple[str, str]], mesh: list[str],
                   pub_types: list[str], journal: str, authors: list[tuple[str, str]]) -> str:
    """One PubmedArticle in NLM's layout; no Abstract element when `sections` is empty."""
    year = t.int(1992, 2024)
    month = t.pick(MONTHS)
    first = t.int(1, 1800)
    ind = "  "
    lines = [f"{ind}<PubmedArticle>", f'{ind * 2}<MedlineCitation Status="MEDLINE" Owner="NLM">',
             f'{ind * 3}<PMID Version="1">{pmid}</PMID>',
             f'{ind * 3}<Article PubModel="Print">', f"{ind * 4}<Journal>",
             f'{ind * 5}<ISSN IssnType="Print">{t.int(1000, 9999)}-{t.int(1000, 9999)}</ISSN>',
             f'{ind * 5}<JournalIssue CitedMedium="Print">',
             f"{ind * 6}<Volume>{t.int(1, 80)}</Volume>", f"{ind * 6}<Issue>{t.int(1, 12)}</Issue>",
             f"{ind * 6}<PubDate>", f"{ind * 7}<Year>{year}</Year>", f"{ind * 7}<Month>{month}</Month>",
             f"{ind * 6}</PubDate>", f"{ind * 5}</JournalIssue>", f"{ind * 5}<Title>{_esc(journal)}</Title>",
             f"{ind * 4}</Journal>", f"{ind * 4}<ArticleTitle>{_esc(title)}.</ArticleTitle>",
             f"{ind * 4}<Pagination><MedlinePgn>{first}-{first + t.int(3, 12)}</MedlinePgn></Pagination>"]
    if sections:
        lines.append(f"{ind * 4}<Abstract>")
        for label, text in sections:
            attrs = f' Label="{label}" NlmCategory="{label}"' if label else ""
            lines.append(f"{ind * 5}<AbstractText{attrs}>{_esc(text)}</AbstractText>")
        lines.append(f"{ind * 4}</Abstract>")
    lines.append(f'{ind * 4}<AuthorList CompleteYN="Y">')
    for last, fore in authors:
        lines += [f'{ind * 5}<Author ValidYN="Y">', f"{ind * 6}<LastName>{last}</LastName>",
                  f"{ind * 6}<ForeName>{fore}</ForeName>", f"{ind * 6}<Initials>{fore[0]}</Initials>",
                  f"{ind * 5}</Author>"]
    lines += [f"{ind * 4}</AuthorList>", f"{ind * 4}<Language>eng</Language>",
              f"{ind * 4}<PublicationTypeList>"]
    lines += [f"{ind * 5}<PublicationType>{_esc(kind)}</PublicationType>" for kind in pub_types]
    lines += [f"{ind * 4}</PublicationTypeList>", f"{ind * 3}</Article>",
              f"{ind * 3}<MedlineJournalInfo><Country>Invented</Country><MedlineTA>{_esc(journal)}</MedlineTA>"
              f"</MedlineJournalInfo>"]
    if mesh:
        lines.append(f"{ind * 3}<MeshHeadingList>")
        lines += [f'{ind * 4}<MeshHeading><DescriptorName MajorTopicYN="{"Y" if i >= 3 else "N"}">{_esc(name)}'
                  f"</DescriptorName></MeshHeading>" for i, name in enumerate(mesh)]
        lines.append(f"{ind * 3}</MeshHeadingList>")
    lines += [f"{ind * 2}</MedlineCitation>", f"{ind * 2}<PubmedData>",
              f"{ind * 3}<PublicationStatus>ppublish</PublicationStatus>",
              f'{ind * 3}<ArticleIdList><ArticleId IdType="pubmed">{pmid}</ArticleId></ArticleIdList>',
              f"{ind * 2}</PubmedData>", f"{ind}</PubmedArticle>"]
    return "\n".join(lines)


_XML_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
             '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" '
             '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">\n<PubmedArticleSet>\n')


def _near_copy(t: Text, sections: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sections with one small edit (a number changed, a word swapped or a sentence appended): on an
    abstract of 80 words or more, a near-duplicate with 5-word-shingle Jaccard above 0.85."""
    text = "\n".join(f"{label}\x1f{body}" for label, body in sections)
    numbers = list(re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\w)", text))
    edit = t.int(0, 2)
    if edit == 0 and numbers:
        m = t.pick(numbers)
        decimals = len(m.group().partition(".")[2])
        text = text[:m.start()] + f"{float(m.group()) + t.int(1, 9):.{decimals}f}" + text[m.end():]
    elif edit == 1 and " patients " in text:
        text = text.replace(" patients ", " participants ", 1)
    else:
        text += " Data are available on request."
    return [tuple(part.split("\x1f", 1)) for part in text.split("\n")]  # type: ignore[misc]


def write_pubmed(out: str, opts: Mapping[str, Any], w: World, t: Text,
                  names: Names) -> tuple[dict, list[str], np.ndarray]:
    """Writes the abstracts (plus no-abstract records and duplicates) as gzipped PubmedArticleSet files.

    Returns the PubMed counts, the texts of the distinct abstracts and how many abstracts state each fact."""
    docs, coverage = abstracts(opts, w, t)
    journals = sorted({f"{names.eponym()} Journal of {field}" for field in JOURNAL_FIELDS}
                      | {f"Annals of {names.eponym()} {field}" for field in JOURNAL_FIELDS[:4]})
    surnames = [names.eponym() for _ in range(120)]
    forenames = [names.eponym()[:-1].capitalize() + t.pick(FORENAME_ENDINGS) for _ in range(60)]
    # Entries: (title, sections, mesh, types); abstracts, then records with no abstract, then copies.
    entries: list[tuple[str, list, list, list]] = [(d.title, d.sections, d.mesh, d.pub_types) for d in docs]
    for _ in range(opts["records_without_abstract"]):
        other = t.pick(docs)
        kind = t.pick(tuple(NOTICES))
        entries.append((NOTICES[kind] + other.title, [], other.mesh[:2], [kind]))
    # Copies are made of longer abstracts, so one edit keeps a near-copy above the dedup threshold.
    long_docs = [i for i, d in enumerate(docs) if sum(len(b.split()) for _, b in d.sections) >= 80]
    n_copies = opts["exact_duplicates"] + opts["near_duplicates"]
    if n_copies > len(long_docs):
        raise ValueError(f"exact_duplicates + near_duplicates = {n_copies} exceeds the {len(long_docs)} "
                         f"abstracts long enough to copy; lower them or raise docs_per_fact")
    originals = [long_docs[int(i)] for i in t.rng.choice(len(long_docs), size=n_copies, replace=False)]
    for j, i in enumerate(originals):
        sections = docs[i].sections if j < opts["exact_duplicates"] else _near_copy(t, docs[i].sections)
        entries.append((docs[i].title, sections, docs[i].mesh, docs[i].pub_types))
    order = t.rng.permutation(len(entries))
    pmid_of_entry = {int(e): PMID_BASE + rank for rank, e in enumerate(order)}
    duplicate_of = {}
    for j, i in enumerate(originals):
        copy = len(docs) + opts["records_without_abstract"] + j
        duplicate_of[str(pmid_of_entry[copy])] = {"of": str(pmid_of_entry[i]),
                                                   "kind": "exact" if j < opts["exact_duplicates"] else "near"}
    os.makedirs(os.path.join(out, "pubmed"))
    per_file = opts["records_per_file"]
    files = []
    for start in range(0, len(order), per_file):
        records = []
        for rank in range(start, min(start + per_file, len(order))):
            title, sections, mesh, types = entries[int(order[rank])]
            authors = [(t.pick(surnames), t.pick(forenames)) for _ in range(t.int(1, 6))]
            records.append(_pubmed_record(t, PMID_BASE + rank, title, sections, mesh, types, t.pick(journals),
                                          authors))
        path = os.path.join(out, "pubmed", f"world_abstracts_{start // per_file:04d}.xml.gz")
        write_gz(path, _XML_HEAD + "\n".join(records) + "\n</PubmedArticleSet>\n")
        files.append(os.path.basename(path))
    texts = [" ".join(body for _, body in d.sections) for d in docs]
    counts = {"records": len(entries), "with_abstract": len(entries) - opts["records_without_abstract"],
              "without_abstract": opts["records_without_abstract"], "distinct_abstracts": len(docs),
              "exact_duplicates": opts["exact_duplicates"], "near_duplicates": opts["near_duplicates"],
              "files": files, "duplicate_of": duplicate_of,
              "abstracts_per_fact": {"min": int(coverage.min()), "mean": round(float(coverage.mean()), 2),
                                     "max": int(coverage.max())},
              "words": sum(len(x.split()) + len(d.title.split()) for x, d in zip(texts, docs))}
    return counts, [f"{d.title}\n{x}" for d, x in zip(docs, texts)], coverage
