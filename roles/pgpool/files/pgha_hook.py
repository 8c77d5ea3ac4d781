"""pgpool-II hook entry point installed by pgha (failover_command, follow_primary_command).

This first version only records the event in the journal and changes nothing: pgpool
marks the failed backend down and an operator (or pgha.cluster.failover) decides on
facts read from the servers. It never promotes, restarts or deletes anything.
"""
import sys
import syslog

FIELDS = ("failed_node_id", "failed_host", "failed_port", "failed_datadir", "new_main_id",
          "new_main_host", "old_main_id", "old_primary_id", "new_main_port", "new_main_datadir",
          "old_primary_host", "old_primary_port")


def main(argv):
    event = argv[1] if len(argv) > 1 else "unknown"
    details = " ".join("%s=%s" % pair for pair in zip(FIELDS, argv[2:]))
    syslog.openlog("pgha-hook")
    syslog.syslog(syslog.LOG_WARNING, "pgpool %s event: %s; no automatic action (run pgha.cluster.failover)"
                  % (event, details))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
