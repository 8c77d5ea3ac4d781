"""Unit tests import the collection from .build/collections (bin/test installs it) or,
when run straight from a checkout, through a temporary ansible_collections symlink
(tests/collection_path.py, shared with the simulation tests)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "tests"))
import collection_path  # noqa: E402  (the path above first)

collection_path.install()
