"""A guest with a stock Debian kernel (kernel WireGuard, netem) under virtme-ng and qemu: `comps-harness vm`, --vm."""
