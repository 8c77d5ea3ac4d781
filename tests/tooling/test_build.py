"""The built collection tarball holds only collection content."""
import subprocess
import tarfile

from collection_path import REPO

ALLOWED_DIRS = ("plugins/", "roles/", "playbooks/", "meta/", "docs/", "changelogs/")
ALLOWED_FILES = ("README.md", "LICENSE", "galaxy.yml", "MANIFEST.json", "FILES.json")


def test_the_tarball_holds_only_collection_content(tmp_path):
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    tarball = next(tmp_path.glob("pgha-cluster-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        names = [member.name for member in archive.getmembers() if not member.isdir()]
    outside = [name for name in names if not name.startswith(ALLOWED_DIRS) and name not in ALLOWED_FILES]
    assert outside == []
    assert "LICENSE" in names and "roles/pgpool/files/pgha_hook.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_execution_environment_definition_builds_a_context(tmp_path):
    result = subprocess.run(["ansible-builder", "create", "-f", str(REPO / "meta" / "execution-environment.yml"),
                             "-c", str(tmp_path / "context")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "context" / "Containerfile").exists()
