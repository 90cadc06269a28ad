"""The two-column table every benchmark prints its figures in."""

from __future__ import annotations


def print_table(heading: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in [heading, *rows])
    print(f"{heading[0].ljust(width)} | {heading[1]}")
    print(f"{'-' * width}-|-{'-' * len(heading[1])}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
