"""One engine per CLI command, above the build pipeline: they call into it, it never imports them."""
