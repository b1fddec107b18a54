"""A built topology at run time: hosts, the Network, its configuration, impairments, migration."""
