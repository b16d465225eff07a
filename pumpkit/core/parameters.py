"""SET_PARAMETER and the filter procedures: which names exist, which values they take.

One table of data per procedure; validation raises ``InvalidArgumentError`` naming the valid
names or values, so a mistake is refused while the job is DEFINING, never found mid-job.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import msgspec

from pumpkit.errors import InvalidArgumentError

__all__ = (
    "DATA_FILTERS",
    "METADATA_FILTERS",
    "METADATA_REMAPS",
    "METADATA_TRANSFORMS",
    "PARAMETERS",
    "ParameterSpec",
    "check_filter_name",
    "parse_size",
    "validate_parameter",
)


class ParameterSpec(msgspec.Struct, frozen=True):
    """A SET_PARAMETER name: its allowed values (strings), integer range, or free text."""

    default: str | int
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    operations: tuple[str, ...] = ("EXPORT", "IMPORT")
    text: bool = False


_LOAD = ("LOAD",)
_ALL = ("EXPORT", "IMPORT", "LOAD")

PARAMETERS: Mapping[str, ParameterSpec] = MappingProxyType(
    {
        "COMPRESSION": ParameterSpec(
            "ALL", choices=("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"), operations=("EXPORT",)
        ),
        "COMPRESSION_LEVEL": ParameterSpec(3, minimum=1, maximum=22, operations=("EXPORT",)),
        "KEEP_MASTER": ParameterSpec(0, minimum=0, maximum=1, operations=_ALL),
        # Import: check every byte of the whole set (``verify``) before the target changes,
        # so a damaged set changes nothing (1, the default), or trust it (0).
        "VERIFY": ParameterSpec(1, minimum=0, maximum=1, operations=("IMPORT",)),
        # How many dead worker processes one run of an export replaces (its granule redone)
        # before the job stops with the reason.
        "WORKER_REPLACEMENTS": ParameterSpec(3, minimum=0, maximum=1000, operations=("EXPORT",)),
        # What to move (both directions) and what to do with tables that exist (import).
        "CONTENT": ParameterSpec("ALL", choices=("ALL", "DATA_ONLY", "METADATA_ONLY")),
        "TABLE_EXISTS_ACTION": ParameterSpec(
            "SKIP", choices=("SKIP", "APPEND", "TRUNCATE", "REPLACE"), operations=("IMPORT",)
        ),
        "ESTIMATE": ParameterSpec(
            "STATISTICS", choices=("BLOCKS", "STATISTICS"), operations=("EXPORT",)
        ),
        "ESTIMATE_ONLY": ParameterSpec(0, minimum=0, maximum=1, operations=("EXPORT",)),
        # Password encryption (AES-256-GCM per frame, scrypt key). The password itself is
        # never stored: it is given again on a restart, as Oracle asks.
        "ENCRYPTION": ParameterSpec(
            "ALL", choices=("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"), operations=("EXPORT",)
        ),
        "ENCRYPTION_PASSWORD": ParameterSpec("", text=True),
        # Signed sets (format 1.3): the path of an Ed25519 PEM key; the key is never stored.
        "SIGN_KEY": ParameterSpec("", text=True, operations=("EXPORT",)),
        "VERIFY_KEY": ParameterSpec("", text=True, operations=("IMPORT",)),
        # An export's output module (TPump's receiving side, codes 6 and 7).
        # Import into PostgreSQL: the role the dump's statements and rows run as (SET ROLE),
        # and whether the archive's owners and grants are left out (pg_restore's options).
        "ROLE": ParameterSpec("", text=True, operations=("IMPORT",)),
        "NO_OWNER": ParameterSpec(0, minimum=0, maximum=1, operations=("IMPORT",)),
        "NO_PRIVILEGES": ParameterSpec(0, minimum=0, maximum=1, operations=("IMPORT",)),
        "OUTMOD": ParameterSpec("", text=True, operations=("EXPORT",)),
        "OUTMOD_PARMS": ParameterSpec("", text=True, operations=("EXPORT",)),
        # LOAD jobs (TPump): where the records come from and how they become rows.
        "TARGET_TABLE": ParameterSpec("", text=True, operations=_LOAD),
        "INMOD": ParameterSpec("", text=True, operations=_LOAD),
        "INMOD_PARMS": ParameterSpec("", text=True, operations=_LOAD),
        "LAYOUT": ParameterSpec("VARTEXT", text=True, operations=_LOAD),
        "DELIMITER": ParameterSpec("|", text=True, operations=_LOAD),
        "COLUMNS": ParameterSpec("", text=True, operations=_LOAD),
        "LOAD_MODE": ParameterSpec("INSERT", choices=("INSERT", "UPSERT"), operations=_LOAD),
        "UPSERT_KEY": ParameterSpec("", text=True, operations=_LOAD),
        "CHECKPOINT": ParameterSpec(10_000, minimum=1, maximum=10**9, operations=_LOAD),
        "CHECKPOINT_SECONDS": ParameterSpec(0, minimum=0, maximum=86_400, operations=_LOAD),
        "ERRLIMIT": ParameterSpec(0, minimum=0, maximum=10**9, operations=_LOAD),
    }
)

DATA_FILTERS = ("INCLUDE_ROWS", "QUERY", "SAMPLE", "SUBQUERY")
METADATA_FILTERS = (
    "EXCLUDE_NAME_EXPR",
    "EXCLUDE_NAME_LIST",
    "EXCLUDE_PATH_EXPR",
    "EXCLUDE_PATH_LIST",
    "INCLUDE_PATH_EXPR",
    "INCLUDE_PATH_LIST",
    "NAME_EXPR",
    "NAME_LIST",
    "SCHEMA_EXPR",
    "SCHEMA_LIST",
)
METADATA_REMAPS = ("REMAP_DATA", "REMAP_SCHEMA", "REMAP_TABLE")
#: METADATA_TRANSFORM names (values 0 or 1). OMIT_STORAGE leaves out storage clauses (SQLite:
#: WITHOUT ROWID and STRICT); RENAME_INDEXES renames the indexes and triggers of a remapped
#: table along with it (default on); RENAME_CONSTRAINTS does so for named constraints.
METADATA_TRANSFORMS = ("OMIT_STORAGE", "RENAME_CONSTRAINTS", "RENAME_INDEXES")


def validate_parameter(name: str, value: object, *, operation: str) -> str | int:
    """The normalised value of SET_PARAMETER ``name``; raises ``InvalidArgumentError``."""
    key = name.upper()
    spec = PARAMETERS.get(key)
    if spec is None:
        raise InvalidArgumentError(
            f"unknown parameter {name!r}; valid parameters: {', '.join(sorted(PARAMETERS))}"
        )
    if operation not in spec.operations:
        raise InvalidArgumentError(
            f"parameter {key} is not valid for an {operation} job (only {', '.join(spec.operations)})"
        )
    if spec.text:
        return str(value)
    if spec.choices:
        text = str(value).upper()
        if text not in spec.choices:
            raise InvalidArgumentError(
                f"parameter {key} cannot be {value!r}; allowed values: {', '.join(spec.choices)}"
            )
        return text
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else int(value)
    except ValueError:
        raise InvalidArgumentError(
            f"parameter {key} takes an integer from {spec.minimum} to {spec.maximum}, not {value!r}"
        ) from None
    if (spec.minimum is not None and number < spec.minimum) or (
        spec.maximum is not None and number > spec.maximum
    ):
        raise InvalidArgumentError(
            f"parameter {key} takes an integer from {spec.minimum} to {spec.maximum}, not {value!r}"
        )
    return number


def check_filter_name(procedure: str, name: str, valid: tuple[str, ...]) -> str:
    key = name.upper()
    if key not in valid:
        raise InvalidArgumentError(
            f"{procedure}: unknown name {name!r}; valid names: {', '.join(valid)}"
        )
    return key


_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
}


def parse_size(value: int | str) -> int:
    """A byte count from ``1048576``, ``"100MB"``, ``"2G"`` (binary units, as expdp's FILESIZE)."""
    if isinstance(value, int):
        number, unit = value, ""
    else:
        text = value.strip().upper()
        digits = text.rstrip("BKMGT")
        unit = text[len(digits) :]
        try:
            number = int(digits)
        except ValueError:
            raise InvalidArgumentError(
                f"size {value!r} is not a number with a unit (B, KB, MB, GB, TB)"
            ) from None
    if unit not in _UNITS or number <= 0:
        raise InvalidArgumentError(
            f"size {value!r} is not a positive number with a unit (B, KB, MB, GB, TB)"
        )
    return number * _UNITS[unit]
