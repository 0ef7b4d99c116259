"""What the catalog raises: bad input, and a file that cannot be opened or written now.

Every error is a :class:`CatalogError` (a ``ValueError``), so a caller that only wants
"the catalog refused" catches one class; the :class:`CatalogUnavailable` family says what
to do about the file itself, and a labeling widget catches it to keep its place.
"""


class CatalogError(ValueError):
    """Bad input to the catalog; the catalog is left unchanged."""


class SchemaTooNewError(CatalogError):
    """The catalog file was written by a newer version of helpers."""


class CatalogUnavailable(CatalogError):
    """The catalog cannot be opened or written now; nothing was changed.

    The message says what to do. A labeling widget catches this (and its subclasses)
    to show "could not save: ..." and keep its place: the action can simply be redone.
    """


class CatalogLocationError(CatalogUnavailable):
    """The catalog's path is not a folder that can hold a catalog."""


class CatalogReadOnly(CatalogUnavailable):
    """The catalog's folder or file is not writable: it is open for reading only."""


class CatalogBusy(CatalogUnavailable):
    """Another process held the catalog's write lock for longer than ``busy_timeout``."""


class CatalogCorrupt(CatalogUnavailable):
    """The catalog file is damaged or is not an SQLite database; it was left as it is."""


class CatalogReadOnlyWarning(UserWarning):
    """A catalog opened for reading only, because its folder or file is not writable."""
