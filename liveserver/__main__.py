import sys

from liveserver.cli import main

sys.exit(main())
