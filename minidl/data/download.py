"""Fetching dataset archives: download with a progress bar, verify checksums, explain failures.

An archive is downloaded to a temporary file in the target folder and renamed to its
final name only once its checksum matched, so a half-finished or corrupt download never
sits under the real name.  When the archive is missing and cannot be downloaded (no
network, ``download=False``), ``DatasetNotFoundError`` says which file to fetch, from
where, and the folder to put it in.
"""
import hashlib
import os
import tempfile
import urllib.request

from tqdm.auto import tqdm

CHUNK_BYTES = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing and could not be downloaded.

    ``missing_file``, ``url``, ``folder`` and ``reason`` say which file, from where, which folder and
    why, so a command-line tool can word its own message (naming its option instead of ``root=``).
    """

    def __init__(self, message, missing_file=None, url=None, folder=None, reason=None):
        super().__init__(message)
        self.missing_file, self.url, self.folder, self.reason = missing_file, url, folder, reason


class ChecksumError(RuntimeError):
    """A file's checksum differs from the published one."""


def file_digest(path, algorithm="md5", opener=open):
    """Hex digest of a file's bytes (``opener=gzip.open`` hashes the decompressed content)."""
    digest = hashlib.new(algorithm)
    with opener(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path, md5=None, sha256=None, opener=open, remove_if_wrong=False):
    """Raises ``ChecksumError`` unless the file's md5/sha256 equal the expected ones.

    ``remove_if_wrong`` deletes the file first (for files this module downloaded).
    """
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm, opener)
        if actual != expected.lower():
            if remove_if_wrong:
                os.remove(path)
            what = "the decompressed content of " if opener is not open else ""
            fate = " The file was removed." if remove_if_wrong else (
                " Delete it (it is corrupt, truncated or a different version) and fetch it again.")
            raise ChecksumError(f"{algorithm} checksum mismatch for {what}{path}: expected {expected}, "
                                f"got {actual}.{fate}")


def _not_found(filename, url, root, reason):
    root = os.path.abspath(root)
    return DatasetNotFoundError(
        f"{filename!r} is not in {root!r} and {reason}. Download it yourself from {url} and put it in "
        f"{root}/ (keep the name {filename}), or pass root= pointing at the folder that holds it.",
        missing_file=filename, url=url, folder=root, reason=reason)


def download_url(url, root, filename, md5=None, sha256=None, progress=True, timeout=60):
    """Downloads ``url`` to ``root/filename`` with a tqdm bar and verifies its checksum.

    Returns the path.  Raises ``DatasetNotFoundError`` when the download fails and
    ``ChecksumError`` (after removing the bad file) when the content is wrong.
    """
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, filename)
    handle, temporary = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=root)
    try:
        with os.fdopen(handle, "wb") as file:
            _copy_with_progress(url, file, filename, progress, timeout)
        verify_checksum(temporary, md5=md5, sha256=sha256, remove_if_wrong=True)
        os.replace(temporary, path)
    except OSError as error:  # URLError, HTTPError, timeouts and socket errors are OSErrors
        raise _not_found(filename, url, root, f"downloading it failed ({error})") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _copy_with_progress(url, file, filename, progress, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {filename}",
                  disable=not progress) as bar:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                file.write(chunk)
                bar.update(len(chunk))


def fetch(url, root, filename, md5=None, sha256=None, download=True):
    """Path of ``root/filename``: verified if it is there, else downloaded (when allowed) and verified.

    A file already present with a wrong checksum raises ``ChecksumError`` and is left
    alone (it is the user's file); a missing file that cannot be downloaded raises
    ``DatasetNotFoundError`` naming the file, the URL and the folder.
    """
    path = os.path.join(root, filename)
    if os.path.exists(path):
        verify_checksum(path, md5=md5, sha256=sha256)
        return path
    if not download:
        raise _not_found(filename, url, root, "download=False")
    return download_url(url, root, filename, md5=md5, sha256=sha256)
