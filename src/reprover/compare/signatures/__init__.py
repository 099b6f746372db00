"""Signature proofs: a signed release is its rebuild plus a signature and nothing else.

Owns: Authenticode (`authenticode`: the proofs; `pe_certtable`: the certificate table and the
Authenticode hash; `pkcs7`: Authenticode signers, nested signatures; `cms`: the closed
SignedData grammar; `timestamps`: RFC 3161 and PKCS#9 countersignatures; `der`: a strict,
bounded DER reader), trust anchors (`trust`) and Mach-O code signatures (`macho`: the proof
and pins; `macho_layout`: fat slices and load commands; `macho_blobs`: SuperBlob and
CodeDirectory; `macho_cms`: the Developer ID style CMS signer).
Does not own: region maps of the rest of the file (`reprover.compare.regions`) or policy.
"""

import json


def quoted(name: str) -> str:
    """A certificate name as one quoted string: a subject such as `CN=x (chains to pinned
    trust)` or `CN=x; issuer CN=Root` must read as one name, never as reprover's own words."""
    return json.dumps(name, ensure_ascii=False)
