"""Measured figures of a test run, kept in .build/reports/ and labelled with the machine."""
import os
import platform
import time


def machine():
    return "%s, %d cores, %s" % (platform.node(), os.cpu_count() or 0, platform.platform())


def write_report(directory, name, text):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with open(path, "a") as handle:
        if handle.tell() == 0:
            handle.write("# measured on %s (figures, not goals: bin/bench judges speed)\n" % machine())
        handle.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), text))
