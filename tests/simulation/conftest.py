"""The simulator imports the collection the way the unit tests do."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import collection_path  # noqa: E402  (the path above first)

collection_path.install()
