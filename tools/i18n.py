"""The Chinese edition's catalogs: keep them in step with the English, check them, fill them.

One catalog per document in ``docs/locales/zh_CN/LC_MESSAGES/`` (``recipes/limiting.po`` for
the chapter ``docs/recipes/limiting.rst``).  Commands, run with the ``docs`` environment's
Python (``.tox/docs/bin/python tools/i18n.py ...``)::

    update            after an English edit: extract the messages, merge them into the
                      catalogs (a changed message becomes fuzzy and shows in English until
                      it is translated again), fill the ones with nothing to translate
    check             what CI runs: fails on a stale catalog, a fuzzy entry, or a chapter
                      with less than 98% of its words translated; prints the coverage
    coverage          the per-document coverage table only
    glossary [DOC]    translations that render a glossary term differently (glossary.tsv)
    todo DOC          the untranslated and fuzzy entries of one catalog, each under a key
                      (DOC "*": every catalog's, each text once, with the pages it is on)
    fill DOC FILE     apply translations written under todo's keys (checked first);
                      DOC "*" applies each to every catalog that has it

``fill`` reads blocks like::

    @@ 3f2a9c1e
    用一个 :class:`asyncio.Semaphore` 限制并发。

    @@ 9b0c77d2 keep

The second keeps an entry in English on purpose (an error message in the index).

CI also runs ``tools/test_i18n.py``: every translation against the glossary, and parsed with
docutils against its English (the same code, references and links; nothing reST cannot read).
The library that reads and writes the catalogs is Babel (Sphinx depends on it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LANGUAGE = "zh_CN"
CATALOGS = DOCS / "locales" / LANGUAGE / "LC_MESSAGES"
GLOSSARY = DOCS / "locales" / LANGUAGE / "glossary.tsv"
THEME_CATALOG = "sphinx"  # furo's and docs/_ext's labels, kept by hand
REQUIRED_COVERAGE = 0.98
# The changelog is a record: its headings are translated, its entries stay in English.
HEADINGS_ONLY = {"changelog"}

# Words that stay as they are in Chinese text: names of projects, tools and units.
KEPT_WORDS = {
    "asyncio",
    "aiohttp",
    "aiofiles",
    "asyncpg",
    "uvloop",
    "python",
    "cpython",
    "postgresql",
    "pypy",
    "pytest",
    "tox",
    "sphinx",
    "furo",
    "jieba",
    "looptime",
    "hypothesis",
    "janus",
    "aiolimiter",
    "tenacity",
    "procrastinate",
    "pgqueuer",
    "psycopg",
    "anyio",
    "trio",
    "taskgroup",
    "exceptiongroup",
    "linux",
    "macos",
    "windows",
    "debian",
    "ubuntu",
    "json",
    "http",
    "https",
    "url",
    "html",
    "api",
    "sql",
    "tcp",
    "udp",
    "tls",
    "ssl",
    "cpu",
    "io",
    "kib",
    "mib",
    "gib",
    "ms",
    "µs",
    "ns",
    "s",
    "b",
    "kb",
    "mb",
    "rss",
    "gil",
    "os",
    "x",
    "vs",
    "min",
    "max",
    "median",
    "p",
    "ok",
    "n",
    "pid",
    "sse",
    "websocket",
    "websockets",
}

_INLINE_LITERAL = re.compile(r"``.+?``")
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`[^`]+`")
_WORD = re.compile(r"[A-Za-zµ]+(?:'[a-z]+)?")
_CJK = re.compile(r"[\u3400-\u9fff]")


# --- reading and writing -------------------------------------------------------------------


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=LANGUAGE)


def write_catalog(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, width=0, ignore_obsolete=True)


def documents(directory: Path, suffix: str) -> Dict[str, Path]:
    """``{"recipes/limiting": path}`` for every catalog or template under ``directory``.

    ``sphinx.po`` is left out: it holds the theme's and the extensions' labels, not a page.
    """
    found = {
        path.relative_to(directory).with_suffix("").as_posix(): path
        for path in sorted(directory.rglob("*" + suffix))
    }
    found.pop(THEME_CATALOG, None)
    return found


def extract(outdir: Path) -> Dict[str, Path]:
    """Run Sphinx's gettext builder; return the templates it wrote."""
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "gettext", str(DOCS), str(outdir)],
        check=True,
    )
    return documents(outdir, ".pot")


def messages(catalog: Catalog) -> Iterator[Message]:
    return (message for message in catalog if message.id)


# --- what counts as text to translate -------------------------------------------------------


def _role_title(role: re.Match) -> str:
    titled = re.match(r":[^`]+`(.*)<[^<>]+>`$", role.group(), re.S)
    return " " + titled.group(1) + " " if titled else " "


def prose(text: str) -> str:
    """The text without inline code, roles and link targets: what a translator words."""
    text = _INLINE_LITERAL.sub(" ", text)
    # A reference's own title is prose (:ref:`Retrying with backoff <recipes/errors:...>`).
    text = _ROLE.sub(_role_title, text)
    text = re.sub(r"<[^<>`]+>`", "`", text)  # link targets
    text = re.sub(r"https?://\S+", " ", text)
    return text


def _is_identifier(token: str) -> bool:
    """A name from code, a file name, a version or a parameter (``task_id``, ``a.py``)."""
    return bool(re.search(r"[_.=/]|\d", token) or re.search(r"[a-z][A-Z]", token))


def plain_prose(text: str) -> str:
    """:func:`prose` without the identifiers and calls written as plain text (``retry()``)."""
    return re.sub(
        r"[\w.=/-]+(\([^()\s]*\))?",
        lambda m: " " if m.group(1) is not None or _is_identifier(m.group()) else m.group(),
        prose(text),
    )


def prose_words(text: str) -> List[str]:
    """English words a reader would expect in Chinese, ignoring names, identifiers and units."""
    words = []
    for token in re.findall(r"[\w.=/-]+", prose(text)):
        if _is_identifier(token):
            continue  # an identifier, a file name, a version or a parameter
        for word in _WORD.findall(token):
            if word.lower() not in KEPT_WORDS and not word.isupper():
                words.append(word)
    return words


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def nothing_to_translate(msgid: str) -> bool:
    return not prose_words(msgid)


def key(msgid: str) -> str:
    return hashlib.sha1(msgid.encode("utf-8")).hexdigest()[:8]


# --- checks on one translation ---------------------------------------------------------------


# Inline markup, in the order docutils tries it at one position.
_SPANS = re.compile(
    r"``.+?``|:[a-z]+(?::[a-z]+)?:`[^`]+`|`[^`]+`(?:__?)?|\*\*[^*]+\*\*|\*[^*\s][^*]*\*"
)


def _may_precede_markup(char: str) -> bool:
    return (
        char.isspace()
        or char in "'\"([{<-/:"
        or unicodedata.category(char) in ("Ps", "Pi", "Pf", "Pd", "Po")
    )


def _may_follow_markup(char: str) -> bool:
    return (
        char.isspace()
        or char in "'\")]}>-/:.,;!?\\"
        or unicodedata.category(char) in ("Pe", "Pi", "Pf", "Pd", "Po")
    )


def separate_markup(text: str) -> str:
    """The text with ``\\ `` (an escaped space, which reST drops) wherever inline markup
    touches a character that would stop docutils from seeing it as markup: a Chinese letter,
    or an opening bracket such as ``（`` right after the markup."""
    pieces = []
    last = 0
    for match in _SPANS.finditer(text):
        start, end = match.span()
        pieces.append(text[last:start])
        if start > 0 and not _may_precede_markup(text[start - 1]):
            pieces.append("\\ ")
        pieces.append(match.group())
        if end < len(text) and not _may_follow_markup(text[end]):
            pieces.append("\\ ")
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _inline_structure(text: str) -> Tuple[Dict[str, int], List[str], List[str]]:
    """How docutils reads ``text``: inline nodes counted by kind; the code, role targets and
    link targets it holds; and its complaints.  Sphinx's roles stand in as plain literals
    holding their target (the title of ``:ref:`title <target>``` may be translated)."""
    from docutils import nodes, utils
    from docutils.core import publish_doctree
    from docutils.parsers.rst import roles

    def any_role(name, rawtext, text, lineno, inliner, options=None, content=None):  # type: ignore[no-untyped-def]
        titled = re.match(r"(?s).*<([^<>]+)>$", text)  # :ref:`title <target>`: the target
        return [nodes.literal(rawtext, titled.group(1) if titled else utils.unescape(text))], []

    for name in set(re.findall(r":([a-z]+(?::[a-z]+)?):`", text)):
        roles.register_local_role(name, any_role)
    complaints: List[str] = []
    tree = publish_doctree(
        text,
        settings_overrides={"report_level": 5, "halt_level": 5, "warning_stream": False},
    )
    for message in tree.findall(nodes.system_message):
        complaints.append(message.astext().splitlines()[0][:100])
    # Emphasis is left to the translator: Chinese often stresses a word with quotes instead.
    kinds = (nodes.literal, nodes.reference, nodes.title_reference)
    counts = {kind.__name__: sum(1 for _ in tree.findall(kind)) for kind in kinds}
    targets = [node.astext() for node in tree.findall(nodes.literal)]
    targets += [
        node.get("refuri") or node.get("refname", "") for node in tree.findall(nodes.reference)
    ]
    return counts, sorted(targets), complaints


# A translator's comment on an entry left in English on purpose (an error message, a term that
# is only ever written in English); ``fill`` writes it for ``@@ <key> keep``.
KEEP = "kept in English on purpose"


def is_kept(message: Message) -> bool:
    return message.string == message.id and KEEP in message.user_comments


def translation_problems(msgid: str, msgstr: str, kept: bool = False) -> List[str]:
    """Why this translation would break the page or the rules; empty when it is fine."""
    if kept:
        return [] if msgstr == msgid else ["an entry kept in English must equal the English"]
    problems = []
    if "\n" in msgstr and "\n" not in msgid:
        problems.append("a line break the English does not have")
    if len(prose_words(msgid)) >= 3 and not _CJK.search(msgstr):
        problems.append("no Chinese in a translation of English prose")
    (english, english_targets, expected), (chinese, chinese_targets, complaints) = (
        _inline_structure(msgid),
        _inline_structure(msgstr),
    )
    if complaints and not expected:  # a paragraph ending in "::" is a complaint in both
        # Usually markup glued to a Chinese letter or a "（": fill inserts "\\ " there.
        problems.append(f"docutils cannot parse it: {complaints[0]}")
    elif english != chinese or english_targets != chinese_targets:
        missing = sorted(set(english_targets) - set(chinese_targets))
        extra = sorted(set(chinese_targets) - set(english_targets))
        problems.append(
            f"inline code, references or links differ: {english} became {chinese},"
            f" missing {missing}, extra {extra}"
        )
    return problems


# --- the glossary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    english: Tuple[str, ...]
    chinese: str
    must: bool
    competing: Tuple[str, ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        forms = sorted(self.english, key=len, reverse=True)
        # Whole words only: not part of a file name or identifier (``streams.py``, ``task_id``).
        return re.compile(
            r"(?<![\w./-])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w-]|\.\w)", re.I
        )


def read_glossary(path: Path = GLOSSARY) -> List[Term]:
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        english, chinese, rule, *rest = line.split("\t")
        if rule not in ("must", "avoid"):
            raise ValueError(f"glossary: rule must be 'must' or 'avoid': {line!r}")
        competing = tuple(c for c in (rest[0].split("|") if rest else []) if c)
        terms.append(Term(tuple(english.split("|")), chinese, rule == "must", competing))
    return terms


def glossary_problems(msgid: str, msgstr: str, terms: List[Term]) -> List[str]:
    """Glossary terms this translation renders differently from the glossary."""
    problems = []
    english = plain_prose(msgid)
    for term in terms:
        if not term.pattern.search(english):
            continue
        for rival in term.competing:
            if rival in msgstr:
                problems.append(f"{term.english[0]!r} is {term.chinese!r}, not {rival!r}")
        if term.must and term.chinese not in msgstr:
            problems.append(
                f"{term.english[0]!r} is {term.chinese!r}, which the translation lacks"
            )
    return problems


# --- coverage -------------------------------------------------------------------------------


@dataclass
class Coverage:
    document: str
    messages: int
    translated_messages: int
    words: int
    translated_words: int
    fuzzy: int

    @property
    def ratio(self) -> float:
        return self.translated_words / self.words if self.words else 1.0


def is_translated(message: Message) -> bool:
    return bool(message.string) and not message.fuzzy


def coverage(
    document: str, catalog: Catalog, headings: Optional[Iterable[str]] = None
) -> Coverage:
    wanted = list(messages(catalog))
    if headings is not None:
        titles = set(headings)
        wanted = [m for m in wanted if m.id in titles]
    return Coverage(
        document,
        len(wanted),
        sum(is_translated(m) for m in wanted),
        sum(word_count(m.id) for m in wanted),
        sum(word_count(m.id) for m in wanted if is_translated(m)),
        sum(bool(m.fuzzy) for m in wanted),
    )


def changelog_headings() -> List[str]:
    """Section titles of CHANGELOG.rst, as docutils reads them (the messages to translate)."""
    from docutils import nodes
    from docutils.core import publish_doctree

    tree = publish_doctree(
        (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8"),
        settings_overrides={"report_level": 5, "halt_level": 5},
    )
    return [title.astext() for title in tree.findall(nodes.title)]


def all_coverage() -> List[Coverage]:
    result = []
    for document, path in documents(CATALOGS, ".po").items():
        headings = changelog_headings() if document in HEADINGS_ONLY else None
        result.append(coverage(document, read_catalog(path), headings))
    return result


def print_coverage(rows: List[Coverage]) -> None:
    print(f"{'document':<28} {'messages':>13} {'words':>15} {'coverage':>9}")
    for row in rows:
        note = " (headings)" if row.document in HEADINGS_ONLY else ""
        print(
            f"{row.document:<28} {row.translated_messages:>6}/{row.messages:<6} "
            f"{row.translated_words:>7}/{row.words:<7} {row.ratio:>8.1%}{note}"
        )
    words = sum(r.words for r in rows)
    done = sum(r.translated_words for r in rows)
    print(f"{'all':<28} {'':>13} {done:>7}/{words:<7} {done / words:>8.1%}")


# --- update and check -------------------------------------------------------------------------


def merge(template: Catalog, catalog: Optional[Catalog]) -> Catalog:
    """The catalog brought in step with the template; trivial entries filled."""
    if catalog is None:
        catalog = Catalog(locale=LANGUAGE, project=template.project, version=template.version)
        catalog.creation_date = template.creation_date
    catalog.update(template, update_creation_date=False)
    catalog.obsolete.clear()
    for message in messages(catalog):
        if (not message.string or message.fuzzy) and nothing_to_translate(message.id):
            message.string = message.id
            message.flags.discard("fuzzy")
    return catalog


def update() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        templates = extract(Path(tmp))
        existing = documents(CATALOGS, ".po")
        for document, template_path in templates.items():
            path = CATALOGS / (document + ".po")
            old = read_catalog(path) if path.exists() else None
            write_catalog(path, merge(read_catalog(template_path), old))
        for document in sorted(set(existing) - set(templates)):
            existing[document].unlink()
            print(f"removed {existing[document]}: the document is gone")
    print_coverage(all_coverage())


def stale(templates: Dict[str, Path]) -> List[str]:
    """Why the catalogs are out of step with the English text; empty when they are not."""
    problems = []
    catalogs = documents(CATALOGS, ".po")
    for document in sorted(set(templates) | set(catalogs)):
        if document not in catalogs:
            problems.append(f"{document}: no catalog")
            continue
        if document not in templates:
            problems.append(f"{document}: catalog of a document that is gone")
            continue
        wanted = {m.id for m in messages(read_catalog(templates[document]))}
        have = {m.id for m in messages(read_catalog(catalogs[document]))}
        for msgid in sorted(wanted - have)[:3]:
            problems.append(f"{document}: new English text not in the catalog: {msgid[:70]!r}")
        for msgid in sorted(have - wanted)[:3]:
            problems.append(f"{document}: catalog entry no longer in the English: {msgid[:70]!r}")
    return problems


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        problems = stale(extract(Path(tmp)))
    if problems:
        problems.append("run: .tox/docs/bin/python tools/i18n.py update, then translate")
    rows = all_coverage()
    print_coverage(rows)
    for row in rows:
        if row.fuzzy:
            problems.append(f"{row.document}: {row.fuzzy} fuzzy entries (todo {row.document})")
        if row.ratio < REQUIRED_COVERAGE:
            problems.append(
                f"{row.document}: {row.ratio:.1%} of the words translated, "
                f"{REQUIRED_COVERAGE:.0%} required"
            )
    for problem in problems:
        print("error:", problem, file=sys.stderr)
    return 1 if problems else 0


# --- the translators' loop --------------------------------------------------------------------


def todo(document: str, everything: bool = False) -> None:
    names = documents(CATALOGS, ".po") if document == "*" else {document: None}
    pages: Dict[str, List[str]] = {}
    found: Dict[str, Message] = {}
    for name in names:
        for message in messages(read_catalog(CATALOGS / (name + ".po"))):
            if everything or not is_translated(message):
                pages.setdefault(message.id, []).append(name)
                found.setdefault(message.id, message)
    for msgid, message in found.items():
        print(f"@@ {key(msgid)}")
        print(msgid)
        if document == "*":
            print("# on:", ", ".join(pages[msgid]))
        if message.fuzzy:  # the translation of the text before the English changed
            print("# old translation:", message.string)
        print()


def parse_fill(text: str) -> List[Tuple[str, str, bool]]:
    """``(key, translation, kept)`` for each block; ``@@ <key> keep`` keeps the English."""
    entries = []
    for block in re.split(r"^@@ ", text, flags=re.M)[1:]:
        head, _, body = block.partition("\n")
        entry_key, _, flag = head.strip().partition(" ")
        entries.append((entry_key, body.strip(), flag.strip() == "keep"))
    return entries


def fill(document: str, source: Path) -> int:
    """Apply a fill file to one catalog, or with ``document`` ``*`` to every catalog that has
    the entry (a term the index lists in several chapters gets one translation)."""
    if document == "*":
        entries = parse_fill(source.read_text(encoding="utf-8"))
        wanted = {entry[0] for entry in entries}
        seen = set()
        status = 0
        for name, path in documents(CATALOGS, ".po").items():
            keys = {key(m.id) for m in messages(read_catalog(path))} & wanted
            if keys:
                seen |= keys
                status |= _fill(name, [e for e in entries if e[0] in keys])
        for entry_key in sorted(wanted - seen):
            print(f"error: {entry_key}: no such entry in any catalog", file=sys.stderr)
            status = 1
        return status
    return _fill(document, parse_fill(source.read_text(encoding="utf-8")))


@contextlib.contextmanager
def _catalog_lock() -> Iterator[None]:
    """Serialize read-modify-write of the catalogs between translators working in parallel."""
    import fcntl  # POSIX; the docs environment runs there

    with open(Path(tempfile.gettempdir()) / "asyncio-cookbook-i18n.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fill(document: str, entries: List[Tuple[str, str, bool]]) -> int:
    with _catalog_lock():
        return _fill_unlocked(document, entries)


def _fill_unlocked(document: str, entries: List[Tuple[str, str, bool]]) -> int:
    path = CATALOGS / (document + ".po")
    catalog = read_catalog(path)
    by_key = {key(m.id): m for m in messages(catalog)}
    errors = 0
    filled = 0
    for entry_key, text, kept in entries:
        message = by_key.get(entry_key)
        if message is None:
            print(f"error: {entry_key}: no such entry in {document}", file=sys.stderr)
            errors += 1
            continue
        text = message.id if kept else separate_markup(text)
        problems = translation_problems(message.id, text, kept) if text else ["empty"]
        if problems:
            errors += 1
            for problem in problems:
                print(f"error: {entry_key}: {problem}", file=sys.stderr)
            continue
        message.string = text
        message.flags.discard("fuzzy")
        message.user_comments = [KEEP] if kept else []
        filled += 1
    write_catalog(path, catalog)
    left = sum(not is_translated(m) for m in messages(catalog))
    print(f"{document}: {filled} filled, {errors} refused, {left} left")
    return 1 if errors else 0


def check_glossary(document: Optional[str] = None) -> int:
    terms = read_glossary()
    found = 0
    for name, path in documents(CATALOGS, ".po").items():
        if document and name != document:
            continue
        for message in messages(read_catalog(path)):
            if is_translated(message) and not is_kept(message):
                for problem in glossary_problems(message.id, message.string, terms):
                    print(f"{name} [{key(message.id)}]: {problem}")
                    found += 1
    print(f"{found} glossary problems")
    return 1 if found else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update")
    commands.add_parser("check")
    commands.add_parser("coverage")
    todo_parser = commands.add_parser("todo")
    todo_parser.add_argument("document")
    todo_parser.add_argument("--all", action="store_true", help="translated entries too")
    fill_parser = commands.add_parser("fill")
    fill_parser.add_argument("document")
    fill_parser.add_argument("file", type=Path)
    glossary_parser = commands.add_parser("glossary")
    glossary_parser.add_argument("document", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "update":
        update()
    elif args.command == "check":
        return check()
    elif args.command == "coverage":
        print_coverage(all_coverage())
    elif args.command == "glossary":
        return check_glossary(args.document)
    elif args.command == "todo":
        todo(args.document, args.all)
    else:
        return fill(args.document, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
