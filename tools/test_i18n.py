"""Tests of the Chinese edition's catalogs and of the checks CI runs on them (tox -e docs).

The first group reads the real catalogs in docs/locales/zh_CN: glossary terms used
consistently, code and references carried through unchanged, markup that reST can parse, the
theme's labels translated.  The second feeds made-up catalogs to the checks of
``tools/i18n.py`` and asserts that each one catches what it is for.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import pytest
from babel.messages.catalog import Catalog

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "_ext"))

import i18n
import zh_edition

CATALOGS = i18n.documents(i18n.CATALOGS, ".po")


def translated(document: str) -> Dict[str, str]:
    """The entries translated into Chinese (not those kept in English on purpose)."""
    catalog = i18n.read_catalog(CATALOGS[document])
    return {
        m.id: m.string
        for m in i18n.messages(catalog)
        if i18n.is_translated(m) and not i18n.is_kept(m)
    }


# --- the real catalogs ---------------------------------------------------------------------


def test_every_document_has_a_catalog() -> None:
    pages = {
        path.relative_to(i18n.DOCS).with_suffix("").as_posix()
        for path in i18n.DOCS.rglob("*.rst")
        if not path.relative_to(i18n.DOCS).parts[0].startswith("_")
    }
    assert pages == set(CATALOGS)


@pytest.mark.parametrize("document", sorted(CATALOGS))
def test_glossary_terms_are_used_consistently(document: str) -> None:
    terms = i18n.read_glossary()
    problems = [
        f"[{i18n.key(msgid)}] {problem}"
        for msgid, msgstr in translated(document).items()
        for problem in i18n.glossary_problems(msgid, msgstr, terms)
    ]
    assert problems == []


@pytest.mark.parametrize("document", sorted(CATALOGS))
def test_code_references_and_links_come_through_unchanged(document: str) -> None:
    catalog = i18n.read_catalog(CATALOGS[document])
    problems = [
        f"[{i18n.key(m.id)}] {problem}"
        for m in i18n.messages(catalog)
        if i18n.is_translated(m)
        for problem in i18n.translation_problems(m.id, m.string, i18n.is_kept(m))
    ]
    assert problems == []


def test_the_glossary_gives_one_chinese_term_per_english_term() -> None:
    terms = i18n.read_glossary()
    seen: Dict[str, str] = {}
    for term in terms:
        for form in term.english:
            assert seen.setdefault(form.lower(), term.chinese) == term.chinese, form
        assert term.chinese not in term.competing, term
    assert len(terms) >= 60


def test_every_glossary_term_appears_in_the_book() -> None:
    everything = "\n".join(s for document in CATALOGS for s in translated(document).values())
    unused = [term.chinese for term in i18n.read_glossary() if term.chinese not in everything]
    assert unused == []


def test_theme_catalog_translates_every_fixed_furo_label() -> None:
    catalog = i18n.read_catalog(i18n.CATALOGS / "sphinx.po")
    strings = {m.id: m.string for m in i18n.messages(catalog)}
    assert all(strings.get(label) for label in zh_edition.FURO_FIXED_LABELS)
    assert all(i18n.is_translated(m) for m in i18n.messages(catalog))


def test_changelog_headings_are_translated() -> None:
    catalog = i18n.read_catalog(CATALOGS["changelog"])
    strings = {m.id: m.string for m in i18n.messages(catalog) if i18n.is_translated(m)}
    headings = i18n.changelog_headings()
    assert headings
    assert [h for h in headings if h not in strings] == []


# --- the search dictionary -----------------------------------------------------------------


def test_user_dictionary_keeps_glossary_terms_whole(tmp_path: Path) -> None:
    jieba = pytest.importorskip("jieba", reason="the docs extra installs jieba")
    jieba.setLogLevel(60)
    tokenizer = jieba.Tokenizer()
    dictionary = zh_edition.write_user_dictionary(i18n.GLOSSARY, tmp_path / "dict.txt")
    with dictionary.open("rb") as f:  # given a path, jieba leaves the file open
        tokenizer.load_userdict(f)
    for text, term in [
        ("用令牌桶限流", "令牌桶"),
        ("任务组里的任务", "任务组"),
        ("并发数由信号量控制", "信号量"),
        ("背压让生产者等待", "背压"),
    ]:
        assert term in set(tokenizer.cut_for_search(text)), text


# --- the checks catch what they are for ------------------------------------------------------


def test_markup_check_catches_lost_code_and_references() -> None:
    msgid = "Wrap it in :func:`asyncio.wait_for` and catch ``TimeoutError``."
    assert (
        i18n.translation_problems(
            msgid, "用 :func:`asyncio.wait_for` 包装并捕获 ``TimeoutError``。"
        )
        == []
    )
    assert i18n.translation_problems(msgid, "用 wait_for 包装并捕获 ``TimeoutError``。")
    assert i18n.translation_problems(
        msgid, "用 :func:`asyncio.wait_for` 包装并捕获 TimeoutError。"
    )
    assert i18n.translation_problems(
        msgid, "Wrap it in :func:`asyncio.wait_for` and catch ``TimeoutError``."
    )


def test_markup_check_catches_markup_docutils_does_not_see() -> None:
    # An opening bracket right after the role: docutils reads it as plain text.
    msgid = "It raises :exc:`ValueError` (a bad value)."
    assert i18n.translation_problems(msgid, "它抛出 :exc:`ValueError`\\ （错误的值）。") == []
    problems = i18n.translation_problems(msgid, "它抛出 :exc:`ValueError`（错误的值）。")
    assert any("docutils" in p or "touches" in p for p in problems), problems


def test_link_text_may_be_translated_but_not_its_address() -> None:
    msgid = "See `the asyncio docs <https://docs.python.org/3/library/asyncio.html>`__."
    ok = "参见 `asyncio 文档 <https://docs.python.org/3/library/asyncio.html>`__。"
    assert i18n.translation_problems(msgid, ok) == []
    assert i18n.translation_problems(msgid, ok.replace("asyncio.html", "asyncio-task.html"))


def test_reference_titles_may_be_translated_but_not_their_targets() -> None:
    msgid = "See :ref:`retrying <recipes/errors:Retrying with backoff>`."
    assert (
        i18n.translation_problems(
            msgid, "参见 :ref:`重试 <recipes/errors:Retrying with backoff>`。"
        )
        == []
    )
    assert i18n.translation_problems(msgid, "参见 :ref:`重试 <recipes/errors:重试>`。")


@pytest.mark.parametrize(
    "glued, separated",
    [
        ("用一个:func:`x`同时", "用一个\\ :func:`x`\\ 同时"),
        ("抛出 :exc:`ValueError`（嵌套）", "抛出 :exc:`ValueError`\\ （嵌套）"),
        ("（见 :func:`x`）。", "（见 :func:`x`）。"),
        ("**注意**这里", "**注意**\\ 这里"),
        ("``a``、``b``", "``a``、``b``"),
    ],
)
def test_markup_next_to_chinese_gets_a_separator(glued: str, separated: str) -> None:
    assert i18n.separate_markup(glued) == separated
    assert i18n.separate_markup(separated) == separated


def test_glossary_check_catches_a_competing_or_missing_term() -> None:
    terms = i18n.read_glossary()
    msgid = "A cancelled task re-raises the cancellation."
    assert i18n.glossary_problems(msgid, "被取消的任务会重新抛出取消。", terms) == []
    assert i18n.glossary_problems(msgid, "被撤销的任务会重新抛出取消。", terms)
    assert i18n.glossary_problems(msgid, "被中止的任务会重新抛出。", terms)
    # Code is not prose: a term inside inline code asks for nothing.
    assert (
        i18n.glossary_problems("Call ``task.cancel()``.", "调用 ``task.cancel()``。", terms) == []
    )


def _catalog(entries: List[tuple]) -> Catalog:
    catalog = Catalog(locale="zh_CN")
    for msgid, msgstr, *fuzzy in entries:
        catalog.add(msgid, msgstr, flags=("fuzzy",) if fuzzy else ())
    return catalog


@pytest.fixture
def fake_catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "LC_MESSAGES"
    monkeypatch.setattr(i18n, "CATALOGS", folder)
    return folder


def test_stale_check_catches_new_and_removed_english(fake_catalogs: Path, tmp_path: Path) -> None:
    templates = tmp_path / "pot"
    i18n.write_catalog(templates / "recipes" / "x.pot", _catalog([("One.", ""), ("Two.", "")]))
    i18n.write_catalog(
        fake_catalogs / "recipes" / "x.po", _catalog([("One.", "一。"), ("Two.", "二。")])
    )
    assert i18n.stale(i18n.documents(templates, ".pot")) == []

    i18n.write_catalog(templates / "recipes" / "x.pot", _catalog([("One.", ""), ("Three.", "")]))
    problems = i18n.stale(i18n.documents(templates, ".pot"))
    assert any("new English text" in p and "Three." in p for p in problems)
    assert any("no longer in the English" in p and "Two." in p for p in problems)

    i18n.write_catalog(templates / "recipes" / "y.pot", _catalog([("New page.", "")]))
    assert any("recipes/y: no catalog" in p for p in i18n.stale(i18n.documents(templates, ".pot")))


def test_update_merges_keeps_translations_and_marks_changed_text_fuzzy() -> None:
    old = _catalog([("The queue is full.", "队列已满。"), ("Unchanged.", "不变。")])
    template = _catalog([("The queue is full now.", ""), ("Unchanged.", ""), ("42", "")])
    merged = i18n.merge(template, old)
    assert merged["Unchanged."].string == "不变。"
    assert merged["The queue is full now."].fuzzy  # shown in English until translated again
    assert merged["42"].string == "42"  # nothing to translate: filled
    coverage = i18n.coverage("x", merged)
    assert coverage.fuzzy == 1
    assert coverage.ratio < i18n.REQUIRED_COVERAGE


def test_coverage_counts_words_and_ignores_fuzzy_and_empty() -> None:
    catalog = _catalog(
        [
            ("one two three four", "一二三四"),
            ("five six", "五六", True),
            ("seven eight nine ten", ""),
        ]
    )
    coverage = i18n.coverage("x", catalog)
    assert (coverage.words, coverage.translated_words, coverage.fuzzy) == (10, 4, 1)
    assert coverage.ratio == pytest.approx(0.4)


def test_check_fails_on_fuzzy_and_low_coverage(
    fake_catalogs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    i18n.write_catalog(
        fake_catalogs / "recipes" / "x.po",
        _catalog(
            [("A long sentence about tasks.", "一个关于任务的长句。"), ("Another one here.", "")]
        ),
    )
    monkeypatch.setattr(i18n, "extract", lambda outdir: {})
    monkeypatch.setattr(i18n, "stale", lambda templates: [])
    assert i18n.check() == 1
    assert "recipes/x: 62.5% of the words translated, 98% required" in capsys.readouterr().err

    i18n.write_catalog(
        fake_catalogs / "recipes" / "x.po",
        _catalog(
            [
                ("A long sentence about tasks.", "一个关于任务的长句。"),
                ("Another one here.", "另一个。", True),
            ]
        ),
    )
    assert i18n.check() == 1
    assert "recipes/x: 1 fuzzy entries" in capsys.readouterr().err

    i18n.write_catalog(
        fake_catalogs / "recipes" / "x.po",
        _catalog(
            [
                ("A long sentence about tasks.", "一个关于任务的长句。"),
                ("Another one here.", "另一个。"),
            ]
        ),
    )
    assert i18n.check() == 0


def test_fill_keeps_an_entry_in_english_only_when_asked(
    fake_catalogs: Path, tmp_path: Path
) -> None:
    message = "got Future <Future pending> attached to a different loop"
    i18n.write_catalog(fake_catalogs / "recipes" / "x.po", _catalog([(message, "")]))
    fill = tmp_path / "x.fill"
    fill.write_text(f"@@ {i18n.key(message)}\n{message}\n", encoding="utf-8")
    assert i18n.fill("recipes/x", fill) == 1  # a copy of the English is not a translation
    fill.write_text(f"@@ {i18n.key(message)} keep\n", encoding="utf-8")
    assert i18n.fill("recipes/x", fill) == 0
    (entry,) = i18n.messages(i18n.read_catalog(fake_catalogs / "recipes" / "x.po"))
    assert entry.string == message and i18n.is_kept(entry)


def test_fill_refuses_a_broken_translation_and_keeps_the_rest(
    fake_catalogs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    i18n.write_catalog(
        fake_catalogs / "recipes" / "x.po",
        _catalog([("Use :func:`asyncio.run` here.", ""), ("Start a task.", "")]),
    )
    fill = tmp_path / "x.fill"
    fill.write_text(
        f"@@ {i18n.key('Use :func:`asyncio.run` here.')}\n在这里用 asyncio.run。\n\n"
        f"@@ {i18n.key('Start a task.')}\n启动一个任务。\n",
        encoding="utf-8",
    )
    assert i18n.fill("recipes/x", fill) == 1
    assert "inline code, references or links differ" in capsys.readouterr().err
    strings = {
        m.id: m.string
        for m in i18n.messages(i18n.read_catalog(fake_catalogs / "recipes" / "x.po"))
    }
    assert strings == {"Use :func:`asyncio.run` here.": "", "Start a task.": "启动一个任务。"}
