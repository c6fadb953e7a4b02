"""PyInstaller's entry script for the packaged ``advstudio`` executable.

Same arguments as the ``advstudio`` console script (``--self-test``, ``--version``). The one
addition is ``multiprocessing.freeze_support()``: in a frozen program a ``multiprocessing`` child
(spawned by PyTorch's DataLoader workers, for instance) re-runs this executable, and must be
routed to the child's code instead of opening a second window.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from advstudio.app import main

    sys.exit(main())
