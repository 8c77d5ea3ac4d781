"""Tests of the project's tooling (bin/lab, bin/bench's report, the collection tarball):
not collection content, so they live outside tests/unit, which ansible-test units runs."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "tests"))
import collection_path  # noqa: E402  (the path above first)

collection_path.install()
