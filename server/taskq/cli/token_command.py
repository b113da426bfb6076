"""`taskq token create NAME --role ROLE[=PATTERN] ...`: makes a bearer token and prints it with
the entry to paste into the server's tokens file (docs/security.md). The token is shown once:
the file keeps only its SHA-256, so a lost token is replaced, never recovered."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import yaml

from taskq.auth.auth_file import new_token, token_entry_yaml
from taskq.auth.roles import InvalidGrant, parse_grant
from taskq.cli import errors, values


def add_parser(subparsers) -> None:
    token = subparsers.add_parser("token", help="make bearer tokens for a server's tokens file",
                                  description="Bearer tokens for a server with auth_tokens_file (docs/security.md).")
    commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create", help="make a token and print the tokens-file entry to paste",
        description="Make a random token and print it, with the entry for the server's tokens file (its SHA-256 and "
                    "roles; never the token itself). Paste the entry under `tokens:`; the server reads the file again "
                    "when it changes. Give the token to its holder (TASKQ_TOKEN, --token-file).",
    )
    create.add_argument("name", metavar="NAME", help="who holds it (shown in logs and errors; an acl entry or an "
                        "identities entry of this name adds roles)")
    create.add_argument("--role", action="append", default=[], metavar="ROLE[=PATTERN]",
                        help="viewer, enqueuer, worker or admin, on the queues whose ids match PATTERN (a glob; "
                             "default *); repeat for several")
    create.add_argument("--expires", type=values.positive_duration, metavar="DURATION",
                        help="the token stops working after this long (30d, 12h); default never")
    create.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    create.set_defaults(run=_create)


def _create(arguments: argparse.Namespace) -> int:
    try:
        grants = [parse_grant(role) for role in arguments.role]
    except InvalidGrant as error:
        return errors.report_usage(f"--role {error}", json_errors=arguments.json)
    if not grants:
        return errors.report_usage("give at least one --role (admin, worker=emails-*, ...)", json_errors=arguments.json)
    name = arguments.name
    if not name or any(character.isspace() or not character.isprintable() for character in name):
        return errors.report_usage("NAME must not be empty nor hold spaces", json_errors=arguments.json)
    expires = None
    if arguments.expires is not None:
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=arguments.expires)
    token = new_token()
    entry = token_entry_yaml(name, token, grants, expires)
    if arguments.json:
        json.dump({"token": token, "entry": yaml.safe_load(entry)[0]}, sys.stdout, default=str)
        print()
        return 0
    print(f"token for {name} (shown once; give it to its holder as TASKQ_TOKEN or in a --token-file):")
    print(f"  {token}")
    print("entry for the server's tokens file, under tokens: (it holds the token's SHA-256, not the token):")
    print(entry, end="")
    return 0
