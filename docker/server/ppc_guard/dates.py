"""Dates as the index writes them: its records' (UTC, ISO 8601 to the second) and PEP
700's upload times (UTC, microseconds, a Z). Plain functions: the ppc-tasks repo uses them."""
import datetime


def stamp(moment):
    """A date as the registry and the API tokens keep it."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def upload_time(moment):
    """PEP 700's form: UTC, ISO 8601, with a Z."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
