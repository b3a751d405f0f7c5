"""Errors of durable jobs (:mod:`clipatlas.jobs`) and the web server (:mod:`clipatlas.web`)::

ClipatlasError
├── JobError                        a durable job cannot be found or moved as asked
│   ├── JobNotFoundError            no job by that id (job_id)
│   └── JobStateError               the job's status forbids the action (job_id, status, action)
├── OperationCancelled              raised inside a long operation when its job is cancelled
└── ConfigError
    └── WebConfigError              the web server refuses an unsafe configuration (no token)
"""

from __future__ import annotations

from clipatlas.errors.base import ClipatlasError, ConfigError

__all__ = [
    "JobError",
    "JobNotFoundError",
    "JobStateError",
    "OperationCancelled",
    "WebConfigError",
]


class JobError(ClipatlasError):
    """A durable job cannot be found or moved as asked."""


class JobNotFoundError(JobError):
    def __init__(self, job_id: int, where: str = "") -> None:
        self.job_id, self.where = job_id, where
        super().__init__(f"no job {job_id}" + (f" in {where}" if where else ""))


class JobStateError(JobError):
    def __init__(self, job_id: int, status: str, action: str) -> None:
        self.job_id, self.status, self.action = job_id, status, action
        super().__init__(f"cannot {action} job {job_id}: it is {status}")


class OperationCancelled(ClipatlasError):
    """The job running this operation was cancelled: committed work stays, resume does the rest."""

    def __init__(self, what: str = "operation") -> None:
        self.what = what
        super().__init__(f"{what} cancelled")


class WebConfigError(ConfigError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)
