"""One escaping rule per output format, applied where a string leaves reprover.

Owns: making a string that came from an input (file, member, section, symbol, certificate, link,
layout, manifest value, build log, signer) safe for the format it is written into, and the
`suspicious-name` flag for names a reader could misread.

- text and stderr (`visible`): control characters (C0, DEL, C1), bidi controls, invisible and
  format characters, odd spaces and line separators become visible escapes (`\\x1b`, `\\u202e`);
  a byte that was not UTF-8 (Python keeps it as a lone surrogate) becomes `\\xNN`.
- Markdown (`md_code`, `md_fence`): the visible form inside a code span or fence with more
  backticks than the content holds, so the content cannot close it; no autolink, HTML, emphasis
  or mention is recognised inside code.
- HTML (`html_text`): the visible form, HTML-escaped and wrapped in `<bdi>` so that it cannot
  reorder the text around it.
- JSON (`json_safe`): JSON escapes everything itself; only lone surrogates (undecodable bytes)
  are replaced by their visible `\\xNN` form, which strict JSON parsers would reject.

Does not own: choosing which strings come from inputs (each renderer does) or any markup.
"""

from __future__ import annotations

import re
import unicodedata
from html import escape
from typing import Any

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Letters and symbols that render as nothing although Unicode does not class them as format
# characters (Hangul fillers, braille blank, Mongolian vowel separator, combining grapheme
# joiner).
INVISIBLE = frozenset("\u115f\u1160\u180e\u2800\u3164\uffa0\u034f")
# Letters of these scripts are one script for the mixed-script test: Japanese mixes them.
_SCRIPT_ALIASES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK"}
_BACKTICKS = re.compile(r"`+")


def _escape_char(ch: str) -> str | None:
    """The visible escape for one character, or None when it may be shown as it is."""
    code = ord(ch)
    if ch == " ":
        return None
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    category = unicodedata.category(ch)
    if category == "Cc":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{code:02x}")
    if category in ("Cf", "Cs", "Zl", "Zp", "Zs") or ch in INVISIBLE:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return None


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every character that could move the cursor, hide or reorder text escaped.

    Args:
        text: any string, possibly holding lone surrogates for undecodable bytes.
        keep_newlines: leave `\\n` as it is (for a whole multi-line message); a single name or
            value must not, so that it cannot paint a line of its own.
    """
    out = []
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
            continue
        escaped = _escape_char(ch)
        out.append(ch if escaped is None else escaped)
    return "".join(out)


def md_code(text: str, *, in_table: bool = False) -> str:
    """A Markdown code span that shows `text` literally and that `text` cannot close.

    In a GFM table cell a `|` ends the cell even inside a code span unless escaped as `\\|`,
    which the table then shows as `|`.
    """
    content = visible(text)
    if in_table:
        content = content.replace("|", "\\|")
    if not content:
        return "\u2014"
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(content)), default=0) + 1)
    if content.strip(" ") and (content.startswith(("`", " ")) or content.endswith(("`", " "))):
        content = f" {content} "  # CommonMark strips one space each side: only these two
    return f"{fence}{content}{fence}"


def md_fence(lines: list[str], info: str = "") -> list[str]:
    """A fenced code block holding `lines` (each made visible) that no line can close."""
    shown = [visible(line) for line in lines]
    longest = max((len(m) for line in shown for m in _BACKTICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *shown, fence]


def html_text(text: str) -> str:
    """`text` made visible, HTML-escaped (quotes too) and isolated in `<bdi>`."""
    return f"<bdi>{escape(visible(text))}</bdi>"


def json_safe(value: Any) -> Any:
    """`value` with lone surrogates in every string (and key) replaced by `\\xNN`."""
    if isinstance(value, str):
        return _surrogates(value)
    if isinstance(value, dict):
        return {_surrogates(k) if isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _surrogates(text: str) -> str:
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return "".join(_escape_char(ch) or ch if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, GREEK, ...)."""
    if not unicodedata.category(ch).startswith("L") or ch in INVISIBLE:
        return None
    try:
        first = unicodedata.name(ch).split()[0]
    except ValueError:
        return "UNNAMED"
    return _SCRIPT_ALIASES.get(first, first)


def suspicious(name: str) -> tuple[str, ...]:
    """Why a reader could misread `name`: an empty tuple when nothing is odd about it.

    Reasons: `undecodable bytes`, `control characters`, `bidi controls`, `invisible
    characters` (format characters, fillers, spaces other than U+0020), `mixed scripts (...)`
    (letters from more than one script in one word, such as Latin and Cyrillic in
    `sc\\u0430n`).

    The script is read from each letter's Unicode name: the standard library has no script
    property, and a dependency for one flag would weigh more than these lines.
    """
    reasons = []
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        reasons.append("undecodable bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        reasons.append("control characters")
    if any(ch in BIDI_CONTROLS for ch in name):
        reasons.append("bidi controls")
    if any(
        ch not in BIDI_CONTROLS
        and (
            unicodedata.category(ch) in ("Cf", "Zl", "Zp")
            or (unicodedata.category(ch) == "Zs" and ch != " ")
            or ch in INVISIBLE
        )
        for ch in name
    ):
        reasons.append("invisible characters")
    mixed: set[str] = set()
    for word in re.findall(r"[^\W\d_]+", name):  # each run of letters, so not `<cyrillic>.exe`
        scripts = {s for s in map(_script, word) if s is not None}
        if len(scripts) > 1:
            mixed |= scripts
    if mixed:
        reasons.append(f"mixed scripts ({', '.join(sorted(s.title() for s in mixed))})")
    return tuple(reasons)


def suspicious_note(name: str) -> str | None:
    """`suspicious-name: REASONS` for a name a reader could misread, else None."""
    reasons = suspicious(name)
    return f"suspicious-name: {'; '.join(reasons)}" if reasons else None
