"""`taskq backup` (online: the running server writes a consistent copy of its RocksDB database)
and `taskq restore` (offline: a copy made the data directory of a stopped server again).

PostgreSQL deployments back up with pg_dump or point-in-time recovery instead (the server
answers FAILED_PRECONDITION, BACKUP_NOT_SUPPORTED). docs/operations.md has the procedure.
"""

from __future__ import annotations

import argparse
import os
import sys

from taskq.cli import connection, output
from taskq.client import Client


def add_parsers(subparsers) -> None:
    backup = subparsers.add_parser(
        "backup", parents=[connection.common_options()], help="copy a running server's database",
        description="Have a running server write a consistent copy of its RocksDB database into DEST, a new "
                    "directory on the server's machine (hard links where DEST is on the same filesystem). "
                    "The server keeps serving meanwhile. Restore it with `taskq restore`.",
    )
    backup.add_argument("destination", metavar="DEST",
                        help="a directory that does not exist yet; relative paths are made absolute here, so give "
                             "an absolute one when the server runs on another machine")
    backup.set_defaults(run=connection.command(_backup))

    restore = subparsers.add_parser(
        "restore", help="make a backup the data directory of a stopped server",
        description="Copy a backup made by `taskq backup` into a data directory, checking that this taskq can open "
                    "it. Stop the server first. A directory that holds anything is moved aside with --replace "
                    "(to DIR.before-restore-TIME), never deleted.",
    )
    restore.add_argument("backup", metavar="BACKUP", help="the directory `taskq backup` wrote")
    restore.add_argument("--data-dir", required=True, help="the data directory to restore into (the server's --data-dir)")
    restore.add_argument("--replace", action="store_true",
                         help="move a non-empty data directory aside instead of refusing")
    restore.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    restore.set_defaults(run=_restore)


def _backup(client: Client, arguments: argparse.Namespace) -> None:
    response = client.backup(os.path.abspath(arguments.destination))
    if arguments.json:
        output.print_json(response)
        return
    print(f"backed up to {response.destination}: {response.file_count} files, "
          f"{response.size_bytes / 2**20:.1f} MiB, in {response.duration_ms / 1000:.2f}s")


def _restore(arguments: argparse.Namespace) -> int:
    # Imported here: the client-only commands must not need RocksDB.
    from taskq.store.rocksdb_restore import RestoreError, restore

    try:
        restored = restore(arguments.backup, arguments.data_dir, replace=arguments.replace)
    except (RestoreError, OSError) as error:
        print(f"taskq restore: {error}", file=sys.stderr)
        return 1
    if arguments.json:
        output.print_json({"data_dir": restored.data_dir, "moved_aside": restored.moved_aside,
                           "size_bytes": restored.size_bytes, "file_count": restored.file_count})
        return 0
    print(f"restored {arguments.backup} into {restored.data_dir}: {restored.file_count} files, "
          f"{restored.size_bytes / 2**20:.1f} MiB" + (f"; the old directory is {restored.moved_aside}"
                                                       if restored.moved_aside else ""))
    return 0
