"""Put pgha.cluster on sys.path for the unit and simulation tests: the copy bin/test
installed in .build/collections, or, straight from a checkout, a temporary
ansible_collections/pgha/cluster symlink to this repository."""
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Captured tool output the parser tests read.
FIXTURES = REPO / "tests" / "unit" / "fixtures"


def collection_root():
    built = Path(os.environ.get("PGHA_BUILD_DIR", REPO / ".build")) / "collections"
    if os.environ.get("PGHA_TEST_FROM_BUILD") and (built / "ansible_collections/pgha/cluster").is_dir():
        return built
    root = Path(tempfile.mkdtemp(prefix="pgha-unit-"))
    (root / "ansible_collections" / "pgha").mkdir(parents=True)
    (root / "ansible_collections" / "pgha" / "cluster").symlink_to(REPO)
    return root


def install():
    root = str(collection_root())
    if root not in sys.path:
        sys.path.insert(0, root)
