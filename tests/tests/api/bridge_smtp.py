"""A legacy SMTP client of the bridge: Python's smtplib, as a script would use it.

Usage: bridge_smtp.py MODE PORT USER PASSWORD FROM TO; the message comes on
standard input; prints one JSON object. The bridge's certificate is
self-signed: the client does not verify it.
"""
import json
import smtplib
import ssl
import sys


def context():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def main():
    mode, port, user, password, sender, rcpt = sys.argv[1:7]
    port = int(port)
    message = sys.stdin.buffer.read()
    out = {}
    if mode == "send":
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.ehlo("scanner.contoso.cz")
        out["before_tls"] = sorted(s.esmtp_features)
        # AUTH before STARTTLS: not offered, and refused when sent anyway.
        out["auth_before_tls"] = list(s.docmd("AUTH", "PLAIN AGZvbwBiYXI="))
        out["auth_before_tls"][1] = out["auth_before_tls"][1].decode()
        s.starttls(context=context())
        s.ehlo("scanner.contoso.cz")
        out["after_tls"] = sorted(s.esmtp_features)
        out["login"] = s.login(user, password)[0]
        try:
            s.sendmail("someone-else@contoso.cz", [rcpt], message)
            out["other_sender"] = "accepted"
        except smtplib.SMTPSenderRefused as e:
            out["other_sender"] = [e.smtp_code, e.smtp_error.decode()]
        s.rset()
        out["refused_rcpts"] = s.sendmail(sender, [rcpt], message)
        out["quit"] = s.quit()[0]
        # AUTH LOGIN, over implicit TLS when a second port is given.
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.starttls(context=context())
        s.ehlo()
        s.user, s.password = user, password
        out["login_mechanism"] = s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0]
        s.quit()
    elif mode == "smtps":
        s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30, context=context())
        s.ehlo()
        out["login"] = s.login(user, password)[0]
        try:
            out["refused_rcpts"] = s.sendmail(sender, [rcpt], message)
        except smtplib.SMTPSenderRefused as e:
            out["refused"] = [e.smtp_code, e.smtp_error.decode()]
        s.quit()
    elif mode == "refused":
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.starttls(context=context())
        try:
            s.login(user, password)
            out["login"] = "accepted"
        except smtplib.SMTPAuthenticationError as e:
            out["login"] = [e.smtp_code, e.smtp_error.decode()]
    elif mode == "pipelined":
        # PIPELINING (RFC 2920) as smtplib does not: bursts on the TLS socket,
        # then each reply in order.
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.starttls(context=context())
        s.ehlo("scanner.contoso.cz")
        out["login"] = s.login(user, password)[0]

        def burst(*commands, data=None):
            text = b"".join(c.encode() + b"\r\n" for c in commands)
            s.sock.sendall(text if data is None else data)
            return [[code, text.decode()] for code, text in (s.getreply() for _ in range(len(commands)))]

        options = "BODY=8BITMIME SIZE=%d" % len(message)
        out["other_sender"] = burst("MAIL FROM:<someone-else@contoso.cz> " + options, "RCPT TO:<%s>" % rcpt, "DATA")
        out["envelope"] = burst("RSET", "MAIL FROM:<%s> %s" % (sender, options), "RCPT TO:<%s>" % rcpt, "DATA")
        stuffed = b"".join(b"." + l if l.startswith(b".") else l for l in message.splitlines(keepends=True))
        out["message"] = burst("final dot", "QUIT", data=stuffed + b".\r\nQUIT\r\n")
    elif mode == "too_large":
        # smtplib declares the size (RFC 1870) when the server offers SIZE.
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.starttls(context=context())
        s.ehlo()
        out["login"] = s.login(user, password)[0]
        limit = int(s.esmtp_features["size"])
        line = b"x" * 76 + b"\r\n"
        big = b"Subject: too large\r\n\r\n" + line * (limit // len(line) + 1)
        try:
            s.sendmail(sender, [rcpt], big)
            out["too_large"] = "accepted"
        except smtplib.SMTPSenderRefused as e:
            out["too_large"] = [e.smtp_code, e.smtp_error.decode()]
        out["then"] = s.sendmail(sender, [rcpt], message)
        out["quit"] = s.quit()[0]
    print(json.dumps(out))


main()
