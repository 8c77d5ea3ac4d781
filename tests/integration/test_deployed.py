"""The deployed lab passes the checks every molecule scenario runs (molecule/shared/verify.yml:
pgpool's view against the servers, streaming, pcp with ~/.pcppass, a write through the
virtual IP read on every node, a wrong password refused). The lab is the bookworm, Podman,
pgpool-mode cluster: no molecule scenario deploys it a second time."""
from conftest import REPO, outcome


def test_the_lab_passes_the_molecule_verify_checks(ansible):
    result = ansible.playbook(str(REPO / "molecule" / "shared" / "verify.yml"))
    assert result.returncode == 0, outcome(result)
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("failed=0" in line for line in recap), "\n".join(recap)
