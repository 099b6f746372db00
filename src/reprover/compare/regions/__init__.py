"""Region maps: which structure of a PE, ELF or Mach-O file holds each byte.

Owns: one module per format (`pe`, `elf`, `macho`) that turns a LIEF-parsed binary into a
`map.RegionMap` from structure only (never from the bytes' values), the map's types, gaps,
executable spans and structure checks (`map`), cutting a map into labelled pieces (`partition`)
and aligning two maps' top-level structures by identity when sizes differ (`structure`).
Does not own: parsing untrusted bytes (done only inside `reprover.compare.isolation`), labelling
byte runs (`reprover.compare.ledger`) or signatures (`reprover.compare.signatures`).
"""
