"""Reports of a CI run: results.json (the source), JUnit, patchwork checks, Markdown, HTML."""
