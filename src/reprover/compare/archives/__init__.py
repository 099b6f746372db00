"""Archives and installers, compared member by member and layer by layer.

Owns: the ZIP family (`zipfmt`), TAR (`tarfmt`) and its compressed streams (`streams`), the
format sniffing and dispatch (`formats`), the bounds (`limits`) and the recursion driver
(`driver`: `compare_tree`). Members are reported as artifacts `outer!inner`, archive metadata
as regions of the outer artifact (`zip.entry[a].mtime`, `tar.member[a].uid`,
`gzip.header.mtime`), and bytes nothing accounts for as `archive.hidden`.
Does not own: the byte ledger of leaf files, the signature proofs, the policy vocabulary.
"""

from reprover.compare.archives.driver import Context, compare_tree
from reprover.compare.archives.limits import Budget, LimitHit, Limits

__all__ = ["Budget", "Context", "LimitHit", "Limits", "compare_tree"]
