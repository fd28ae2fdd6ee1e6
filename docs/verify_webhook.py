#!/usr/bin/env python3
"""Checks one Inboxlink webhook delivery (Standard Webhooks), with the
Python standard library only.

    WEBHOOK_ID=… WEBHOOK_TIMESTAMP=… WEBHOOK_SIGNATURE=… \\
        python3 docs/verify_webhook.py 'whsec_…' < body

The three variables are the delivery's headers `webhook-id`,
`webhook-timestamp` and `webhook-signature`; standard input is the body
exactly as received. The secret may also come from `WEBHOOK_SECRET`
instead of the argument. Exit status 0 when a signature matches and the
timestamp is within 5 minutes of now, 1 when not (the reason on stderr),
2 for a usage error. `VERIFY_NOW` (Unix seconds) replaces the clock, to
check a recorded or published example.

The function `verify` is the README's snippet ("Verifying a signature").
"""

import base64
import hashlib
import hmac
import os
import sys
import time


def verify(secret, webhook_id, timestamp, signatures, body, now=None):
    """True when `body` (bytes, as received) was signed with `secret`.

    `webhook_id`, `timestamp` and `signatures` are the headers
    `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    """
    now = time.time() if now is None else now
    try:
        if abs(now - int(timestamp)) > 5 * 60:
            return False  # too old (a replay) or from the future
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        return False
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # During a secret rotation there are several, separated by spaces.
    return any(
        version == "v1" and hmac.compare_digest(value.encode(), expected)
        for version, _, value in (s.partition(",") for s in signatures.split())
    )


def main(argv, environ, stdin):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    secret = argv[1] if len(argv) == 2 else environ.get("WEBHOOK_SECRET")
    if not secret:
        print("verify_webhook: give the secret (whsec_…) as the argument or in WEBHOOK_SECRET",
              file=sys.stderr)
        return 2
    headers = {}
    for name in ("WEBHOOK_ID", "WEBHOOK_TIMESTAMP", "WEBHOOK_SIGNATURE"):
        if not environ.get(name):
            print(f"verify_webhook: {name} is not set", file=sys.stderr)
            return 1
        headers[name] = environ[name]
    try:
        now = float(environ["VERIFY_NOW"]) if environ.get("VERIFY_NOW") else None
    except ValueError:
        print("verify_webhook: VERIFY_NOW is not a number of seconds", file=sys.stderr)
        return 2
    body = stdin.read()
    if verify(secret, headers["WEBHOOK_ID"], headers["WEBHOOK_TIMESTAMP"],
              headers["WEBHOOK_SIGNATURE"], body, now):
        print("valid")
        return 0
    print("verify_webhook: no signature matches, or the timestamp is more than 5 minutes off",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ, sys.stdin.buffer))
