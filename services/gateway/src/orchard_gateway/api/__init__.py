"""The gateway's HTTP routes: OIP v2 and KServe v1, translated to upstream calls."""
