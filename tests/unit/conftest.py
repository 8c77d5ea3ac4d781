"""Unit tests import the collection from .build/collections (bin/test installs it) or,
when run straight from a checkout, through a temporary ansible_collections symlink."""
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _collection_root():
    built = Path(os.environ.get("PGHA_BUILD_DIR", REPO / ".build")) / "collections"
    if os.environ.get("PGHA_TEST_FROM_BUILD") and (built / "ansible_collections/pgha/cluster").is_dir():
        return built
    root = Path(tempfile.mkdtemp(prefix="pgha-unit-"))
    (root / "ansible_collections" / "pgha").mkdir(parents=True)
    (root / "ansible_collections" / "pgha" / "cluster").symlink_to(REPO)
    return root


sys.path.insert(0, str(_collection_root()))
