"""The `b2bua` command: `serve`, `check-config` and the operator commands.

Configuration is loaded and fully validated before anything else happens, so
`serve` with a bad file prints every problem and exits 1 without binding a port.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from b2bua.cdr.cli import add_cdr_commands
from b2bua.config import Config, ConfigError, load_config
from b2bua.policy.cli import add_policy_commands


def _print_problems(error: ConfigError) -> None:
    for problem in error.problems:
        print(problem, file=sys.stderr)


def _serve(args: argparse.Namespace, config: Config) -> int:
    # Imported here so `check-config` and operator commands stay light.
    from b2bua.app import run
    from b2bua.observability.logging import configure_logging

    configure_logging(config.logging, real_patterns=config.numbering.real_patterns)
    return run(config)


def _check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as error:
        _print_problems(error)
        return 1
    print("ok")
    return 0


def _add_operator_commands(subparsers: Any) -> bool:
    """Register the operator commands when `b2bua.operator_cli` exists."""
    try:
        from b2bua.operator_cli import add_operator_commands
    except ImportError:
        return False
    add_operator_commands(subparsers)
    return True


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="b2bua", description="SIP B2BUA for 700 number-protection calls."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = subparsers.add_parser("serve", help="run SIP, HTTP, store and workers")
    serve.add_argument("-c", "--config", metavar="FILE", help="TOML file (default: embedded)")
    serve.set_defaults(handler=_serve)
    check = subparsers.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(standalone=_check_config)
    _add_operator_commands(subparsers)
    add_cdr_commands(subparsers)
    add_policy_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `b2bua` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    standalone: Callable[[argparse.Namespace], int] | None = getattr(args, "standalone", None)
    if standalone is not None:
        return standalone(args)
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as error:
        _print_problems(error)
        return 1
    handler: Callable[[argparse.Namespace, Config], Any] = args.handler
    result = handler(args, config)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
