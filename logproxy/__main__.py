import sys

from logproxy.server import main

if __name__ == "__main__":
    sys.exit(main())
