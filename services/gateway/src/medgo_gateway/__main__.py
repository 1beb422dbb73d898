"""Entry point of the `medgo-gateway` console script (and `python -m medgo_gateway`)."""

from __future__ import annotations

import sys

from medgo_gateway.cli import main as _cli_main


def main() -> None:
    sys.exit(_cli_main())


if __name__ == "__main__":
    main()
