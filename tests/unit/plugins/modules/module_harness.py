"""Runs a module's main() with given arguments and returns its result: what the module tests share."""
import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

SYSID = "7441000000000000001"


class Done(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


def run(monkeypatch, module, args):
    """The module's result dict (failed=True when it failed)."""
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    if hasattr(basic, "_ANSIBLE_PROFILE"):   # ansible-core 2.19 and newer
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")

    def exit_json(self, **result):
        raise Done(dict(result, failed=False))

    def fail_json(self, msg, **result):
        raise Done(dict(result, failed=True, msg=msg))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with pytest.raises(Done) as done:
        module.main()
    return done.value.result


class FakeConn:
    def close(self):
        pass


def node(role="standby", receiver=None, sysid=SYSID, timeline=1):
    return {"reachable": True, "role": role, "in_recovery": role == "standby", "timeline": timeline,
            "system_identifier": sysid, "wal_receiver": receiver, "received_lsn_bytes": 100, "replication": []}
