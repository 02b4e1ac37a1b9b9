"""Reading the PEM files the settings name (TLS certificates, keys, CA bundles), bounded.

Shared by the HTTPS listeners (``gateway``) and the Kafka client checks: the same limit and the
same one-line reasons for a file that cannot be used.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PEM_FILE_MAX_BYTES", "read_pem_file", "refuse_passphrase"]

# No PEM file of a service is this large; the bound keeps a wrong path (a device) harmless.
PEM_FILE_MAX_BYTES = 1024 * 1024


def read_pem_file(path: str) -> bytes | str:
    """The bytes of the file at ``path`` (``~`` expanded), or why it cannot be used."""
    try:
        with Path(path).expanduser().open("rb") as stream:
            data = stream.read(PEM_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        return f"the file {path} does not exist"
    except IsADirectoryError:
        return f"{path} is a folder, not a file"
    except OSError as exc:
        return f"cannot read {path}: {(exc.strerror or type(exc).__name__).lower()}"
    if len(data) > PEM_FILE_MAX_BYTES:
        return f"{path} is larger than 1 MB, not a PEM file"
    return data


def refuse_passphrase() -> str:
    """The ``password`` callback of ``load_cert_chain`` for a key configured without one:
    OpenSSL would otherwise ask on the terminal."""
    raise ValueError("the private key is encrypted")
