"""Programs that run inside the hosts (by file or module name); they import nothing from the harness."""
