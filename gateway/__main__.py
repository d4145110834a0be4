"""`cargotrace-gateway --config PROFILE` (or `python -m gateway`): the edge process alone, as an edge box
installs it (`pip install 'cargotrace[gateway]'`)."""

from __future__ import annotations

import argparse

from common import logs
from common.failures import exit_code
from gateway.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cargotrace-gateway", description="run an edge gateway from its profile")
    parser.add_argument("--config", required=True, metavar="FILE", help="gateway profile (YAML)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="a traceback instead of the one-line error")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: one JSON object per line, for log shippers")
    args = parser.parse_args(argv)
    logs.configure(args.verbose, args.log_format == "json")
    return exit_code(lambda: run(args.config), args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
