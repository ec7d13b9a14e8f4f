"""One engine per command, above the build pipeline: they call into it, it never imports them."""
