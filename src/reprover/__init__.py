"""reprover: prove that a released binary is what its source builds, and who did each step."""

__version__ = "0.1.0"
