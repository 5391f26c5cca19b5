"""moto's S3 server answering one request at a time, for the S3 driver's tests.

`moto_server` answers on several threads, and moto checks an `If-Match` or `If-None-Match`
precondition and then writes in two steps, so two concurrent conditional PUTs can both pass the
check. Real S3 decides them atomically; answering one request at a time makes moto do the same,
which the driver testsuite's contended conditional writes rely on. `.ci/moto-setup` installs this
file into the virtualenv with that virtualenv's python in its first line.

    registryd-moto-server -H 127.0.0.1 -p PORT
"""

import argparse
import os
import signal
import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["MOTO_PORT"] = str(args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        app,
        threaded=False,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
