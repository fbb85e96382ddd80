"""The project's own exception types. Jobs turn them into one clear line and a non-zero exit."""


class SentimentError(Exception):
    """Base class: a problem the user can fix (bad input, missing model, locked database)."""


class InputError(SentimentError):
    """The input file or its columns are not what the command was told to expect."""


class StoreError(SentimentError):
    """A DuckDB operation failed; the DuckDB exception is attached as __cause__."""


class ModelError(SentimentError):
    """A model could not be found, loaded or trained."""
