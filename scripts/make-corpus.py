#!/usr/bin/env python3
"""Writes tests/fixtures/corpus: real-world-shaped .eml files (charsets,
encodings, MIME shapes and malformations seen in helpdesk mail) and
expected.json, what each must become. The expectations state what the mail
means, written by hand here, not what any parser printed.
Run once; the files are committed."""
import base64, json, os, quopri

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "corpus")
files, expected = {}, {}

def b64(s, enc):
    return base64.b64encode(s.encode(enc)).decode()

def ew(s, enc="utf-8", kind="B"):
    if kind == "B":
        return f"=?{enc}?B?{b64(s, enc if enc != 'ks_c_5601-1987' else 'cp949')}?="
    return f"=?{enc}?Q?{quopri.encodestring(s.encode(enc), header=True).decode()}?="

def hdr(subject, frm="Customer <customer@client.test>", mid=None, extra=""):
    h = f"From: {frm}\r\nTo: support@acme.test\r\nSubject: {subject}\r\nDate: Tue, 03 Nov 2026 09:15:00 +0900\r\n"
    if mid:
        h += f"Message-ID: <{mid}>\r\n"
    return h + "MIME-Version: 1.0\r\n" + extra

def add(name, raw, **exp):
    files[name] = raw if isinstance(raw, bytes) else raw.encode("latin-1", "strict") if all(ord(c) < 256 for c in raw) else raw.encode("utf-8")
    expected[name] = exp

def single(name, subject_text, body_text, charset, cte, subj_enc=None, **exp):
    pyenc = {"ks_c_5601-1987": "cp949"}.get(charset, charset)
    subj = ew(subject_text, subj_enc or charset) if subj_enc != "raw" else subject_text
    raw_body = body_text.encode(pyenc)
    if cte == "base64":
        body = base64.encodebytes(raw_body).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        body = quopri.encodestring(raw_body).replace(b"\n", b"\r\n")
    else:
        body = raw_body.replace(b"\n", b"\r\n")
    h = hdr(subj, mid=f"{name}@client.test", extra=f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
    add(name, h.encode() + body, outcome="ticket", subject=subject_text, text_contains=body_text.split("\n")[0][:20], from_address="customer@client.test")

add("plain-ascii.eml", hdr("Cannot log in to the portal", mid="plain-ascii@client.test", extra="Content-Type: text/plain; charset=us-ascii\r\n\r\n") + "Hi,\r\nI cannot log in since this morning.\r\nRegards\r\n",
    outcome="ticket", subject="Cannot log in to the portal", text_contains="I cannot log in", from_address="customer@client.test", from_name="Customer")
single("utf8-8bit.eml", "Überweisung fehlgeschlagen ✓", "Grüße aus München — die Überweisung ist fehlgeschlagen.\n", "utf-8", "8bit")
single("qp-latin1.eml", "Problème de facturation", "Bonjour, la facture n'est pas arrivée. Merci d'avance.\n", "iso-8859-1", "quoted-printable")
single("base64-utf8.eml", "配送状況について", "お世話になっております。配送状況を教えてください。\n", "utf-8", "base64")
single("euc-kr.eml", "비밀번호 재설정 요청", "안녕하세요. 비밀번호 재설정을 요청합니다.\n", "euc-kr", "base64")
single("ks-c-5601-1987.eml", "견적서 요청드립니다", "안녕하세요, 견적서를 보내주시기 바랍니다. 감사합니다.\n", "ks_c_5601-1987", "base64")
single("iso-2022-jp.eml", "請求書の再発行", "請求書の再発行をお願いします。\n", "iso-2022-jp", "7bit")
single("shift-jis.eml", "ログインできません", "昨日からログインできません。\n", "shift_jis", "base64")
single("gb2312.eml", "无法登录系统", "您好，我无法登录系统。\n", "gb2312", "base64")
single("big5.eml", "帳號被鎖定", "您好，我的帳號被鎖定了。\n", "big5", "base64")
single("koi8-r.eml", "Не работает принтер", "Здравствуйте, принтер не работает.\n", "koi8-r", "quoted-printable")
single("windows-1251.eml", "Счёт на оплату", "Добрый день, пришлите счёт на оплату.\n", "windows-1251", "base64")
single("windows-1252-quotes.eml", "“Urgent” – order #4411", "We’re still waiting for order #4411 – please advise.\n", "windows-1252", "quoted-printable")
single("iso-8859-15-euro.eml", "Remboursement de 45 €", "Merci de rembourser 45 € sur ma carte.\n", "iso-8859-15", "quoted-printable")

alt = ("Content-Type: multipart/alternative; boundary=\"alt-1\"\r\n\r\n--alt-1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
       "The VPN drops every 10 minutes.\r\n--alt-1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>The <b>VPN</b> drops every 10 minutes.</p></body></html>\r\n--alt-1--\r\n")
add("multipart-alternative.eml", hdr("VPN keeps disconnecting", mid="alt@client.test", extra=alt),
    outcome="ticket", subject="VPN keeps disconnecting", text_contains="VPN drops every 10 minutes", html_contains="<b>VPN</b>")
html = "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><h1>Refund</h1><p>Please refund order 77.</p></body></html>\r\n"
add("html-only.eml", hdr("Refund request", mid="html-only@client.test", extra=html),
    outcome="ticket", subject="Refund request", text_contains="Please refund order 77", html_contains="<h1>Refund</h1>")

pdf = base64.encodebytes(b"%PDF-1.4\n% test invoice\n" + b"0" * 3000).decode().replace("\n", "\r\n")
mixed = (f"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInvoice attached.\r\n"
         f"--mix\r\nContent-Type: application/pdf; name=\"invoice-2026-11.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice-2026-11.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}--mix--\r\n")
add("attachment-pdf.eml", hdr("Invoice November", mid="pdf@client.test", extra=mixed),
    outcome="ticket", subject="Invoice November", text_contains="Invoice attached", attachments=["invoice-2026-11.pdf"])
r2231 = ("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the attached report.\r\n--b\r\n"
         "Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\nContent-Disposition: attachment; filename*=UTF-8''%EB%B3%B4%EA%B3%A0%EC%84%9C%202026.xlsx\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBBQAAAAIAA==\r\n--b--\r\n")
add("attachment-rfc2231.eml", hdr("Monthly report", mid="rfc2231@client.test", extra=r2231),
    outcome="ticket", subject="Monthly report", attachments=["보고서 2026.xlsx"])
cont = ("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nContract attached.\r\n--b\r\n"
        "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename*0*=UTF-8''Vertrag%20f%C3%BCr%20;\r\n filename*1*=M%C3%BCller%20GmbH.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n")
add("attachment-rfc2231-continuation.eml", hdr("Vertrag", mid="rfc2231c@client.test", extra=cont),
    outcome="ticket", subject="Vertrag", attachments=["Vertrag für Müller GmbH.pdf"])
ewname = ("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nScreenshot attached.\r\n--b\r\n"
          f"Content-Type: image/png; name=\"{ew('화면 캡처.png', 'utf-8')}\"\r\nContent-Disposition: attachment; filename=\"{ew('화면 캡처.png', 'utf-8')}\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n")
add("attachment-encoded-word-name.eml", hdr("Error screenshot", mid="ewname@client.test", extra=ewname),
    outcome="ticket", subject="Error screenshot", attachments=["화면 캡처.png"])
nested = ("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n"
          "--rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLogo looks wrong on the site.\r\n"
          "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Logo looks wrong: <img src=\"cid:logo\"></p>\r\n--alt--\r\n"
          "--rel\r\nContent-Type: image/gif\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--rel--\r\n"
          "--outer\r\nContent-Type: text/csv; name=\"pages.csv\"\r\nContent-Disposition: attachment; filename=\"pages.csv\"\r\n\r\nurl,status\r\n/,broken\r\n--outer--\r\n")
add("nested-multipart.eml", hdr("Logo broken", mid="nested@client.test", extra=nested),
    outcome="ticket", subject="Logo broken", text_contains="Logo looks wrong", attachments=["pages.csv"])
fwd = ("Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nForwarding the complaint below.\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
       "From: angry@other.test\r\nSubject: Terrible service\r\nMessage-ID: <inner@other.test>\r\n\r\nI want a refund.\r\n--f--\r\n")
add("forwarded-rfc822.eml", hdr("Fwd: Terrible service", mid="fwd@client.test", extra=fwd),
    outcome="ticket", subject="Fwd: Terrible service", text_contains="Forwarding the complaint")
add("missing-message-id.eml", hdr("No message id here") + "Content-Type: text/plain\r\n\r\nMy mail client sends no Message-ID.\r\n",
    outcome="ticket", subject="No message id here", text_contains="sends no Message-ID")
add("missing-from.eml", "To: support@acme.test\r\nSubject: Who sent this\r\nMessage-ID: <nofrom@client.test>\r\n\r\nAnonymous question.\r\n",
    outcome="ticket", subject="Who sent this", text_contains="Anonymous question")
add("malformed-headers.eml", "From: Broken <broken@client.test>\r\nThis line is not a header at all\r\nSubject: Still readable\r\nDate: not a date\r\nMessage-ID: <malformed@client.test>\r\nContent-Type: text/plain; charset=\"utf-8\r\n\r\nBody after broken headers.\r\n",
    outcome="ticket", from_address="broken@client.test")
add("headers-only.eml", "From: terse@client.test\r\nSubject: Subject is the whole message\r\nMessage-ID: <terse@client.test>\r\n",
    outcome="ticket", subject="Subject is the whole message")
add("lf-line-endings.eml", "From: unix@client.test\nTo: support@acme.test\nSubject: Sent from a Unix mailer\nMessage-ID: <lf@client.test>\n\nBare LF line endings.\n",
    outcome="ticket", subject="Sent from a Unix mailer", text_contains="Bare LF line endings")
add("folded-mixed-subject.eml", hdr(f"Re: {ew('주문', 'euc-kr')}\r\n {ew('번호 4411 ', 'utf-8')}\r\n status", mid="folded@client.test") + "\r\nbody\r\n",
    outcome="ticket", subject="Re: 주문번호 4411  status")
tnef = ("Content-Type: multipart/mixed; boundary=\"t\"\r\n\r\n--t\r\nContent-Type: text/plain\r\n\r\nSent from Outlook.\r\n--t\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\nContent-Transfer-Encoding: base64\r\n\r\neJ8+IgAAAQ==\r\n--t--\r\n")
add("outlook-winmail.eml", hdr("Meeting notes", mid="tnef@client.test", extra=tnef),
    outcome="ticket", subject="Meeting notes", attachments=["winmail.dat"])
cal = ("Content-Type: multipart/mixed; boundary=\"c\"\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\nInvitation: review call.\r\n--c\r\nContent-Type: text/calendar; method=REQUEST; name=\"invite.ics\"\r\nContent-Disposition: attachment; filename=\"invite.ics\"\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--c--\r\n")
add("calendar-invite.eml", hdr("Invitation: review call", mid="cal@client.test", extra=cal),
    outcome="ticket", subject="Invitation: review call", attachments=["invite.ics"])
add("unknown-charset.eml", hdr("Strange charset", mid="unk@client.test", extra="Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n") + "Plain ASCII under an unknown label.\r\n",
    outcome="ticket", subject="Strange charset", text_contains="Plain ASCII under")
add("empty-body.eml", hdr("Empty", mid="empty@client.test", extra="Content-Type: text/plain\r\n\r\n"),
    outcome="ticket", subject="Empty")
add("high-priority.eml", hdr("Production is down", mid="prio@client.test", extra="X-Priority: 1 (Highest)\r\nImportance: High\r\nContent-Type: text/plain\r\n\r\n") + "Everything is down!\r\n",
    outcome="ticket", subject="Production is down", priority="high")
add("auto-reply.eml", hdr("Automatic reply: Your request", mid="ooo@client.test", extra="Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\nContent-Type: text/plain\r\n\r\n") + "I am out of the office.\r\n",
    outcome="rejected", code="auto_reply")
add("reply-to-plain.eml", hdr("Re: Cannot log in to the portal", mid="reply1@client.test", extra="In-Reply-To: <plain-ascii@client.test>\r\nReferences: <plain-ascii@client.test>\r\nContent-Type: text/plain\r\n\r\n") + "Still broken, any news?\r\n",
    outcome="reply", parent="plain-ascii.eml", text_contains="Still broken")
add("not-an-email.eml", bytes(range(1, 9)) * 40, outcome="rejected", code="message_unparseable")

os.makedirs(OUT, exist_ok=True)
for name, raw in files.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(raw)
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
print(len(files), "files")
