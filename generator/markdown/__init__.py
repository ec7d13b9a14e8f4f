"""The only code that knows markdown-it tokens: Markdown → HTML with job placeholders."""

from .render import JOB_TAG, fill_jobs, parse_markdown, slugify_heading

__all__ = ["JOB_TAG", "fill_jobs", "parse_markdown", "slugify_heading"]
