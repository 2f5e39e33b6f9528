from __future__ import annotations

import json
from pathlib import Path

from qa.cleaning import clean_text, is_boilerplate
from qa.loaders import LoadError, discover, load_file
from qa.types import Document

from .conftest import SEEDS


def _docs(path: Path) -> tuple[list[Document], list[LoadError]]:
    items = list(load_file(path))
    return [i for i in items if isinstance(i, Document)], [
        i for i in items if isinstance(i, LoadError)
    ]


def test_seed_footer_is_dropped_and_article_kept() -> None:
    docs, errors = _docs(SEEDS / "000_2af23a0a538a6775.txt")
    assert not errors
    doc = docs[0]
    assert doc.title == "2019 Chinese Library Annual Conference is closed"
    assert doc.text.startswith("On 22 August, 2019 Chinese Library Annual Conference was closed")
    assert doc.text.endswith("expanded its international influence.")
    for footer in ("Copyright", "About Us", "Tel:", "All rights reserved", "88545426"):
        assert footer not in doc.text


def test_boilerplate_lines() -> None:
    assert is_boilerplate("Copyright  |  About Us  |  Support Us  |  Site Map  |  Contact Us")
    assert is_boilerplate("Tel:(+86 10)88545426 88545360")
    assert is_boilerplate("Copyright©National Library of China.All rights reserved.")
    assert is_boilerplate("Home | News | Sport")
    assert not is_boilerplate("The theme of this annual conference was about libraries.")
    long_line = "Copyright law " + "was debated at length by the committee members " * 3
    assert not is_boilerplate(long_line)


def test_clean_text_normalises_whitespace() -> None:
    assert clean_text("a  b\t c\r\n\r\n\r\n\r\nd\u00a0e\x00") == "a b c\n\nd e"


def test_txt_and_md(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("\n\n  Title here  \n\nBody one.\n\nBody two.\n", "utf-8")
    (tmp_path / "b.md").write_text(
        "# Markdown title\n\nSome **bold** and [a link](http://x).\n", "utf-8"
    )
    docs, _ = _docs(tmp_path / "a.txt")
    assert (docs[0].title, docs[0].text) == ("Title here", "Body one.\n\nBody two.")
    docs, _ = _docs(tmp_path / "b.md")
    assert (docs[0].title, docs[0].text) == ("Markdown title", "Some bold and a link.")


def test_html_main_content_without_scripts(tmp_path: Path) -> None:
    html = """<html><head><title>Page title</title><style>p{color:red}</style></head>
    <body><nav>Home | About | Contact</nav><article><h1>Headline</h1>
    <p>First &amp; foremost paragraph.</p><script>alert('x')</script><p>Second one.</p></article>
    <footer>Copyright 2024</footer></body></html>"""
    (tmp_path / "p.html").write_text(html, "utf-8")
    docs, errors = _docs(tmp_path / "p.html")
    assert not errors
    assert docs[0].title == "Page title"
    assert docs[0].text == "First & foremost paragraph.\n\nSecond one."


def test_json_and_jsonl_records(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(
        json.dumps({"id": "art-1", "title": "T1", "text": "Text one.", "url": "http://u"}), "utf-8"
    )
    (tmp_path / "many.json").write_text(
        json.dumps(
            {"documents": [{"title": "A", "text": "Alpha."}, {"title": "B", "text": "Beta."}]}
        ),
        "utf-8",
    )
    (tmp_path / "lines.jsonl").write_text(
        '{"title": "L1", "text": "Line one.", "date": "2024-01-01"}\n'
        "{not json}\n"
        '{"title": "L3", "text": ""}\n'
        '{"title": "L4", "text": "Line four.", "id": 7}\n',
        "utf-8",
    )
    docs, errors = _docs(tmp_path / "one.json")
    assert docs[0].doc_id == "art-1" and docs[0].url == "http://u" and not errors
    docs, _ = _docs(tmp_path / "many.json")
    assert [d.title for d in docs] == ["A", "B"]
    docs, errors = _docs(tmp_path / "lines.jsonl")
    assert [d.title for d in docs] == ["L1", "L4"]
    assert docs[0].date == "2024-01-01" and docs[1].doc_id == "7"
    assert [e.path.rsplit(":", 1)[1] for e in errors] == ["2", "3"]


def test_broken_files_are_reported_with_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"Title\n\n\xff\xfe broken bytes")
    (tmp_path / "bad.json").write_text("{ nope", "utf-8")
    (tmp_path / "empty.txt").write_text("   \n\n", "utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", "utf-8")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    reasons = {}
    for name in ("bad.txt", "bad.json", "empty.txt", "list.json", "x.pdf"):
        docs, errors = _docs(tmp_path / name)
        assert not docs
        assert errors and all(
            e.path.startswith(str(tmp_path / name)) or name in e.path for e in errors
        )
        reasons[name] = errors[0].reason
    assert "UTF-8" in reasons["bad.txt"]
    assert "no article text" in reasons["empty.txt"]
    assert "JSON object" in reasons["list.json"]
    assert "unsupported" in reasons["x.pdf"]


def test_discover_recurses_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for p in ("a.txt", "sub/b.md", "sub/deeper/c.jsonl", ".hidden/d.txt", "sub/e.bin"):
        (tmp_path / p).write_text("x", "utf-8")
    files, errors = discover([tmp_path, tmp_path / "missing.txt"])
    assert [f.name for f in files] == ["a.txt", "b.md", "c.jsonl"]
    assert errors[0].reason == "no such file or directory"


def test_document_ids_are_stable() -> None:
    a, _ = _docs(SEEDS / "001_774e1130bc203f29.txt")
    b, _ = _docs(SEEDS / "001_774e1130bc203f29.txt")
    assert a[0].doc_id == b[0].doc_id and len(a[0].doc_id) == 16
