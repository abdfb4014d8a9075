"""Streaming document readers for biomedical corpora: PubMed/MEDLINE XML, PMC JATS, JSON lines, plain text.

A reader turns one file into `Document`s and fills a `ReadReport` as it goes; it neither tokenizes nor
cleans. Damaged input (a cut-off download, a bad line, a record without an id) never raises mid-stream:
what was readable is yielded, the rest is counted in the report, so a long corpus build survives one
bad file and says what it lost. Large inputs are streamed with constant memory.

PMC Open Access articles come loose (one `.nxml` per article) or in the bulk packages NLM ships
(`oa_comm_xml.PMC000xxxxxx.baseline.2023-12-18.tar.gz`: a gzipped tar of `.xml`/`.nxml` JATS members; the
per-article `.tar.gz` packages add PDFs and images). The one `pmc_jats` kind reads both, choosing by the
file name (`.tar.gz`/`.tgz` is a package), rather than a separate package kind: an article is the same
`Document` however it was shipped, a config's `paths` only adds a `*.tar.gz` glob, and the reader options
(captions, tables) stay in one place. A package is streamed member by member, never unpacked to disk,
and still makes one `ReadReport` (one entry per file in the clean report).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from typing import BinaryIO, Callable, Iterator
from xml.parsers import expat

from biomed_jax import files


@dataclasses.dataclass
class Document:
    """One document as read: `text` is what a model sees, `meta` what a filter or a report may need."""

    id: str
    text: str
    title: str
    source: str
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ReadReport:
    """What a reader saw in one file, filled while iterating; complete once the iterator is exhausted."""

    path: str = ""
    records: int = 0
    with_text: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)
    deleted_ids: list = dataclasses.field(default_factory=list)
    truncated: bool = False
    error: str | None = None

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Expat errors that mean the input stopped early (a cut-off download), not that it is malformed.
_END_OF_INPUT_ERRORS = {expat.errors.codes[message] for message in (
    expat.errors.XML_ERROR_NO_ELEMENTS, expat.errors.XML_ERROR_UNCLOSED_TOKEN,
    expat.errors.XML_ERROR_PARTIAL_CHAR, expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION)}

# What reading a damaged file raises; caught so that the records before the damage are kept.
_READ_ERRORS = (EOFError, zlib.error, OSError, ET.ParseError)


def _open_binary(path: str) -> BinaryIO:
    """The file's bytes (local or in an object store, see files.py), decompressed when its name ends in .gz."""
    stream = files.open_read(path)
    return _Gunzip(stream) if path.endswith(".gz") else stream


class _Gunzip(gzip.GzipFile):
    """Decompresses a stream it owns: closing it closes the stream too (GzipFile leaves a given one open)."""

    def __init__(self, stream: BinaryIO):
        super().__init__(fileobj=stream, mode="rb")
        self._stream = stream

    def close(self):
        try:
            super().close()
        finally:
            self._stream.close()


def _file_stem(path: str) -> str:
    """`dir/name.txt.gz` -> `name`: the file's name without its format and compression suffixes."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        name = name[:-3]
    return os.path.splitext(name)[0]


def _record_read_error(report: ReadReport, err: Exception) -> None:
    """Says in the report why reading stopped, and whether the input was cut off (truncated)."""
    if isinstance(err, EOFError):
        report.truncated = True
        report.error = f"truncated gzip: {err}"
    elif isinstance(err, tarfile.ReadError):
        report.error = f"unreadable tar archive: {err}"
    elif isinstance(err, ET.ParseError):
        report.truncated = err.code in _END_OF_INPUT_ERRORS
        report.error = f"{'XML cut off' if report.truncated else 'malformed XML'}: {err}"
    else:
        report.error = f"unreadable file: {type(err).__name__}: {err}"


def _text_of(elem: ET.Element | None) -> str:
    """All text inside `elem` on one line: inline markup (<i>, <sub>) kept as its text, and the
    whitespace of pretty-printed XML (newlines and tabs around inline tags) collapsed to single spaces."""
    return " ".join("".join(elem.itertext()).split()) if elem is not None else ""


class _SingleReads:
    """A binary stream whose read() is one underlying read (read1), for parsers that read in chunks.

    Over a truncated .gz, a plain buffered read() of many blocks drops the blocks it already decompressed
    when a later one hits the cut; one block per read() keeps every byte before it.
    """

    def __init__(self, fh: BinaryIO):
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        return self._fh.read1(size)


# ---------------------------------------------------------------------------------------------------
# PubMed / MEDLINE XML


def read_pubmed_xml(path: str, report: ReadReport | None = None) -> Iterator[Document]:
    """Abstracts from NLM PubMed/MEDLINE XML (.xml or .xml.gz; PubmedArticleSet or MedlineCitationSet).

    Records are the root's children: PubmedArticle, MedlineCitation (older MedlineCitationSet files) and
    DeleteCitation (whose PMIDs go to `report.deleted_ids`). Each record is cleared once read, so memory
    does not grow with the file. Records without an abstract are counted as skipped "no_abstract".
    """
    report = report if report is not None else ReadReport()
    report.path = path
    with _open_binary(path) as fh:
        try:
            if not fh.peek(1):
                return
            depth, root = 0, None
            for event, elem in ET.iterparse(_SingleReads(fh), events=("start", "end")):
                if event == "start":
                    root = elem if root is None else root
                    depth += 1
                    continue
                depth -= 1
                if depth != 1:
                    continue
                document = _pubmed_record(elem, report)
                elem.clear()
                del root[:]
                if document is not None:
                    yield document
        except _READ_ERRORS as err:
            _record_read_error(report, err)


def _pubmed_record(record: ET.Element, report: ReadReport) -> Document | None:
    """The Document for one child of the root, or None (counted in `report`) when it has no abstract."""
    if record.tag == "DeleteCitation":
        report.deleted_ids.extend(_text_of(pmid) for pmid in record.iter("PMID"))
        return None
    report.records += 1
    if record.tag not in ("PubmedArticle", "MedlineCitation"):
        report.skip(f"unsupported_record:{record.tag}")
        return None
    citation = record if record.tag == "MedlineCitation" else record.find("MedlineCitation")
    pmid = _text_of(citation.find("PMID")) if citation is not None else ""
    if not pmid:
        report.skip("malformed_record")
        return None
    article = citation.find("Article")
    abstract = _pubmed_abstract(article.find("Abstract") if article is not None else None)
    if not abstract:
        report.skip("no_abstract")
        return None
    title = _text_of(article.find("ArticleTitle"))
    report.with_text += 1
    return Document(
        id=pmid, title=title, text=f"{title}\n\n{abstract}" if title else abstract, source="pubmed_xml",
        meta={
            "language": _text_of(article.find("Language")) or None,
            "journal": _text_of(article.find("Journal/Title")) or None,
            "year": _pubmed_year(article.find("Journal/JournalIssue/PubDate")),
            "mesh_headings": [_text_of(name) for name in
                              citation.iterfind("MeshHeadingList/MeshHeading/DescriptorName")],
            "publication_types": [_text_of(kind) for kind in
                                  article.iterfind("PublicationTypeList/PublicationType")],
        })


def _pubmed_abstract(abstract: ET.Element | None) -> str:
    """The abstract's sections, one per line, a structured one's as "LABEL: text"."""
    if abstract is None:
        return ""
    parts = []
    for section in abstract.iterfind("AbstractText"):
        text = _text_of(section)
        label = section.get("Label")
        if text:
            parts.append(f"{label}: {text}" if label else text)
    return "\n".join(parts)


def _pubmed_year(pub_date: ET.Element | None) -> int | None:
    """PubDate/Year, else the first year in a free-form MedlineDate such as "1998 Dec-1999 Jan"."""
    if pub_date is None:
        return None
    year = _text_of(pub_date.find("Year"))
    if year.isdigit():
        return int(year)
    found = re.search(r"\d{4}", _text_of(pub_date.find("MedlineDate")))
    return int(found.group()) if found else None


# ---------------------------------------------------------------------------------------------------
# PMC Open Access JATS


# File names read as PMC OA packages (gzipped tar archives), and the members in them that are articles.
_PMC_PACKAGE_SUFFIXES = (".tar.gz", ".tgz")
_PMC_ARTICLE_MEMBER_SUFFIXES = (".nxml", ".xml")


def read_pmc_jats(path: str, report: ReadReport | None = None, include_captions: bool = False,
                  include_tables: bool = False) -> Iterator[Document]:
    """PMC OA articles: the one of a .nxml file (or .nxml.gz), or each JATS member of a .tar.gz/.tgz package.

    An article is its title, abstract and body, section titles as "## title" lines. The reference list is
    never included (bibliography, not prose); figure captions (and supplementary material captions) and
    tables only when asked, since their text is fragmentary.
    """
    report = report if report is not None else ReadReport()
    report.path = path
    dropped = {"ref-list"}
    if not include_captions:
        dropped |= {"fig", "supplementary-material"}
    if not include_tables:
        dropped.add("table-wrap")
    if path.endswith(_PMC_PACKAGE_SUFFIXES):
        yield from _read_pmc_package(path, report, dropped)
        return
    with _open_binary(path) as fh:
        try:
            if not fh.peek(1):
                return
            article = ET.parse(fh).getroot()
        except _READ_ERRORS as err:
            _record_read_error(report, err)
            return
    document = _pmc_document(article, _file_stem(path), dropped, report)
    if document is not None:
        yield document


def _read_pmc_package(path: str, report: ReadReport, dropped: set[str]) -> Iterator[Document]:
    """The articles of a PMC OA package, read member by member from the gzip stream (tarfile's "r|" mode).

    Only one member is in memory at a time. Into the one `report` of the package go: each article member as
    a record (one that is not well-formed XML, an undecodable byte included, counted "malformed_record" and
    the next member read); each other file (PDF, image, readme) as skipped "non_xml_member", not a record;
    directories and links not at all. Gzip is read here rather than by tarfile ("r|gz") because gzip, not
    tarfile, says when the stream was cut: a cut download keeps every member before the cut (one gzip block
    per read, see `_SingleReads`) and is reported truncated. The stream is read to its end after the
    archive's last member so gzip checks its trailer (end-of-stream marker, CRC): a file cut or corrupted
    after the last article is reported too.
    """
    with _Gunzip(files.open_read(path)) as fh:
        try:
            if not fh.peek(1):
                return
            with tarfile.open(fileobj=_SingleReads(fh), mode="r|") as archive:
                while (member := archive.next()) is not None:
                    # A TarFile keeps every header it has read, also in stream mode; forgetting them keeps
                    # memory flat over packages of many thousand members (nothing here looks back).
                    archive.members.clear()
                    if not member.isfile():
                        continue
                    if not member.name.lower().endswith(_PMC_ARTICLE_MEMBER_SUFFIXES):
                        report.skip("non_xml_member")
                        continue
                    try:
                        with archive.extractfile(member) as member_fh:
                            article = ET.parse(member_fh).getroot()
                    except ET.ParseError:
                        report.records += 1
                        report.skip("malformed_record")
                        continue
                    document = _pmc_document(article, _file_stem(member.name), dropped, report)
                    if document is not None:
                        yield document
            while fh.read(1 << 16):
                pass
        except (*_READ_ERRORS, tarfile.ReadError) as err:
            _record_read_error(report, err)


def _pmc_document(article: ET.Element, fallback_id: str, dropped: set[str], report: ReadReport) -> Document | None:
    """The Document of one parsed JATS article, or None (counted in `report`) when it has no text.

    Its id is the PMCID, else the PMID, else `fallback_id` (the file's or the package member's name).
    """
    for elem in article.iter():
        if isinstance(elem.tag, str) and "}" in elem.tag:
            elem.tag = elem.tag.split("}", 1)[1]
    report.records += 1
    article_meta = article.find("front/article-meta")
    ids = {} if article_meta is None else {
        elem.get("pub-id-type"): _text_of(elem) for elem in article_meta.iterfind("article-id")}
    pmcid = ids.get("pmc") or ids.get("pmcid")
    if pmcid and not pmcid.startswith("PMC"):
        pmcid = f"PMC{pmcid}"
    title = _text_of(article.find("front/article-meta/title-group/article-title"))
    abstract = _jats_blocks(_jats_main_abstract(article_meta), dropped, headings=[])
    sections: list[str] = []
    body = [block for part in ("body", "floats-group")  # floats-group: figures and tables kept apart from the body
            for block in _jats_blocks(article.find(part), dropped, headings=sections)]
    if not abstract and not body:
        report.skip("empty_text")
        return None
    report.with_text += 1
    return Document(
        id=pmcid or ids.get("pmid") or fallback_id, title=title, source="pmc_jats",
        text="\n\n".join(part for part in (title, *abstract, *body) if part),
        meta={"pmcid": pmcid, "pmid": ids.get("pmid"), "doi": ids.get("doi"),
              "journal": _text_of(article.find("front/journal-meta//journal-title")) or None,
              "article_type": article.get("article-type"), "sections": sections})


def _jats_main_abstract(article_meta: ET.Element | None) -> ET.Element | None:
    """The abstract without an abstract-type (not an author summary or teaser), else the first one."""
    abstracts = [] if article_meta is None else article_meta.findall("abstract")
    return next((a for a in abstracts if a.get("abstract-type") is None), abstracts[0] if abstracts else None)


# Elements that stand as blocks of their own even when nested in a paragraph.
_JATS_NESTED_BLOCKS = {"fig", "table-wrap", "supplementary-material", "list", "disp-quote", "boxed-text"}


def _jats_blocks(elem: ET.Element | None, dropped: set[str], headings: list[str]) -> list[str]:
    """Paragraphs, captions and table rows under `elem` in reading order; a section's title as "## title".

    Section titles are also appended to `headings`.
    """
    blocks: list[str] = []
    for child in [] if elem is None else elem:
        if child.tag in dropped or (child.tag == "title" and elem.tag == "sec"):
            continue
        if child.tag in ("p", "title"):
            blocks.append(_jats_inline(child, dropped))
            for nested in child:
                if nested.tag in _JATS_NESTED_BLOCKS and nested.tag not in dropped:
                    blocks.extend(_jats_blocks(nested, dropped, headings))
        elif child.tag == "tr":
            blocks.append(" | ".join(_jats_inline(cell, dropped) for cell in child))
        else:
            heading = _jats_inline(child.find("title"), dropped) if child.tag == "sec" else ""
            if heading:
                headings.append(heading)
                blocks.append(f"## {heading}")
            blocks.extend(_jats_blocks(child, dropped, headings))
    return [block for block in blocks if block]


def _jats_inline(elem: ET.Element | None, dropped: set[str]) -> str:
    """The running text of `elem` on one line, inline markup kept as text, nested blocks left out."""
    if elem is None:
        return ""

    def pieces(node: ET.Element) -> Iterator[str]:
        yield node.text or ""
        for child in node:
            if child.tag not in dropped and child.tag not in _JATS_NESTED_BLOCKS:
                yield from pieces(child)
            yield child.tail or ""

    return " ".join("".join(pieces(elem)).split())


# ---------------------------------------------------------------------------------------------------
# JSON lines and plain text


def _decoded_lines(fh: BinaryIO) -> Iterator[tuple[int, str | None]]:
    """(1-based line number, text) per line; text is None where the line is not valid UTF-8.

    A UTF-8 BOM at the start of the file is dropped.
    """
    for number, raw in enumerate(fh, start=1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, None


def read_jsonl(path: str, report: ReadReport | None = None, text_field: str = "text",
               id_field: str = "id") -> Iterator[Document]:
    """One document per JSON line ({"id", "text", "title"?, ...}; .jsonl or .jsonl.gz); other fields go to meta.

    Lines that are not a JSON object count as "malformed_record", those with no text as "empty_text";
    a line without an id gets "<file stem>:<line number>".
    """
    report = report if report is not None else ReadReport()
    report.path = path
    stem = _file_stem(path)
    with _open_binary(path) as fh:
        try:
            for number, record in json_objects(fh, report):
                text = record.pop(text_field, None)
                if not isinstance(text, str) or not text.strip():
                    report.skip("empty_text")
                    continue
                doc_id = record.pop(id_field, None)
                title = record.pop("title", None)
                report.with_text += 1
                yield Document(id=f"{stem}:{number}" if doc_id is None else str(doc_id), text=text,
                               title="" if title is None else str(title), source="jsonl", meta=record)
        except _READ_ERRORS as err:
            _record_read_error(report, err)


def json_objects(fh: BinaryIO, report) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-blank JSON line of `fh`, each counted in `report.records`; a line that is
    not JSON, not an object or not UTF-8 is counted as "malformed_record" and skipped. Shared by the JSONL
    corpus reader and the benchmark loaders (any report with `records` and `skip`)."""
    for number, line in _decoded_lines(fh):
        if line is not None and not line.strip():
            continue
        report.records += 1
        try:
            record = json.loads(line) if line is not None else None
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            report.skip("malformed_record")
            continue
        yield number, record


def _paragraphs(fh: BinaryIO) -> Iterator[tuple[int, list[str | None]]]:
    """(first line number, lines) per run of non-blank lines; a line that is not valid UTF-8 is None."""
    first_line, lines = 0, []
    for number, line in _decoded_lines(fh):
        if line is not None and not line.strip():
            if lines:
                yield first_line, lines
            lines = []
            continue
        if not lines:
            first_line = number
        lines.append(None if line is None else line.rstrip("\r\n"))
    if lines:
        yield first_line, lines


def read_text(path: str, report: ReadReport | None = None) -> Iterator[Document]:
    """Plain text (.txt or .txt.gz) whose documents are separated by blank lines; ids "<file stem>:<index>".

    The index counts every paragraph, so ids stay put when one is skipped; a paragraph with a line that is
    not valid UTF-8 is counted as "malformed_record".
    """
    report = report if report is not None else ReadReport()
    report.path = path
    stem = _file_stem(path)
    with _open_binary(path) as fh:
        try:
            for first_line, lines in _paragraphs(fh):
                index = report.records
                report.records += 1
                if None in lines:
                    report.skip("malformed_record")
                    continue
                report.with_text += 1
                yield Document(id=f"{stem}:{index}", text="\n".join(lines), title="", source="text",
                               meta={"line": first_line})
        except _READ_ERRORS as err:
            _record_read_error(report, err)


READERS: dict[str, Callable[..., Iterator[Document]]] = {
    "pubmed_xml": read_pubmed_xml,
    "pmc_jats": read_pmc_jats,
    "jsonl": read_jsonl,
    "text": read_text,
}


def read_documents(kind: str, path: str, report: ReadReport | None = None, **options) -> Iterator[Document]:
    """The documents of `path` read by the `kind` reader; `options` go to that reader.

    Checks the kind and the file before returning, so a typo fails here rather than at the first next().
    """
    if kind not in READERS:
        raise ValueError(f"unknown reader kind {kind!r}; known kinds: {', '.join(sorted(READERS))}")
    if not files.exists(path):
        raise FileNotFoundError(f"{kind} input file not found: {path!r} (pass existing files, not folders)")
    return READERS[kind](path, report, **options)
