"""A local SMTP server for the alerting tests: aiosmtpd (PyPI) with STARTTLS required before
AUTH and before mail, one account, and every accepted message kept as a JSON file in a
mailbox directory - its envelope, the message, whether the session was encrypted and who
logged in - for the tests to read.

Usage: smtp_sink.py --port 8587 --cert C --key K --user U --password-file F --mailbox DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        }
        # Written whole, then renamed: a reader never sees half a message.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.rename(tmp, self.directory / f"{time.time_ns()}.json")
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--mailbox", type=Path, required=True)
    args = parser.parse_args()
    password = Path(args.password_file).read_text().strip().encode()
    args.mailbox.mkdir(parents=True, exist_ok=True)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == args.user.encode() and data.password == password
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    controller = Controller(
        Mailbox(args.mailbox),
        hostname=args.host,
        port=args.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
