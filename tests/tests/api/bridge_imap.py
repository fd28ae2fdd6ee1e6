"""A legacy IMAP client of the bridge: Python's imaplib, as a script would use it.

Usage: bridge_imap.py MODE PORT USER PASSWORD [SECONDS]; prints one JSON object
(mode `idle_wake` first prints `{"idling": true}` on a line of its own, once
the server has accepted IDLE, and waits for a new message).
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
    elif mode == "select":
        client = connect(port)
        client.login(user, password)
        out["exists"] = int(client.select("INBOX")[1][0])
        out["logout"] = client.logout()[0]
    elif mode == "large":
        # The newest message, whole, as the server holds it.
        client = connect(port)
        client.login(user, password)
        exists = int(client.select("INBOX", readonly=True)[1][0])
        typ, data = client.fetch(str(exists), "(RFC822.SIZE BODY.PEEK[])")
        body = data[0][1]
        out["fetch"] = typ
        out["size"] = int(data[0][0].split(b"RFC822.SIZE ")[1].split()[0])
        out["length"] = len(body)
        out["sha256"] = hashlib.sha256(body).hexdigest()
        client.logout()
    elif mode == "idle_wake":
        # IDLE (RFC 2177) by hand: imaplib has no idle() before Python 3.14.
        client = connect(port)
        client.login(user, password)
        out["exists_before"] = int(client.select("INBOX")[1][0])
        tag = client._new_tag()
        client.send(tag + b" IDLE\r\n")
        out["continuation"] = client._get_line().decode()
        print(json.dumps({"idling": True}), flush=True)
        while True:
            line = client._get_line().decode()
            if line.endswith(" EXISTS"):
                out["woken_by"] = line
                break
        client.send(b"DONE\r\n")
        while True:
            line = client._get_line()
            if line.startswith(tag):
                out["done"] = line[len(tag) :].decode().strip()
                break
        out["logout"] = client.logout()[0]
    print(json.dumps(out))


main()
