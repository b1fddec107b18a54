"""OS glue: subprocesses, waits, namespaced netlink, signals, cleanup sweeps, prerequisite checks."""
