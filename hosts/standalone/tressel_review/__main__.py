"""`python -m tressel_review` (with hosts/standalone on sys.path): the same as `tressel review`."""

import sys

from tressel_review.app import main

sys.exit(main())
