"""Turning text from CSV files and command lines back into numbers."""


def number_or_text(text: str):
    """int if it reads as one, else float if it reads as one, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
