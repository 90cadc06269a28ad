"""Public document sets for the benchmarks, taken from PyPI source distributions as a new user
would get them (the registry is the one network the project uses); kept out of the repository."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "examples" / "docs"
DJANGO_VERSION = "5.2.19"  # the labelled questions in bench/ were written against this release
_CACHE = Path(tempfile.gettempdir()) / "threadbot-bench"


def django_docs() -> Path:
    """The `docs/` folder of the Django sdist, downloaded once into the temp folder."""
    folder = _CACHE / f"django-{DJANGO_VERSION}" / "docs"
    if folder.is_dir():
        return folder
    _CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"django=={DJANGO_VERSION}", "-d", str(_CACHE)],
        check=True,
    )  # fmt: skip
    with tarfile.open(_CACHE / f"django-{DJANGO_VERSION}.tar.gz") as archive:
        members = [m for m in archive.getmembers() if "/docs/" in m.name]
        archive.extractall(_CACHE, members=members, filter="data")
    return folder
