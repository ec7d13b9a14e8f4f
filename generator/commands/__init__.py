"""One engine per CLI command, above the build pipeline."""
