"""The one escaping rule (reprover.render.safe), over every code point and the flagged names."""

from __future__ import annotations

import json
import os
import sys
import unicodedata

from reprover.render.safe import html_text, json_safe, md_fence, suspicious, visible

HIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp", "Zs")


def test_visible_escapes_every_control_format_and_odd_space_and_nothing_else() -> None:
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        shown = visible(ch)
        if unicodedata.category(ch) in HIDDEN and ch != " ":
            assert shown.startswith("\\") and shown.isascii(), hex(code)
        elif code not in (0x115F, 0x1160, 0x180E, 0x2800, 0x3164, 0xFFA0, 0x034F):
            assert shown == ch, hex(code)


def test_undecodable_bytes_show_as_the_bytes() -> None:
    name = os.fsdecode(b"scan\xff\xfe.exe")
    assert visible(name) == "scan\\xff\\xfe.exe"
    assert (
        json.dumps(json_safe({name: [name]}))
        == '{"scan\\\\xff\\\\xfe.exe": ["scan\\\\xff\\\\xfe.exe"]}'
    )


def test_visible_keeps_newlines_only_when_asked() -> None:
    assert visible("a\nb") == "a\\nb"
    assert visible("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


def test_html_text_isolates_and_escapes() -> None:
    assert html_text('<b>"x"\u202e') == "<bdi>&lt;b&gt;&quot;x&quot;\\u202e</bdi>"


def test_fences_are_longer_than_any_backtick_run_inside() -> None:
    fence = md_fence(["a ````` b", "```"])
    assert fence[0] == "``````" and fence[-1] == "``````"


def test_suspicious_names() -> None:
    assert suspicious("scan.exe") == ()
    assert suspicious("bin/\u0436\u0443\u043a.exe") == ()  # one script per word is fine
    assert suspicious("\u65e5\u672c\u8a9e\u3072\u3089\u304c\u306a.txt") == ()  # Japanese
    assert suspicious("sc\u0430n.exe") == ("mixed scripts (Cyrillic, Latin)",)
    assert suspicious("\u202eexe.nacs") == ("bidi controls",)
    assert suspicious("scan\u200d.exe") == ("invisible characters",)
    assert suspicious("scan\u3164.exe") == ("invisible characters",)
    assert suspicious("a\x1bb") == ("control characters",)
    assert suspicious(os.fsdecode(b"\xff")) == ("undecodable bytes",)
    assert suspicious("setup.msi!sc\u0430n.exe") == ("mixed scripts (Cyrillic, Latin)",)
