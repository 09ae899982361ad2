"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class FashionlabError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""
    exit_code = 1


class ConfigError(FashionlabError):
    """A setting that cannot work: rejected before anything runs."""
    exit_code = 2


class DataError(FashionlabError):
    """A missing, truncated or corrupted data file."""


class RunError(FashionlabError):
    """A run directory that is missing, unfinished, or would be overwritten."""
    exit_code = 2


class TrainingDiverged(FashionlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunBusy(FashionlabError):
    """The run directory is locked by another process that is training it."""


class DamagedRun(RunError):
    """A file of a run directory that cannot be read (not JSON, not text, or settings this version lacks)."""
    exit_code = 1

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} cannot be read: {reason}")
