"""Worked solutions to the notebooks' exercises; see solutions/README.md."""
