"""User-facing errors: every failure a user can cause or fix ends as one of these, with one clear line."""


class CelebLookError(Exception):
    """A problem with the user's input, files or setup; the message says what and what to do."""


class ModelMissingError(CelebLookError):
    """A model file is absent or fails its checksum."""


class NoFaceError(CelebLookError):
    """No usable face was found in an image."""


class BadInputError(CelebLookError):
    """An input file or value cannot be used (unreadable, corrupt, wrong shape)."""
