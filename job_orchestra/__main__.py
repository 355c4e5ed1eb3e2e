"""``python -m job_orchestra``: see :mod:`job_orchestra.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
