"""The ``vochi-crm`` command line: a Typer + Rich view of the core's use-cases."""
