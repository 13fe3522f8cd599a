"""Fetch and unpack a Debian package without installing it (``apt-get download`` + ``dpkg-deb``).

Only the package's files are extracted into a private directory; nothing is installed system-wide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import AssetError


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def download_deb(package: str, dest: Path) -> Path:
    """Download ``package``'s .deb into ``dest`` (runs ``apt-get update`` once if needed).

    ``$GQA_RETROFIT_DEB_DIR`` may hold pre-downloaded .deb files (offline machines).

    Raises:
        AssetError: apt-get is missing or cannot fetch the package; says what to do by hand.
    """
    local = os.environ.get("GQA_RETROFIT_DEB_DIR")
    if local:
        found = sorted(Path(local).glob(f"{package}_*.deb"))
        if found:
            return found[-1]
    if shutil.which("apt-get") is None:
        raise AssetError(
            f"apt-get not found: download the Debian package {package!r} (.deb) by hand and set "
            "GQA_RETROFIT_DEB_DIR to the folder that holds it"
        )
    dest.mkdir(parents=True, exist_ok=True)
    result = _run(["apt-get", "download", package], dest)
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"], dest)
        result = _run(["apt-get", "download", package], dest)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(
            f"cannot download Debian package {package!r} ({reason}); run 'apt-get update' as "
            f"root, or put its .deb in a folder named by GQA_RETROFIT_DEB_DIR"
        )
    return debs[-1]


def unpack_deb(package: str) -> Path:
    """Download and extract ``package`` into a temporary directory; returns that directory.

    The caller removes it (``shutil.rmtree``) when done.
    """
    work = Path(tempfile.mkdtemp(prefix=f"gqa-retrofit-{package}-"))
    try:
        deb = download_deb(package, work / "deb")
        if shutil.which("dpkg-deb") is None:
            raise AssetError(f"dpkg-deb not found: cannot unpack {deb.name}; install dpkg")
        root = work / "root"
        result = _run(["dpkg-deb", "-x", str(deb), str(root)], work)
        if result.returncode != 0:
            raise AssetError(f"cannot unpack {deb.name}: {result.stderr.strip()}")
        return root
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
