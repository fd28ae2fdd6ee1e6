"""A legacy IMAP client of the bridge: Python's imaplib, as a script would use it.

Usage: bridge_imap.py MODE PORT USER PASSWORD [SECONDS]; prints one JSON object.
The bridge's certificate is self-signed: the client does not verify it and
reports its SHA-256 fingerprint instead, to compare with GET /bridge.
"""
import hashlib
import imaplib
import json
import ssl
import sys
import time


def connect(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=30)


def fingerprint(client):
    digest = hashlib.sha256(client.sock.getpeercert(binary_form=True)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def login_error(client, user, password):
    try:
        client.login(user, password)
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)


def main():
    mode, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    out = {}
    if mode == "session":
        client = connect(port)
        out["fingerprint"] = fingerprint(client)
        out["greeting"] = client.welcome.decode()
        out["capabilities_before"] = sorted(client.capabilities)
        typ, data = client.login(user, password)
        out["login"] = [typ, data[0].decode()]
        out["capabilities_after"] = [c.decode() for c in client.untagged_responses.get("CAPABILITY", [])]
        typ, data = client.select("INBOX")
        out["exists"] = int(data[0])
        typ, data = client.fetch("1", "(RFC822)")
        out["message"] = data[0][1].decode()
        out["logout"] = client.logout()[0]
        # SASL PLAIN, the response after the continuation.
        client = connect(port)
        plain = ("\0%s\0%s" % (user, password)).encode()
        out["plain"] = client.authenticate("PLAIN", lambda _: plain)[0]
        out["plain_exists"] = int(client.select("INBOX")[1][0])
        client.logout()
    elif mode == "refused":
        out["error"] = login_error(connect(port), user, password)
    elif mode == "two":
        first = connect(port)
        first.login(user, password)
        out["second"] = login_error(connect(port), user, password)
        first.logout()
        time.sleep(0.5)
        out["after_logout"] = login_error(connect(port), user, password)
    elif mode == "idle":
        client = connect(port)
        client.login(user, password)
        time.sleep(float(sys.argv[5]))
        try:
            client.noop()
            out["after"] = "OK"
        except imaplib.IMAP4.abort as e:
            out["after"] = str(e)
    print(json.dumps(out))


main()
