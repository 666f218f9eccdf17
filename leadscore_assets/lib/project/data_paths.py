"""Paths a project YAML names (source files, the feedback folder) stay inside the data folder.

A YAML is written by whoever sets up a source; it must not be a way to load `/etc/passwd` into
`raw_contacts` or scan `../../..` for outcome files. Checked twice: lexically when the YAML
loads (`relative_path`: no absolute path, no `..` that climbs out; the error names file and
line), and for real where the data folder is known (`inside_data_dir`: the path resolved,
symlinks followed, must lie under the resolved data folder).
"""

from __future__ import annotations

import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath


class DataPathError(ValueError):
    """A path from the project YAML that points outside the data folder. `key` locates it in the
    YAML (e.g. ("source", "tables", "usage", "path")) so the loader can name the file and line."""

    def __init__(self, message: str, key: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key


def key_name(key: tuple[str, ...]) -> str:
    return ".".join(key)


def relative_path(value: str, key: tuple[str, ...]) -> str:
    """`value` unchanged when it is relative and does not climb out of the folder it is relative to."""
    where = key_name(key)
    if not value or not value.strip():
        raise DataPathError(f"{where} is empty: name a path relative to the data folder", key)
    if "\x00" in value:
        raise DataPathError(f"{where} {value!r} contains a NUL byte", key)
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor or value.startswith("~"):
        raise DataPathError(f"{where} {value!r} is an absolute path: paths in a project YAML are relative "
                            "to the data folder and stay inside it", key)
    normal = posixpath.normpath(value.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        raise DataPathError(f"{where} {value!r} climbs out of the data folder ('..'): paths in a project YAML "
                            "are relative to the data folder and stay inside it", key)
    return value


def inside_data_dir(data_dir: str | Path, value: str, key: tuple[str, ...]) -> Path:
    """`data_dir / value`, once its resolved form (symlinks followed) is known to lie inside the data
    folder; refused otherwise, naming the YAML key, the path and the data folder."""
    root = Path(data_dir).resolve()
    relative_path(value, key)
    resolved = (root / value).resolve()
    if not resolved.is_relative_to(root):
        raise DataPathError(f"{key_name(key)} {value!r} resolves to {resolved}, outside the data folder {root} "
                            "(a symlink pointing out of it?): only files inside the data folder are read", key)
    return Path(data_dir) / value
