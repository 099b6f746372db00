"""The isolated LIEF worker: untrusted binaries are parsed only in a limited child process.

Owns: the fork server and its memory, CPU and time limits (`worker`) and the child's loop that
runs LIEF and the region builders (`parse_child`).
Does not own: what a region map contains (`reprover.compare.regions`).
"""
