"""Document readers: invented fixtures for each format and each kind of damage, then the real samples in
../shared/data (skipped where that folder is absent), and the `experiments.inspect_data` command."""

import glob
import gzip
import io
import json
import os
import random
import tarfile
import tracemalloc
import xml.etree.ElementTree as ET
import zlib

import pytest

from biomed_jax.data.readers import (READERS, ReadReport, read_documents, read_jsonl, read_pmc_jats,
                                     read_pubmed_xml, read_text)
from helpers import REPO_ROOT, run_cli

DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
PUBMED_DIR = os.path.join(DATA_DIR, "pubmed")
PMC_DIR = os.path.join(DATA_DIR, "pmc_oa")
needs_data = pytest.mark.skipif(not os.path.isdir(DATA_DIR),
                                reason=f"real data samples not found at {DATA_DIR} (only in the shared workspace)")


def read_all(reader, path, **options):
    report = ReadReport()
    return list(reader(str(path), report, **options)), report


# ---------------------------------------------------------------------------------------------------
# Invented PubMed fixtures


def pubmed_article(pmid, title, abstract_xml="", year_xml="<Year>2021</Year>", mesh=(), types=("Journal Article",)):
    """One invented PubmedArticle; pmid=None leaves the PMID out (a malformed record)."""
    pmid_xml = f'<PMID Version="1">{pmid}</PMID>' if pmid is not None else ""
    mesh_xml = "".join(f'<MeshHeading><DescriptorName UI="D0">{name}</DescriptorName></MeshHeading>' for name in mesh)
    types_xml = "".join(f"<PublicationType>{kind}</PublicationType>" for kind in types)
    return f"""<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">{pmid_xml}
  <Article PubModel="Print"><Journal><JournalIssue><PubDate>{year_xml}</PubDate></JournalIssue>
    <Title>Journal of Invented Results</Title></Journal>
    <ArticleTitle>{title}</ArticleTitle>{abstract_xml}<Language>eng</Language>
    <PublicationTypeList>{types_xml}</PublicationTypeList></Article>
  <MeshHeadingList>{mesh_xml}</MeshHeadingList></MedlineCitation>
  <PubmedData><ReferenceList><Reference><Citation>Cited work that is not the abstract.</Citation></Reference>
  </ReferenceList></PubmedData></PubmedArticle>
"""


def plain_abstract(text):
    return f"<Abstract><AbstractText>{text}</AbstractText></Abstract>"


STRUCTURED_ABSTRACT = """<Abstract>
  <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Zorblax levels in <i>Felis
      imaginaria</i> were unknown.</AbstractText>
  <AbstractText Label="RESULTS">Zorblax rose by 12%.</AbstractText>
  <CopyrightInformation>(c) Invented Press</CopyrightInformation></Abstract>"""


def pubmed_set(*articles):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle//EN"'
            ' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_230101.dtd">\n<PubmedArticleSet>\n'
            + "".join(articles) + "</PubmedArticleSet>\n")


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def pubmed_file(tmp_path):
    return write(tmp_path / "set.xml", pubmed_set(
        pubmed_article(900001, "Zorblax in <i>imaginary</i> cats.", STRUCTURED_ABSTRACT, mesh=("Cats", "Zorblax"),
                       types=("Journal Article", "Randomized Controlled Trial")),
        pubmed_article(900002, "A letter without abstract."),
        pubmed_article(None, "A record without PMID.", plain_abstract("Orphan text.")),
        pubmed_article(900004, "Dated by MedlineDate.", plain_abstract("Plain abstract."),
                       year_xml="<MedlineDate>1998 Dec-1999 Jan</MedlineDate>")))


def test_pubmed_article_set_fields_and_skips(pubmed_file):
    docs, report = read_all(read_pubmed_xml, pubmed_file)
    assert [doc.id for doc in docs] == ["900001", "900004"]
    first = docs[0]
    assert first.title == "Zorblax in imaginary cats."
    assert first.text == ("Zorblax in imaginary cats.\n\n"
                          "BACKGROUND: Zorblax levels in Felis imaginaria were unknown.\nRESULTS: Zorblax rose by 12%.")
    assert first.source == "pubmed_xml"
    assert first.meta == {"language": "eng", "journal": "Journal of Invented Results", "year": 2021,
                          "mesh_headings": ["Cats", "Zorblax"],
                          "publication_types": ["Journal Article", "Randomized Controlled Trial"]}
    assert docs[1].meta["year"] == 1998 and docs[1].text == "Dated by MedlineDate.\n\nPlain abstract."
    assert report.to_dict() == {"path": str(pubmed_file), "records": 4, "with_text": 2,
                                "skipped": {"no_abstract": 1, "malformed_record": 1}, "deleted_ids": [],
                                "truncated": False, "error": None}


def test_medline_citation_set_with_delete_citation(tmp_path):
    citations = "".join(
        f'<MedlineCitation Owner="NLM" Status="MEDLINE"><PMID Version="1">{pmid}</PMID><Article>'
        f"<Journal><Title>Old Journal</Title></Journal><ArticleTitle>Old title {pmid}.</ArticleTitle>"
        f"<Abstract><AbstractText>Old abstract {pmid}.</AbstractText></Abstract></Article></MedlineCitation>\n"
        for pmid in (800001, 800002))
    path = write(tmp_path / "medline.xml", '<?xml version="1.0"?>\n<MedlineCitationSet>\n' + citations
                 + '<DeleteCitation>\n<PMID Version="1">700001</PMID>\n<PMID Version="1">700002</PMID>\n'
                 "</DeleteCitation>\n</MedlineCitationSet>\n")
    docs, report = read_all(read_pubmed_xml, path)
    assert [(doc.id, doc.text) for doc in docs] == [("800001", "Old title 800001.\n\nOld abstract 800001."),
                                                   ("800002", "Old title 800002.\n\nOld abstract 800002.")]
    assert report.deleted_ids == ["700001", "700002"]
    assert (report.records, report.with_text, report.skipped, report.error) == (2, 2, {}, None)


def random_abstract(rng, words=120):
    vocab = ["zorblax", "felis", "cohort", "placebo", "renal", "plasma", "dose", "trial", "outcome", "serum",
             "enzyme", "kinase", "mutation", "lesion", "biopsy", "therapy", "marker", "assay", "ratio", "mice"]
    return " ".join(rng.choice(vocab) + str(rng.randrange(1000)) for _ in range(words))


def test_gzip_cut_mid_stream_keeps_every_record_before_the_cut(tmp_path):
    rng = random.Random(0)
    xml = pubmed_set(*(pubmed_article(500000 + i, f"Title {i}.", plain_abstract(random_abstract(rng)))
                       for i in range(600)))
    whole = gzip.compress(xml.encode())
    cut = whole[: len(whole) * 2 // 3]
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(cut)
    # What any gzip tool recovers from the cut bytes decides how many records were complete.
    recovered = zlib.decompressobj(wbits=31).decompress(cut)
    complete = recovered.count(b"</PubmedArticle>")
    assert 100 < complete < 600

    docs, report = read_all(read_pubmed_xml, path)
    assert [doc.id for doc in docs] == [str(500000 + i) for i in range(complete)]
    assert report.truncated and "truncated gzip" in report.error
    assert report.records == complete


def test_plain_xml_cut_mid_record_is_truncated_and_malformed_xml_is_not(tmp_path):
    xml = pubmed_set(*(pubmed_article(600000 + i, f"Title {i}.", plain_abstract("Text.")) for i in range(3)))
    cut_at = xml.index("<PubmedArticle>", xml.index("600001")) + 40
    docs, report = read_all(read_pubmed_xml, write(tmp_path / "cut.xml", xml[:cut_at]))
    assert [doc.id for doc in docs] == ["600000", "600001"]
    assert report.truncated and report.error.startswith("XML cut off")

    broken = xml.replace("<Title>Journal of Invented Results</Title>", "<Title>Oops</Titel>", 1)
    docs, report = read_all(read_pubmed_xml, write(tmp_path / "broken.xml", broken))
    assert docs == [] and not report.truncated and report.error.startswith("malformed XML")


def test_pubmed_file_starting_with_a_bom(tmp_path):
    path = write(tmp_path / "bom.xml", "\ufeff" + pubmed_set(
        pubmed_article(900010, "Byte order mark.", plain_abstract("Still read."))))
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    docs, report = read_all(read_pubmed_xml, path)
    assert [doc.id for doc in docs] == ["900010"] and report.error is None


def test_empty_files_yield_nothing_and_are_no_error(tmp_path):
    for name, kind in [("empty.xml", "pubmed_xml"), ("empty.xml.gz", "pubmed_xml"), ("empty.nxml", "pmc_jats"),
                       ("empty.tar.gz", "pmc_jats"), ("empty.jsonl", "jsonl"), ("empty.txt", "text")]:
        path = tmp_path / name
        path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")
        report = ReadReport()
        assert list(read_documents(kind, str(path), report)) == [], name
        assert (report.records, report.error, report.truncated) == (0, None, False), name


def test_pubmed_memory_does_not_grow_with_the_file(tmp_path):
    rng = random.Random(1)
    path = write(tmp_path / "big.xml", pubmed_set(*(
        pubmed_article(400000 + i, f"Title {i}.", plain_abstract(random_abstract(rng, 60))) for i in range(3000))))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_pubmed_xml(str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 3000
    assert peak < path.stat().st_size / 10, (peak, path.stat().st_size)


# ---------------------------------------------------------------------------------------------------
# Invented JATS fixture


JATS = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.0 20120330//EN"
  "JATS-archivearticle1.dtd">
<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML"
  article-type="research-article">
<front><journal-meta><journal-title-group><journal-title>Invented Biology</journal-title></journal-title-group>
</journal-meta>
<article-meta>{ids}
<title-group><article-title>Glow in <italic>imaginary</italic> worms</article-title></title-group>
<abstract abstract-type="summary"><p>Lay summary.</p></abstract>
<abstract><p>Worms glow after zorblax.</p></abstract>
</article-meta></front>
<body>
<sec><title>Introduction</title><p>Worms were
   studied <xref ref-type="bibr" rid="r1">[1]</xref>.</p>
  <fig id="f1"><label>Figure 1</label>
    <caption><title>Figure caption title.</title><p>Glowing worm photo.</p></caption></fig>
</sec>
<sec><title>Results</title>
  <sec><title>Brightness</title><p>Glow doubled with <mml:math><mml:mi>x</mml:mi></mml:math> units.
    <table-wrap id="t1"><caption><p>Table caption text.</p></caption>
      <table><tr><th>Group</th><th>Glow</th></tr><tr><td>zorblax</td><td>2.0</td></tr></table></table-wrap></p>
  </sec>
</sec>
</body>
<back><ref-list><title>References</title>
  <ref id="r1"><mixed-citation>Smith A. Reference text that must not leak. 1999.</mixed-citation></ref>
</ref-list></back>
</article>
"""
JATS_IDS = '<article-id pub-id-type="pmid">111</article-id><article-id pub-id-type="pmc">222</article-id>'


def test_pmc_jats_sections_and_drops(tmp_path):
    path = write(tmp_path / "worms.nxml", JATS.format(ids=JATS_IDS))
    docs, report = read_all(read_pmc_jats, path)
    assert len(docs) == 1 and (report.records, report.with_text) == (1, 1)
    doc = docs[0]
    assert doc.id == "PMC222" and doc.title == "Glow in imaginary worms" and doc.source == "pmc_jats"
    assert doc.text == ("Glow in imaginary worms\n\nWorms glow after zorblax.\n\n## Introduction\n\n"
                        "Worms were studied [1].\n\n## Results\n\n## Brightness\n\nGlow doubled with x units.")
    assert doc.meta["sections"] == ["Introduction", "Results", "Brightness"]
    assert doc.meta["pmid"] == "111" and doc.meta["journal"] == "Invented Biology"

    kept = read_all(read_pmc_jats, path, include_captions=True, include_tables=True)[0][0].text
    for text in ("Figure caption title.", "Glowing worm photo.", "Table caption text.", "Group | Glow",
                 "zorblax | 2.0"):
        assert text not in doc.text and text in kept
    assert "must not leak" not in kept and "Lay summary" not in kept
    captions_only = read_all(read_pmc_jats, path, include_captions=True)[0][0].text
    assert "Glowing worm photo." in captions_only and "Group | Glow" not in captions_only


def test_pmc_jats_id_falls_back_to_pmid_then_file_stem(tmp_path):
    only_pmid = write(tmp_path / "a.nxml", JATS.format(ids='<article-id pub-id-type="pmid">111</article-id>'))
    no_ids = write(tmp_path / "worm-article.nxml", JATS.format(ids=""))
    assert read_all(read_pmc_jats, only_pmid)[0][0].id == "111"
    assert read_all(read_pmc_jats, no_ids)[0][0].id == "worm-article"


# ---------------------------------------------------------------------------------------------------
# PMC OA packages: gzipped tar archives of JATS members


def write_package(path, members):
    """A .tar.gz of `members` ({name: bytes}; a name ending in "/" is a directory), laid out as NLM's."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def jats_article(pmc, abstract="Worms glow after zorblax."):
    return JATS.format(ids=f'<article-id pub-id-type="pmc">{pmc}</article-id>').replace(
        "Worms glow after zorblax.", abstract).encode()


@pytest.mark.parametrize("name", ["oa_comm_xml.PMC000xxxxxx.baseline.2023-12-18.tar.gz", "PMC222.tgz"])
def test_pmc_package_members_read_as_the_loose_nxml_files(tmp_path, name):
    articles = {"PMC222.xml": JATS.format(ids=JATS_IDS).encode(), "worm-article.nxml": JATS.format(ids="").encode()}
    undecodable = jats_article(444).replace(b"Lay summary", b"Lay \xff summary")
    package = write_package(tmp_path / name, {
        "PMC000xxxxxx/": None,
        **{f"PMC000xxxxxx/{member}": data for member, data in articles.items()},
        "PMC000xxxxxx/PMC333.xml": jats_article(333).replace(b"</body>", b"</bodi>"),
        "PMC000xxxxxx/PMC444.xml": undecodable,
        "PMC000xxxxxx/PMC555.xml": b'<article><front><article-meta><article-id pub-id-type="pmc">555</article-id>'
                                   b"</article-meta></front></article>",
        "PMC000xxxxxx/worm.pdf": b"%PDF-1.4 not an article",
        "PMC000xxxxxx/f1.jpg": bytes(range(256)),
        "README.txt": b"Invented package readme.",
    })
    loose = [tmp_path / f"{os.path.splitext(member)[0]}.nxml" for member in articles]
    for path, data in zip(loose, articles.values()):
        path.write_bytes(data)
    for options in ({}, {"include_captions": True, "include_tables": True}):
        expected = [doc for path in loose for doc in read_all(read_pmc_jats, path, **options)[0]]
        report = ReadReport()
        docs = list(read_documents("pmc_jats", str(package), report, **options))
        assert docs == expected and [doc.id for doc in docs] == ["PMC222", "worm-article"]
        assert report.to_dict() == {
            "path": str(package), "records": 5, "with_text": 2,
            "skipped": {"malformed_record": 2, "empty_text": 1, "non_xml_member": 3}, "deleted_ids": [],
            "truncated": False, "error": None}

    # The undecodable byte fails a loose file as malformed XML; in a package it is one malformed member.
    (tmp_path / "PMC444.nxml").write_bytes(undecodable)
    docs, report = read_all(read_pmc_jats, tmp_path / "PMC444.nxml")
    assert docs == [] and report.error.startswith("malformed XML")

    out = run_cli("experiments.inspect_data", "--kind=pmc_jats", str(package)).stdout.splitlines()
    summary = json.loads(out[0])
    assert len(out) == 1 and summary["records"] == 5 and summary["with_text"] == 2
    assert summary["first_record"]["id"] == "PMC222" and summary["skipped"]["non_xml_member"] == 3


def test_pmc_package_cut_mid_member_keeps_the_members_before_it(tmp_path):
    rng = random.Random(2)
    whole_path = write_package(tmp_path / "whole.tar.gz", {
        f"PMC000xxxxxx/PMC{700 + i}.xml": jats_article(700 + i, random_abstract(rng, 400)) for i in range(40)})
    whole = whole_path.read_bytes()
    cut = whole[: len(whole) * 2 // 3]
    # What any gzip tool recovers from the cut bytes decides which members were complete.
    recovered = len(zlib.decompressobj(wbits=31).decompress(cut))
    with tarfile.open(whole_path) as archive:
        spans = [(member.offset_data, member.offset_data + member.size) for member in archive.getmembers()]
    complete = sum(end <= recovered for _, end in spans)
    assert 10 < complete < 40 and spans[complete][0] < recovered < spans[complete][1], "cut is not mid-member"

    (tmp_path / "cut.tar.gz").write_bytes(cut)
    docs, report = read_all(read_pmc_jats, tmp_path / "cut.tar.gz")
    assert [doc.id for doc in docs] == [f"PMC{700 + i}" for i in range(complete)]
    assert report.records == report.with_text == complete
    assert report.truncated and report.error.startswith("truncated gzip")

    # Cut after the last member (only the gzip trailer lost): every article read, the file still reported cut.
    (tmp_path / "trailer_cut.tar.gz").write_bytes(whole[:-8])
    docs, report = read_all(read_pmc_jats, tmp_path / "trailer_cut.tar.gz")
    assert len(docs) == 40 and report.truncated and report.error.startswith("truncated gzip")


def test_pmc_package_that_is_not_a_tar_or_not_gzip_is_an_error_in_the_report(tmp_path):
    (tmp_path / "article.tar.gz").write_bytes(gzip.compress(jats_article(222)))
    (tmp_path / "article.tgz").write_bytes(jats_article(222))
    for name, error in [("article.tar.gz", "unreadable tar archive"), ("article.tgz", "unreadable file: BadGzipFile")]:
        docs, report = read_all(read_pmc_jats, tmp_path / name)
        assert docs == [] and report.records == 0 and not report.truncated, name
        assert report.error.startswith(error), (name, report.error)


def test_pmc_package_memory_does_not_grow_with_the_members(tmp_path):
    def peak_reading(members):
        rng = random.Random(3)
        package = write_package(tmp_path / f"{members}.tar.gz", {
            f"PMC000xxxxxx/PMC{i}.xml": f'<article><front><article-meta><article-id pub-id-type="pmc">{i}'
                                        f"</article-id></article-meta></front><body><p>{random_abstract(rng, 100)}"
                                        "</p></body></article>".encode() for i in range(members)})
        tracemalloc.start()
        try:
            assert sum(1 for _ in read_pmc_jats(str(package))) == members
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak_reading(200), peak_reading(1000)
    assert many < few * 1.3, (few, many)  # keeping every member's tar header would more than double it


# ---------------------------------------------------------------------------------------------------
# JSON lines and plain text


JSONL_LINES = ['{"id": "d1", "text": "First document.", "title": "One", "year": 2020}',
               '{"id": "d2", "text": "Broken',
               "",
               '{"id": "d3", "text": "   "}',
               "[1, 2]",
               '{"text": "No id here."}']


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz"])
def test_jsonl_skips_bad_lines_and_keeps_extra_fields(tmp_path, name):
    data = "\n".join(JSONL_LINES).encode() + b"\n"
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    docs, report = read_all(read_jsonl, tmp_path / name)
    assert [(doc.id, doc.text, doc.title, doc.meta) for doc in docs] == [
        ("d1", "First document.", "One", {"year": 2020}), ("docs:6", "No id here.", "", {})]
    assert (report.records, report.with_text, report.skipped) == (5, 2, {"malformed_record": 2, "empty_text": 1})
    assert report.error is None


def test_jsonl_custom_fields(tmp_path):
    path = write(tmp_path / "qa.jsonl", '{"pmid": 7, "abstract": "Body.", "text": "kept in meta"}\n')
    docs, _ = read_all(read_jsonl, path, text_field="abstract", id_field="pmid")
    assert [(doc.id, doc.text, doc.meta) for doc in docs] == [("7", "Body.", {"text": "kept in meta"})]


def test_text_documents_are_separated_by_blank_lines(tmp_path):
    path = write(tmp_path / "notes.txt", "\ufeffFirst doc line one.\nline two.\n\n\n\nSecond doc.\n  \nThird doc.")
    docs, report = read_all(read_text, path)
    assert [(doc.id, doc.text, doc.meta["line"]) for doc in docs] == [
        ("notes:0", "First doc line one.\nline two.", 1), ("notes:1", "Second doc.", 6), ("notes:2", "Third doc.", 8)]
    assert (report.records, report.with_text, report.error) == (3, 3, None)


# ---------------------------------------------------------------------------------------------------
# Dispatch errors


def test_unknown_kind_and_missing_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"'medline_csv'.*jsonl, pmc_jats, pubmed_xml, text"):
        read_documents("medline_csv", str(tmp_path))
    missing = str(tmp_path / "absent.xml.gz")
    with pytest.raises(FileNotFoundError, match="absent.xml.gz"):
        read_documents("pubmed_xml", missing)
    assert sorted(READERS) == ["jsonl", "pmc_jats", "pubmed_xml", "text"]


def test_inspect_cli_on_a_fixture_and_a_missing_file(tmp_path, pubmed_file):
    out = run_cli("experiments.inspect_data", "--kind=pubmed_xml", str(pubmed_file)).stdout.strip().splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert summary["kind"] == "pubmed_xml" and summary["records"] == 4 and summary["with_text"] == 2
    assert summary["skipped"] == {"no_abstract": 1, "malformed_record": 1} and summary["truncated"] is False
    assert summary["first_record"]["id"] == "900001" and summary["first_record"]["meta"]["year"] == 2021

    missing = str(tmp_path / "absent.xml")
    proc = run_cli("experiments.inspect_data", "--kind=pubmed_xml", str(pubmed_file), missing, check=False)
    assert proc.returncode != 0 and "absent.xml" in proc.stderr and proc.stdout == ""


# ---------------------------------------------------------------------------------------------------
# Real samples in ../shared/data


MEDLINE_2016 = os.path.join(PUBMED_DIR, "medline16n0902.xml.gz")
BASELINE_2023_CUT = os.path.join(PUBMED_DIR, "pubmed23n0001_truncated", "pubmed23n0001.xml.gz")
BASELINE_2023_REPAIRED = os.path.join(PUBMED_DIR, "pubmed23n0001_truncated",
                                      "pubmed23n0001_first266_complete_records.xml")
BOM_EXPORT = os.path.join(PUBMED_DIR, "pubmed_result__sk8erjs69_sr-project.xml")

# (records with a PMID, records with an abstract) per file; counts agree with grep for <PMID / <Abstract>.
PUBMED_COUNTS = {
    "medline16n0902.xml.gz": (604, 526),
    "pubmed_result__sk8erjs69_sr-project.xml": (106, 106),
    "pubmed_result__xizhou_pubMR.xml": (93, 92),
    "pubmed23n0001_truncated/pubmed23n0001.xml.gz": (266, 135),
    "pubmed23n0001_truncated/pubmed23n0001_first266_complete_records.xml": (266, 135),
    "pubmed-29768149.xml": (1, 1),
    "test_current_medline.xml.gz": (4, 3),
}
# The data README's "1,069 full records, 859 with abstracts" counts the 2016 excerpt, the two search exports
# and the 2023 baseline once; the two small current-DTD files (5 records, 4 abstracts) are not in it.
README_TOTAL_FILES = ["medline16n0902.xml.gz", "pubmed_result__sk8erjs69_sr-project.xml",
                      "pubmed_result__xizhou_pubMR.xml", "pubmed23n0001_truncated/pubmed23n0001.xml.gz"]


@needs_data
def test_medline_2016_excerpt_with_delete_citation():
    docs, report = read_all(read_pubmed_xml, MEDLINE_2016)
    assert len(docs) == report.with_text == 526
    assert report.deleted_ids and all(pmid.isdigit() for pmid in report.deleted_ids)
    assert not set(report.deleted_ids) & {doc.id for doc in docs}
    assert report.error is None and not report.truncated


@needs_data
def test_truncated_2023_baseline_keeps_all_complete_records():
    docs, report = read_all(read_pubmed_xml, BASELINE_2023_CUT)
    assert len(docs) == 135 and report.truncated and report.error
    repaired, repaired_report = read_all(read_pubmed_xml, BASELINE_2023_REPAIRED)
    assert [doc.id for doc in docs] == [doc.id for doc in repaired]
    assert report.records == repaired_report.records == 266
    assert not repaired_report.truncated and repaired_report.error is None


@needs_data
def test_pubmed_export_with_bom_reads():
    with open(BOM_EXPORT, "rb") as fh:
        assert fh.read(3) == b"\xef\xbb\xbf"
    docs, report = read_all(read_pubmed_xml, BOM_EXPORT)
    assert len(docs) == 106 and report.error is None


@needs_data
def test_pubmed_counts_per_file_and_readme_totals():
    files = sorted(os.path.relpath(path, PUBMED_DIR) for pattern in ("*.xml*", "pubmed23n0001_truncated/*")
                   for path in glob.glob(os.path.join(PUBMED_DIR, pattern)))
    assert files == sorted(PUBMED_COUNTS), "new PubMed sample files: add their counts here"
    counts = {}
    for name in files:
        docs, report = read_all(read_pubmed_xml, os.path.join(PUBMED_DIR, name))
        counts[name] = (report.records - report.skipped.get("malformed_record", 0), len(docs))
    assert counts == PUBMED_COUNTS
    totals = [sum(counts[name][i] for name in README_TOTAL_FILES) for i in (0, 1)]
    assert totals == [1069, 859]


@needs_data
def test_every_pmc_article_reads_as_one_document_without_references():
    paths = sorted(os.path.join(PMC_DIR, name) for name in os.listdir(PMC_DIR) if name.endswith(".nxml"))
    assert len(paths) == 8
    for path in paths:
        docs, report = read_all(read_pmc_jats, path)
        assert len(docs) == 1 and report.error is None, path
        doc = docs[0]
        assert doc.title and doc.meta["sections"] and len(doc.text) > 2000, path
        cited_titles = [" ".join("".join(title.itertext()).split())
                        for ref in ET.parse(path).getroot().iter("ref") for title in ref.iter("article-title")]
        long_titles = [title for title in cited_titles if len(title) > 40]
        assert long_titles, path
        assert not [title for title in long_titles if title in doc.text], path


@needs_data
def test_real_pmc_articles_packed_as_an_oa_package_read_as_the_loose_files(tmp_path):
    names = sorted(name for name in os.listdir(PMC_DIR) if name.endswith(".nxml"))
    members = {"PMC000xxxxxx/": None, "PMC000xxxxxx/LICENSE.txt": b"license text"}
    for name in names:
        with open(os.path.join(PMC_DIR, name), "rb") as fh:
            members[f"PMC000xxxxxx/{name}"] = fh.read()
    package = write_package(tmp_path / "oa_comm_xml.PMC000xxxxxx.baseline.2023-12-18.tar.gz", members)
    docs, report = read_all(read_pmc_jats, package)
    assert docs == [read_all(read_pmc_jats, os.path.join(PMC_DIR, name))[0][0] for name in names]
    assert (report.records, report.with_text, report.skipped, report.error) == (8, 8, {"non_xml_member": 1}, None)


@needs_data
def test_inspect_cli_on_real_pubmed_files():
    out = run_cli("experiments.inspect_data", "--kind=pubmed_xml", MEDLINE_2016, BASELINE_2023_CUT).stdout.splitlines()
    medline, baseline = (json.loads(line) for line in out)
    assert medline["with_text"] == 526 and medline["deleted_ids"] and not medline["truncated"]
    assert medline["first_record"]["id"].isdigit() and len(medline["first_record"]["text"]) <= 300
    assert baseline["with_text"] == 135 and baseline["truncated"] is True and baseline["error"]
