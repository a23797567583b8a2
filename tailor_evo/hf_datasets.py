"""Hugging Face ``datasets`` as input and output, beside our JSONL and Parquet files.

Input (``--data`` of ``train sft`` and ``eval``): a directory written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or the id of a dataset already
in the local Hugging Face cache (``owner/name``; nothing is downloaded). Add
``:SPLIT`` to choose a split of a ``DatasetDict`` (``DIR:test``); without it, a single
split is used as it is, else the command's usual split (``train`` for training data,
``test`` for evaluation) when there is one.

Output: ``data warmstart --format datasets`` writes a ``DatasetDict`` directory, one
split per warm-start method, that ``datasets.load_from_disk`` reads.

``datasets`` is an optional extra (``pip install 'tailor-evo[datasets]'``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError("reading or writing Hugging Face datasets needs the datasets package: "
                         "pip install 'tailor-evo[datasets]'", field="data") from None
    return datasets


def split_source(source: str | os.PathLike) -> tuple[str, str | None]:
    """(path or id, split or None) from ``SOURCE[:SPLIT]``."""
    text = str(source)
    base, sep, split = text.rpartition(":")
    if sep and base and re.fullmatch(r"[\w.-]+", split) and not Path(text).exists():
        return base, split
    return text, None


def is_dataset_source(source: str | os.PathLike) -> bool:
    """True for a ``datasets`` directory or a dataset id; False for our data files."""
    base, _ = split_source(source)
    path = Path(base)
    if path.is_dir():
        return any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))
    return not path.exists() and path.suffix not in FILE_SUFFIXES and bool(_ID.match(base))


def load_rows(source: str | os.PathLike, default_split: str) -> list[dict]:
    """The rows of a ``datasets`` directory or cached dataset id, as dicts."""
    base, split = split_source(source)
    ds_lib = require_datasets()
    path = Path(base)
    try:
        data = ds_lib.load_from_disk(str(path)) if path.is_dir() else _load_cached(ds_lib, base)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for a missing or damaged dataset
        where = "directory" if path.is_dir() else "dataset id (looked up in the local Hugging Face cache only)"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot load this {where}: {first[:200]}", file=base) from None
    if isinstance(data, ds_lib.DatasetDict):
        names = list(data.keys())
        if split is None:
            split = names[0] if len(names) == 1 else (default_split if default_split in names else None)
        if split is None or split not in names:
            raise InputError(f"choose a split with {base}:SPLIT (splits: {', '.join(names)})", file=base)
        data = data[split]
    elif split is not None and split != getattr(data, "split", None):
        raise InputError(f"has no split {split!r} (it is a single dataset)", file=base)
    return data.to_list()


def _load_cached(ds_lib: Any, dataset_id: str) -> Any:
    """A dataset id from the local cache: the repository files in the hub cache (what
    ``huggingface-cli download --repo-type dataset`` and ``load_dataset`` leave there), else
    a dataset ``load_dataset`` prepared earlier."""
    from huggingface_hub import constants, snapshot_download

    try:
        local = snapshot_download(dataset_id, repo_type="dataset", local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the hub cache: ask datasets for a prepared copy, offline
        saved = ds_lib.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
        ds_lib.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
        try:
            return ds_lib.load_dataset(dataset_id)
        finally:
            ds_lib.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
    return ds_lib.load_dataset(local)


def split_name(name: str) -> str:
    """A valid split name (``datasets`` allows word characters and dots): ``rule-based`` -> ``rule_based``."""
    return re.sub(r"[^\w.]", "_", name)


def write_dataset_dict(out_dir: str | os.PathLike, splits: dict[str, list[dict]]) -> Path:
    """A ``DatasetDict`` directory with one split per entry (written beside, then moved into place)."""
    import shutil

    ds_lib = require_datasets()
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    named = {split_name(name): ds_lib.Dataset.from_list(rows) for name, rows in splits.items()}
    ds_lib.DatasetDict(named).save_to_disk(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
