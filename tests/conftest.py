"""Shared by every test folder. pytest puts this file's folder (tests/) on sys.path, so test
modules anywhere below import the shared builders as `from builders import ...` and the figure
checks as `from figure_checks import ...`."""
