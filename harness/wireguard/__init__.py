"""WireGuard helpers: keys, configuration rendering, the UAPI socket, `wg show` parsers."""
