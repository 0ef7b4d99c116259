"""The error every method of :mod:`helpers.interpret` raises for what it cannot explain."""


class InterpretError(ValueError):
    """A model or input the method cannot explain as given; the message says what to do."""
