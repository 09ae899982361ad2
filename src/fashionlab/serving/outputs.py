"""The folders `fashionlab predict` writes images into: the model inputs (--show-input DIR) and the attribution
cards (--explain DIR), one PNG per input image, named after it.

Neither replaces a file without --force, nor one of the input images even with it. Every name is checked before
the first image is read, so a refusal costs nothing and leaves nothing half-written; a replaced file is written
beside its target and renamed over it, so it is only ever replaced by a complete one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError


def output_names(files: list[Path]) -> list[str]:
    """One PNG name per input file: its stem, with "_" appended while taken (boot.jpg and boot.png, or the same name
    in two folders: both kept)."""
    names, taken = [], set()
    for f in files:
        stem = Path(f).stem
        while stem in taken:
            stem += "_"
        taken.add(stem)
        names.append(f"{stem}.png")
    return names


def make_folder(folder: str | Path, option: str) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{option} {folder}: cannot create that folder ({err.strerror})") from None
    return folder


def check_output_folder(folder: str | Path, option: str, names: list[str], inputs: list[Path], force: bool) -> None:
    """Refuse, before anything is written, names that are input images, folders, or (without `force`) existing
    files; then create the folder. `option` names the flag in the messages (--explain, --show-input)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder} is a file, not a folder; choose a folder for the images")
    sources = {Path(f).resolve() for f in inputs}
    existing = []
    for name in names:
        target = folder / name
        if target.resolve() in sources:
            raise ConfigError(f"{option} {folder}: its {name} would replace the input image {target}; choose "
                              "another folder")
        if target.is_dir():
            raise ConfigError(f"{option} {folder}: {target} is a folder; choose another folder for the images")
        if target.exists() or target.is_symlink():
            existing.append(target)
    if existing and not force:
        which = f"{existing[0]} already exists" if len(existing) == 1 else \
            f"{len(existing)} of its files already exist ({existing[0]}, ...)"
        raise ConfigError(f"{option} {folder}: {which}; pass --force to replace them, or choose another folder")
    make_folder(folder, option)


def write_new(path: Path, data: bytes, force: bool, option: str = "--explain") -> None:
    """Write `data` to `path`. Without `force` the file is created exclusively (a file that appeared since the
    check is never replaced; a write that fails removes the new file); with it, written beside the target and
    renamed over it, so the old file is only ever replaced by a complete one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    target = tmp if force else path
    try:
        with open(target, "wb" if force else "xb") as fh:
            try:
                fh.write(data)
            except OSError:
                target.unlink(missing_ok=True)
                raise
        if force:
            tmp.replace(path)
    except FileExistsError:
        raise ConfigError(f"{path} appeared while the images were classified; pass --force to replace it, or "
                          "choose another folder") from None
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path} ({err.strerror}); choose another {option} folder") from None
