"""Browser tests: a real ``jupyter lab`` driven by Playwright in Debian's chromium."""
