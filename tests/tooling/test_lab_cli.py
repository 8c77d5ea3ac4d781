"""bin/lab refuses bad input with one clear line and exit code 2, before touching anything."""
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from collection_path import REPO

LAB = str(REPO / "bin" / "lab")


def run(*args):
    return subprocess.run([LAB, *args], capture_output=True, text=True, timeout=30, check=False)


def test_unknown_subcommand():
    result = run("frobnicate")
    assert result.returncode == 2 and "invalid choice: 'frobnicate'" in result.stderr


@pytest.mark.parametrize("count", ["1", "0", "10", "two"])
def test_node_count_out_of_range(count):
    result = run("up", "--nodes", count)
    assert result.returncode == 2 and "--nodes" in result.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_non_root_is_refused():
    # A copy nobody can read, run by the system Python (root's pyenv is not readable by nobody).
    folder = Path(tempfile.mkdtemp(prefix="pgha-lab-cli-"))
    folder.chmod(0o755)
    script = folder / "lab"
    script.write_text((REPO / "bin" / "lab").read_text())
    script.chmod(0o755)
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                             str(script), "status"], capture_output=True, text=True, timeout=30, check=False)
    shutil.rmtree(folder)
    assert result.returncode == 2
    assert result.stderr.strip() == "lab: error: the lab needs root (podman networks, debootstrap): run it as root or with sudo"


def test_exec_needs_a_command():
    result = run("exec", "pg1")
    assert result.returncode == 2 and "exec needs a command" in result.stderr
