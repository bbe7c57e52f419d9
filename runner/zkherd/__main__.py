import sys

from zkherd.cli import main

sys.exit(main())
