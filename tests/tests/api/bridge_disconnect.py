"""Clients of the bridge that go away in the middle of a command, many times.

Usage: bridge_disconnect.py MODE PORT USER PASSWORD FROM TO COUNT AT_ONCE;
prints one JSON object: how many of the COUNT connections reached the point
where they hang up (`reached`), and the first errors. MODE:

- `imap_login_literal`: IMAP, before a login, half of a LOGIN literal;
- `imap_append`: IMAP, logged in, half of a 1 MB APPEND literal;
- `smtp_data`: SMTP (STARTTLS, smtplib), logged in, half a message after DATA.

Each connection closes its socket without a TLS close_notify, as a client
that crashes or loses its network does. The bridge's certificate is
self-signed: the client does not verify it.
"""
import concurrent.futures
import json
import smtplib
import socket
import ssl
import sys


def context():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


# One for every connection: making one loads the system's certificates.
CONTEXT = context()


def imap(port):
    sock = CONTEXT.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
    lines = sock.makefile("rb")
    lines.readline()  # the greeting
    return sock, lines


def hang_up(sock, lines):
    lines.close()
    sock.close()


def imap_login_literal(port, user, password, sender, rcpt):
    sock, lines = imap(port)
    sock.sendall(b"a LOGIN {4000}\r\n")
    reached = lines.readline().startswith(b"+")
    if reached:
        sock.sendall(b"x" * 2000)
    hang_up(sock, lines)
    return reached


def imap_append(port, user, password, sender, rcpt):
    sock, lines = imap(port)
    sock.sendall(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
    line = lines.readline()
    while line and not line.startswith(b"a "):
        line = lines.readline()
    reached = False
    if line.startswith(b"a OK"):
        sock.sendall(b"b APPEND INBOX {1000000}\r\n")
        reached = lines.readline().startswith(b"+")
        if reached:
            sock.sendall(b"x" * 500000)
    hang_up(sock, lines)
    return reached


def smtp_data(port, user, password, sender, rcpt):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.starttls(context=CONTEXT)
    s.login(user, password)
    s.mail(sender)
    s.rcpt(rcpt)
    reached = s.docmd("DATA")[0] == 354
    if reached:
        s.send(b"Subject: cut off\r\n\r\n" + b"half a message\r\n" * 2000)
    s.close()  # no QUIT
    return reached


def main():
    mode, port, user, password, sender, rcpt = sys.argv[1:7]
    count, at_once = int(sys.argv[7]), int(sys.argv[8])
    one = {"imap_login_literal": imap_login_literal, "imap_append": imap_append, "smtp_data": smtp_data}[mode]
    errors = []

    def attempt(_):
        try:
            return one(int(port), user, password, sender, rcpt)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            errors.append(repr(e))
            return False

    with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
        reached = sum(pool.map(attempt, range(count)))
    print(json.dumps({"reached": reached, "errors": errors[:5]}))


main()
