"""Region maps: which structure of a PE, ELF or Mach-O file holds each byte.

Owns: one module per format (`pe`, `elf`, `macho`) that turns a LIEF-parsed binary into a
`map.RegionMap`, the map's types (`map`), cutting a map into labelled pieces (`partition`) and
the structural comparison used when two layouts moved (`structure`).
Does not own: parsing untrusted bytes (done only inside `reprover.compare.isolation`), labelling
byte runs (`reprover.compare.ledger`) or signatures (`reprover.compare.signatures`).
"""
