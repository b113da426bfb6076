"""Copies the google.rpc protos taskq.v1 imports (status, code, error_details) out of the
googleapis-common-protos package installed in this virtualenv into DIR/google/rpc, for buf and
the Java build. They are never committed: Google's files come from the package that ships
them, at build time.

    .venv/bin/python tools/google-protos.py third_party
"""

from __future__ import annotations

import pathlib
import shutil
import sys

import google.rpc

FILES = ("status.proto", "code.proto", "error_details.proto")


def main() -> None:
    target = pathlib.Path(sys.argv[1]) / "google" / "rpc"
    target.mkdir(parents=True, exist_ok=True)
    source = pathlib.Path(next(iter(google.rpc.__path__)))
    for name in FILES:
        shutil.copyfile(source / name, target / name)


if __name__ == "__main__":
    main()
