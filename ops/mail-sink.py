#!/usr/bin/env python3
"""A stdlib-only SMTP sink for ops/run when npm (maildev) is not available.

Accepts every message on 127.0.0.1:<port> (default 1025) and writes it as an .eml file under
<dir> (default .run/mail/), one file per message, printing where. No auth, no TLS, no relay:
it is a development catcher, like MailCatcher in the seed.

Usage: ops/mail-sink.py [--port 1025] [--dir .run/mail]

Python 3.12 removed smtpd/asyncore, so this speaks the few SMTP verbs lettre uses itself
(EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) with asyncio.
"""

import argparse
import asyncio
import itertools
import os
import time

counter = itertools.count(1)


def save(directory, mail_from, rcpts, data):
    name = "%d-%06d.eml" % (int(time.time()), next(counter))
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(b"X-Envelope-From: <" + mail_from.encode() + b">\r\n")
        f.write(b"X-Envelope-To: " + ", ".join("<%s>" % r for r in rcpts).encode() + b"\r\n")
        f.write(data)
    return path


def address(arg):
    arg = arg.strip()
    if arg.startswith("<") and ">" in arg:
        return arg[1 : arg.index(">")]
    return arg.split()[0] if arg else ""


async def session(reader, writer, directory, quiet):
    async def reply(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    mail_from, rcpts = "", []
    await reply("220 mail-sink ESMTP")
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                writer.write(b"250-mail-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
                await writer.drain()
            elif verb == "HELO" or verb == "NOOP":
                await reply("250 OK")
            elif verb == "RSET":
                mail_from, rcpts = "", []
                await reply("250 OK")
            elif line.upper().startswith("MAIL FROM:"):
                mail_from, rcpts = address(line[10:]), []
                await reply("250 OK")
            elif line.upper().startswith("RCPT TO:"):
                rcpts.append(address(line[8:]))
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    chunk = await reader.readline()
                    if not chunk:
                        return
                    if chunk in (b".\r\n", b".\n"):
                        break
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                path = save(directory, mail_from, rcpts, b"".join(chunks))
                if not quiet:
                    print("mail-sink: %s -> %s" % (", ".join(rcpts), path), flush=True)
                mail_from, rcpts = "", []
                await reply("250 OK queued")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            else:
                await reply("502 command not implemented")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", default=".run/mail")
    parser.add_argument("--quiet", action="store_true", help="do not print one line per message")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    server = await asyncio.start_server(
        lambda r, w: session(r, w, args.dir, args.quiet), args.host, args.port
    )
    print("mail-sink: SMTP on %s:%d, messages saved under %s" % (args.host, args.port, os.path.abspath(args.dir)), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
