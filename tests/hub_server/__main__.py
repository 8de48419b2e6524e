"""Lets the package run as a program: ``python tests/hub_server --root DIR --port 8080 --token hf_test``
or, from ``tests/``, ``python -m hub_server --root DIR --port 8080 --token hf_test``. Running a
directory puts that directory (``tests/hub_server/``) on ``sys.path`` and gives this file no parent
package, so it first swaps the package folder for its parent (``tests/``) on ``sys.path`` (the package's
module names, e.g. ``request`` or ``app``, must not shadow top-level modules) and then imports
``hub_server.cli.main`` by its absolute name. Nothing happens on a plain import.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    _package_dir = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _package_dir]
    sys.path.insert(0, os.path.dirname(_package_dir))

    from hub_server.cli import main

    sys.exit(main())
