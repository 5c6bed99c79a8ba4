"""CLI command modules: each is a thin layer of Typer options over library calls."""
