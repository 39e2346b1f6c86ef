#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/: small valid inputs of each format,
so the fuzzers start from inputs that reach deep into the parsers. Standard library only;
deterministic (fixed timestamps). Run from anywhere: python3 fuzz/seeds/make_seeds.py.
The SNMP datagrams are the bytes net-snmp's tools send (built here field by field)."""

import base64, bz2, gzip, io, lzma, os, struct, tarfile, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- smtp_session: first byte = read size - 1 ------------------------------------------
ESMTP = (b"EHLO client.example.org\r\n"
         b"XFORWARD NAME=client.example.org ADDR=192.0.2.1 PROTO=ESMTP HELO=c+2Eexample\r\n"
         b"MAIL FROM:<a@example.org> SIZE=120 BODY=8BITMIME RET=HDRS ENVID=x+2By SMTPUTF8\r\n"
         b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.com\r\n"
         b"RCPT TO:<c@example.com> NOTIFY=NEVER\r\n"
         b"DATA\r\nSubject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n"
         b"RSET\r\nNOOP\r\nHELP\r\nVRFY x\r\nMAIL FROM:<>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n.\r\nQUIT\r\n")
put("smtp_session", "esmtp-pipelined", b"\xff" + ESMTP)
put("smtp_session", "esmtp-bytewise", b"\x00" + ESMTP[:200])
put("smtp_session", "lmtp", b"\x10LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nRCPT TO:<c@d>\r\n"
    b"DATA\r\nX: y\r\n\r\nz\r\n.\r\nBDAT 3 LAST\r\nabcQUIT\r\n")
put("smtp_session", "errors", b"\x07HELO\r\nMAIL FROM:<a@b> SIZE=999999999\r\nRCPT TO:<>\r\nDATA\r\n"
    b"STARTTLS\r\nAUTH PLAIN AAAA\r\n" + b"X" * 300 + b"\r\nQUIT\r\n")

# --- forward_reply: first byte: bit 0 LMTP, the rest read size - 1 ----------------------
EHLO = (b"220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-DSN\r\n"
        b"250-SIZE 10240000\r\n250-SMTPUTF8\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n")
# Two XFORWARD replies (NAME, ADDR), MAIL, three RCPT, DATA, end of data, QUIT.
put("forward_reply", "smtp-pipelined", b"\xfe" + EHLO + b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
    b"550 5.1.1 <b@example.com>: unknown\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    b"250 2.0.0 Ok: queued as 4ABC\r\n221 2.0.0 Bye\r\n")
put("forward_reply", "lmtp-per-recipient", b"\x01220 lmtp\r\n250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
    b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"
    b"250 2.0.0 a ok\r\n452 4.2.2 b over quota\r\n250-2.0.0 c\r\n250 2.0.0 ok\r\n221 bye\r\n")
put("forward_reply", "smtp-lockstep", b"\x06220 old\r\n250 old\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n"
    b"354 go\r\n451 4.3.0 try later\r\n")

# --- mime -------------------------------------------------------------------------------
def zip_bytes(members, encrypted=False):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    out = bytearray(b.getvalue())
    if encrypted:  # set the "encrypted" flag bit in the local and central headers
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = out.find(sig)
            while i >= 0:
                out[i + off] |= 1
                i = out.find(sig, i + 4)
    return bytes(out)


def mail(parts, top=b"From: a@example.org\r\nTo: b@example.com\r\nSubject: =?UTF-8?B?aMOpbGxv?=\r\n"
                   b"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"):
    body = top + b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\npreamble\r\n"
    for headers, content in parts:
        body += b"--B\r\n" + headers + b"\r\n" + content + b"\r\n"
    return body + b"--B--\r\n"


doc_zip = zip_bytes([("invoice.exe", b"MZ\x90\x00" + b"\x00" * 60), ("notes.txt", b"hello\n" * 20)])
put("mime", "attachment-zip", mail([
    (b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n",
     b"caf=E9 =\r\nsoft break\r\n"),
    (b"Content-Type: application/zip; name=\"a.zip\"\r\nContent-Disposition: attachment; filename=\"a.zip\"\r\n"
     b"Content-Transfer-Encoding: base64\r\n", base64.encodebytes(doc_zip).replace(b"\n", b"\r\n")),
]))
inner = b"From: c@d\r\nSubject: inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"
put("mime", "nested-rfc822", mail([
    (b"Content-Type: message/rfc822\r\n", inner),
    (b"Content-Type: application/octet-stream; name=x.gz\r\nContent-Transfer-Encoding: base64\r\n",
     base64.encodebytes(gzip.compress(b"MZ" + b"\x00" * 100, mtime=0)).replace(b"\n", b"\r\n")),
]))
put("mime", "broken", b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=Z\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n--Z\r\nContent-Type: text/plain\r\n\r\n=?x?Q?y\r\n--Z\r\n"
    b"Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n--\r\n")

# --- archives -----------------------------------------------------------------------------
payload = b"MZ\x90\x00This program cannot be run in DOS mode.\r\n" + bytes(range(256))
put("archive_zip", "two-members.zip", doc_zip)
put("archive_zip", "nested.zip", zip_bytes([("in/inner.zip", zip_bytes([("x.exe", payload)])), ("dir/", b"")]))
put("archive_zip", "encrypted.zip", zip_bytes([("secret.doc", b"x" * 64)], encrypted=True))

put("archive_gz", "plain.gz", gzip.compress(payload, mtime=0))
put("archive_gz", "multi-member.gz", gzip.compress(b"a" * 50, mtime=0) + gzip.compress(b"b" * 50, mtime=0))
put("archive_gz", "gz-of-tar.gz", b"")  # filled below

put("archive_bz2", "plain.bz2", bz2.compress(payload))
put("archive_bz2", "multi-stream.bz2", bz2.compress(b"x" * 100) + bz2.compress(b"y" * 10))

put("archive_xz", "plain.xz", lzma.compress(payload, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64))
put("archive_xz", "crc32.xz", lzma.compress(b"z" * 500, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))


def tar_bytes(members, fmt=tarfile.USTAR_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            t.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("subdir")
        d.type, d.mtime = tarfile.DIRTYPE, 0
        t.addfile(d)
    return b.getvalue()


tar1 = tar_bytes([("readme.txt", b"hi\n"), ("bin/run.exe", payload)])
put("archive_tar", "ustar.tar", tar1)
put("archive_tar", "pax-long-name.tar", tar_bytes([("x" * 120 + ".zip", doc_zip)], tarfile.PAX_FORMAT))
put("archive_gz", "gz-of-tar.gz", gzip.compress(tar1, mtime=0))


# 7z: no writer in the standard library; a minimal archive with the Copy coder.
def seven_z(name, data):
    def num(n):  # 7z NUMBER, for values below 2^14
        return bytes([n]) if n < 0x80 else bytes([0x80 | (n >> 8), n & 0xFF])
    uname = name.encode("utf-16-le") + b"\x00\x00"
    header = (b"\x01" + b"\x04"                                       # Header, MainStreamsInfo
              + b"\x06" + num(0) + num(1) + b"\x09" + num(len(data)) + b"\x00"   # PackInfo
              + b"\x07" + b"\x0b" + num(1) + b"\x00"                     # UnPackInfo, Folder x1
              + num(1) + b"\x01" + b"\x00"                             # 1 coder: id size 1, Copy
              + b"\x0c" + num(len(data)) + b"\x00"                      # unpack size
              + b"\x08" + b"\x0a" + b"\x01" + struct.pack("<I", zlib.crc32(data)) + b"\x00"  # SubStreams CRC
              + b"\x00"                                                # end MainStreamsInfo
              + b"\x05" + num(1)                                       # FilesInfo, 1 file
              + b"\x11" + num(len(uname) + 1) + b"\x00" + uname         # names
              + b"\x00" + b"\x00")                                     # end FilesInfo, end Header
    start = struct.pack("<QQI", len(data), len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + data + header


put("archive_7z", "copy.7z", seven_z("run.exe", payload))
put("archive_7z", "copy-of-zip.7z", seven_z("a.zip", doc_zip))

# --- snmp_message: BER datagrams as net-snmp sends them -------------------------------------
def tlv(tag, content):
    n = len(content)
    ln = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF]))
    return bytes([tag]) + ln + content


def integer(v):
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def oid(s):
    arcs = [int(a) for a in s.split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        enc = [a & 0x7F]
        a >>= 7
        while a:
            enc.insert(0, 0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(enc)
    return tlv(0x06, out)


def varbinds(names, value=b"\x05\x00"):
    return tlv(0x30, b"".join(tlv(0x30, oid(n) + value) for n in names))


def pdu(tag, names, req=1, a=0, b=0, value=b"\x05\x00"):
    return tlv(tag, integer(req) + integer(a) + integer(b) + varbinds(names, value))


def community_msg(version, body, community=b"public"):
    return tlv(0x30, integer(version) + tlv(0x04, community) + body)


AMAVIS = "1.3.6.1.4.1.15312.2.1"
put("snmp_message", "v1-get-sysdescr", community_msg(0, pdu(0xA0, ["1.3.6.1.2.1.1.1.0"])))
put("snmp_message", "v2c-getnext-amavis", community_msg(1, pdu(0xA1, [AMAVIS, "1.3.6.1.2.1.1"])))
put("snmp_message", "v2c-getbulk", community_msg(1, pdu(0xA5, [AMAVIS + ".1", AMAVIS + ".3"], 7, 1, 10)))
put("snmp_message", "v2c-set-refused", community_msg(1, pdu(0xA3, [AMAVIS + ".1.1.0"], 9, value=integer(5))))
put("snmp_message", "v1-wrong-community", community_msg(0, pdu(0xA0, [AMAVIS + ".1.1.0"]), b"private"))


# --- snmp_usm: SNMPv3 as snmpget -v3 sends it ------------------------------------------------
ENGINE = b"\x80\x00\x1f\x88\x80avis-fuzz"  # fuzz/src/lib.rs's engine id


def v3(flags, engine, user, scoped, boots=0, time=0, auth=b"", priv=b"", msg_id=4242):
    header = tlv(0x30, integer(msg_id) + integer(65507) + tlv(0x04, bytes([flags])) + integer(3))
    usm = tlv(0x30, tlv(0x04, engine) + integer(boots) + integer(time) + tlv(0x04, user)
              + tlv(0x04, auth) + tlv(0x04, priv))
    return tlv(0x30, integer(3) + header + tlv(0x04, usm) + scoped)


def scoped(engine, body):
    return tlv(0x30, tlv(0x04, engine) + tlv(0x04, b"") + body)


put("snmp_usm", "discovery", v3(0x04, b"", b"", scoped(b"", pdu(0xA0, [], 1))))
put("snmp_usm", "noauth-get", v3(0x04, ENGINE, b"noauth", scoped(ENGINE, pdu(0xA0, [AMAVIS + ".1.1.0"])), 7, 10))
put("snmp_usm", "auth-bad-mac", v3(0x05, ENGINE, b"authonly", scoped(ENGINE, pdu(0xA1, [AMAVIS])), 7, 10,
                                   auth=b"\x00" * 12))
put("snmp_usm", "authpriv-encrypted", v3(0x07, ENGINE, b"authpriv", tlv(0x04, bytes(range(48))), 7, 10,
                                         auth=b"\x00" * 24, priv=b"\x00\x00\x00\x00\x00\x00\x00\x01"))
put("snmp_usm", "unknown-user", v3(0x04, ENGINE, b"nobody", scoped(ENGINE, pdu(0xA5, [AMAVIS], 3, 0, 5))))

# --- agentx_frame: what snmpd (the master) sends a subagent, network byte order ---------------
def ax_oid(s, include=0):
    arcs = [int(a) for a in s.split(".")] if s else []
    prefix = 0
    if len(arcs) > 4 and arcs[:4] == [1, 3, 6, 1] and arcs[4] < 256:
        prefix, arcs = arcs[4], arcs[5:]
    return struct.pack(">BBBB", len(arcs), prefix, include, 0) + b"".join(struct.pack(">I", a) for a in arcs)


def ax(ty, payload, session=1, tx=1, packet=1, flags=0x10):
    return struct.pack(">BBBBIIII", 1, ty, flags, 0, session, tx, packet, len(payload)) + payload


def ranges(pairs):
    return b"".join(ax_oid(a, inc) + ax_oid(b) for a, inc, b in pairs)


frames = (ax(18, struct.pack(">IHH", 0, 0, 0))  # Response to our Open
          + ax(5, ranges([(AMAVIS + ".1.1.0", 0, ""), ("1.3.6.1.2.1.1.1.0", 0, "")]), packet=2)
          + ax(6, ranges([(AMAVIS, 1, AMAVIS + ".9")]), packet=3)
          + ax(7, struct.pack(">HH", 1, 10) + ranges([(AMAVIS, 0, ""), (AMAVIS + ".3", 0, AMAVIS + ".4")]), packet=4)
          + ax(8, ax_oid(AMAVIS + ".1.1.0") + struct.pack(">HH", 2, 0) + struct.pack(">I", 5), packet=5)
          + ax(9, b"", packet=6) + ax(10, b"", packet=7) + ax(11, b"", packet=8)
          + ax(2, struct.pack(">BBBB", 1, 0, 0, 0), packet=9))
put("agentx_frame", "session", frames)
put("agentx_frame", "little-endian-get", ax(5, b"\x02\x04\x00\x00" + struct.pack("<II", 1, 15312) + b"\x00" * 4, flags=0))
put("agentx_frame", "context-flag", ax(6, struct.pack(">I", 3) + b"ctx\x00" + ranges([(AMAVIS, 0, "")]), flags=0x18))

# --- configs ------------------------------------------------------------------------------------
ROOT = os.path.dirname(os.path.dirname(HERE))
with open(os.path.join(ROOT, "filter/src/config/default.toml"), "rb") as f:
    put("filter_config", "default.toml", f.read())
with open(os.path.join(ROOT, "tests/postfix/avisd.toml"), "rb") as f:
    put("filter_config", "postfix.toml", f.read())
with open(os.path.join(ROOT, "snmp-agent/avis-snmp-agent.toml.example"), "rb") as f:
    put("snmp_config", "example.toml", f.read())
put("snmp_config", "v3-users.toml", b'listen = ["127.0.0.1:1161", "[::1]:1161"]\nagentx = "tcp:127.0.0.1:705"\n'
    b'community = [{ name = "public", networks = ["127.0.0.0/8", "::1/128"] }]\n'
    b'[[v3_user]]\nname = "mon"\nauth = "sha256"\nauth_password = "authpassword"\n'
    b'priv = "aes128"\npriv_password = "privpassword"\n')
