"""`python -m mockserver`: the same as the `mockserver` command."""

import sys

from mockserver.serving.cli import main

sys.exit(main())
