"""Reporting: the result record (record), its files (atomic, files, markdown), the history CSV (history),
the regression gate (gate), charts (plots), the end-of-run summary (summary) and the subcommands that work
on files of earlier runs (subcommands). Nothing here runs a model or imports torch."""
