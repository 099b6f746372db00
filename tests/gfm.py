"""GitHub-flavoured Markdown rendered by cmark-gfm, the renderer GitHub itself builds on.

Debian's `cmark-gfm` (in `.ci/apt-packages.txt`) with the extensions github.com enables:
tables, autolinks (`www.` and bare URLs), strikethrough, task lists and the tag filter.
"""

from __future__ import annotations

import shutil
import subprocess

EXTENSIONS = ("table", "autolink", "strikethrough", "tasklist", "tagfilter")


def to_html(markdown: str) -> str:
    """Render `markdown` as GitHub would (before its sanitizer and @mention processing)."""
    binary = shutil.which("cmark-gfm")
    assert binary is not None, "cmark-gfm must be installed (.ci/apt-packages.txt)"
    argv = [binary, "--unsafe"]
    for extension in EXTENSIONS:
        argv += ["-e", extension]
    done = subprocess.run(argv, input=markdown, capture_output=True, text=True, check=True)
    return done.stdout
