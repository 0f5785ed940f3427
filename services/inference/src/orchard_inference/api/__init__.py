"""HTTP routes: OIP v2, its repository extension, and KServe v1."""
