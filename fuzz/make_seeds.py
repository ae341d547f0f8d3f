#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ from real examples: the
OpenRPC examples, the example config, SIP and SDP as sipp and baresip send
them, RTP/RTCP/DTMF packets. Run from fuzz/: python3 make_seeds.py"""
import json, os, struct

def put(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    open(f"corpus/{target}/{name}", "wb").write(data)

def crlf(text):
    return text.strip("\n").replace("\n", "\r\n") + "\r\n"

SIPP_SDP = crlf("""v=0
o=sipp 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv""")
BARESIP_SDP = crlf("""v=0
o=- 1969604412 3419216596 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 10312 RTP/AVP 111 9 0 8 101
b=AS:88
a=rtpmap:111 opus/48000/2
a=fmtp:111 stereo=1;sprop-stereo=1;useinbandfec=1
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000/1
a=rtpmap:8 PCMA/8000/1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:2473947227 cname:bbc3ca5c-6b31-4d1b-8e25-3c0e3ea4b8a5
a=rtcp-rsize
a=ptime:20""")
BARESIP_SRTP_SDP = crlf("""v=0
o=- 3318339478 1234196417 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 10316 RTP/SAVP 0 8 101
a=rtpmap:0 PCMU/8000/1
a=rtpmap:8 PCMA/8000/1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj
a=ptime:20""")
SIPP_HOLD_SDP = SIPP_SDP.replace("a=sendrecv", "a=sendonly").replace("2353687637", "2353687638")
INACTIVE_2543 = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0").replace("a=sendrecv", "a=inactive")
put("sdp_offer_answer", "sipp_offer", b"\x00" + SIPP_SDP.encode())
put("sdp_offer_answer", "baresip_offer", b"\x00" + BARESIP_SDP.encode())
put("sdp_offer_answer", "baresip_srtp_offer", b"\x04" + BARESIP_SRTP_SDP.encode())
put("sdp_offer_answer", "sipp_hold", b"\x11" + SIPP_HOLD_SDP.encode())
put("sdp_offer_answer", "rfc2543_hold", b"\x01" + INACTIVE_2543.encode())

INVITE = crlf("""INVITE sip:agent@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4711-1-0
From: sipp <sip:sipp@127.0.0.1:5070>;tag=4711SIPpTag001
To: <sip:agent@127.0.0.1:5060>
Call-ID: 1-4711@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:sipp@127.0.0.1:5070;transport=UDP>
Max-Forwards: 70
Session-Expires: 1800;refresher=uac
Supported: timer, replaces
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
Content-Type: application/sdp
Content-Length: %d
""") % len(SIPP_SDP)
put("sip_message", "sipp_invite", INVITE + "\r\n" + SIPP_SDP)
put("sip_message", "ok_200", crlf("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.abc;received=127.0.0.1;rport=5060
Record-Route: <sip:127.0.0.1:5080;lr>
From: <sip:agent@127.0.0.1>;tag=a1b2
To: <sip:bob@127.0.0.1:5070>;tag=c3d4
Call-ID: 7f3a-1@127.0.0.1
CSeq: 2 INVITE
Contact: <sip:bob@127.0.0.1:5070>
Content-Length: 0
""") + "\r\n")
put("sip_message", "refer", crlf("""REFER sip:agent@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-r1
f: <sip:bob@127.0.0.1:5070>;tag=77
t: <sip:agent@127.0.0.1:5060>;tag=88
i: ref-1@127.0.0.1
CSeq: 3 REFER
Refer-To: <sip:carol@127.0.0.1:5090?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>
Referred-By: <sip:bob@127.0.0.1:5070>
m: <sip:bob@127.0.0.1:5070>
l: 0
""") + "\r\n")
# RFC 4475 3.1.1.1, a short tortuous INVITE (abridged).
put("sip_message", "rfc4475_wsinv", crlf("""INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\"" <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 0
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33
""") + "\r\n")
put("sip_message", "options_bad_cseq", crlf("""OPTIONS sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0
""") + "\r\n")

def rtp(pt, seq, ts, ssrc, payload, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload

ulaw = bytes((0xff - (i * 7) % 40) for i in range(160))
RTP_PCMU = rtp(0, 1000, 160000, 0xdeadbeef, ulaw)
DTMF_START = rtp(101, 1001, 160160, 0xdeadbeef, bytes([5, 0x0a, 0x00, 0xa0]), marker=True)
DTMF_END = rtp(101, 1003, 160160, 0xdeadbeef, bytes([5, 0x8a, 0x03, 0x20]))
# RTCP SR with one report block, then SDES CNAME (a compound packet).
SR = struct.pack("!BBHI", 0x81, 200, 12, 0xdeadbeef) + struct.pack("!IIIII", 0xeb6e4d2a, 0x1999999a, 160000, 50, 8000) \
    + struct.pack("!IIIIII", 0x12345678, 0x01000002, 1010, 3, 0xeb6e4d00, 0x00008000)
cname = b"bob@127.0.0.1"
sdes_items = bytes([1, len(cname)]) + cname + b"\x00"
sdes_items += b"\x00" * ((4 - (4 + len(sdes_items)) % 4) % 4)
SDES = struct.pack("!BBHI", 0x81, 202, (4 + len(sdes_items)) // 4, 0xdeadbeef) + sdes_items
RTCP = SR + SDES
BYE = struct.pack("!BBHI", 0x81, 203, 1, 0xdeadbeef)

def rec(kind, data):
    return struct.pack("!BH", kind, len(data)) + data

TICK = rec(5, b"")
# media_receive: setup byte, then [kind][len][bytes] (0 raw RTP, 1 raw RTCP,
# 2 sealed RTP, 3 sealed RTCP, 4 sealed RTCP muxed, 5 tick, 6 restart).
stream = b"".join(rec(2, rtp(0, 1000 + i, 160000 + 160 * i, 0xdeadbeef, ulaw)) + TICK for i in range(4))
put("media_receive", "pcmu_rtp_and_sr", b"\x00" + stream + rec(1, RTCP) + TICK + rec(4, RTCP))
put("media_receive", "pcmu_dtmf", b"\x00" + rec(0, RTP_PCMU) + rec(0, DTMF_START) + rec(0, DTMF_END) + TICK + rec(1, BYE))
put("media_receive", "srtp_pcmu", b"\x04" + stream + rec(3, RTCP) + rec(6, b"\x01") + TICK + rec(0, RTP_PCMU + b"\x00" * 10))
put("media_receive", "srtp32_mki_dtmf", b"\x5c" + rec(2, DTMF_START) + rec(2, DTMF_END) + rec(4, RTCP) + TICK)
opus_silence = bytes([0xf8, 0xff, 0xfe])  # an Opus CELT 20 ms silence frame
put("media_receive", "opus_rtp", b"\x03" + b"".join(rec(2, rtp(111, i, 960 * i, 7, opus_silence)) + TICK for i in range(3)))
put("media_receive", "g722_rtp", b"\x02" + b"".join(rec(0, rtp(9, i, 160 * i, 7, b"\x55" * 160)) + TICK for i in range(3)))

# dtmf_events: sender setup, then [kind][len][bytes] (0 RTP, 1 dtmf-relay, 2 dtmf).
setup = bytes([0]) + struct.pack("!HHI", 100, 60, 0xfffff000) + bytes([4]) + b"1#A9"
put("dtmf_events", "rtp_event_packets", setup + rec(0, DTMF_START) + rec(0, DTMF_END) + rec(0, DTMF_END) + rec(0, RTP_PCMU))
put("dtmf_events", "info_bodies", setup + rec(1, b"Signal=5\r\nDuration=160\r\n") + rec(2, b"#\r\n") + rec(1, b"Signal=!\r\n"))
put("dtmf_events", "opus_rate_keys", bytes([2]) + struct.pack("!HHI", 40, 40, 0) + bytes([6]) + b"*0dC55")

# jitter_sequence: [clock][min][max/4], 8-byte records.
def J(*b):
    return bytes(b) + bytes(8 - len(b))
steady = bytes([0, 20, 50]) + b"".join(J(0, 20, 0, 160) + J(2, 0) for _ in range(20))
reorder = bytes([0, 20, 50]) + J(0, 20, 0, 160) + J(1, 2, 0, 2, 16, 0, 0, 20) + J(1, 0xff, 0xff, 0xff, 16, 0, 0, 1) + \
    J(2, 40) + J(1, 3, 0, 3, 16, 1, 0, 20) + J(3, 0xff, 0xff, 0xff, 0xff, 0xff, 0x60, 20) + J(0, 20, 0, 160) + J(2, 20) * 6
opus = bytes([2, 40, 100]) + b"".join(J(0, 20 + (i * 7) % 30, i * 11 % 256, 120) + J(2, 20) for i in range(25))
put("jitter_sequence", "steady_8k", steady)
put("jitter_sequence", "reorder_wrap_ssrc", reorder)
put("jitter_sequence", "jittery_48k", opus)

doc = json.load(open("../proto/openrpc.json"))
for i, m in enumerate(doc["methods"]):
    for ex in m.get("examples", []):
        params = {p["name"]: p["value"] for p in ex.get("params", [])}
        line = json.dumps({"jsonrpc": "2.0", "id": i, "method": m["name"], "params": params})
        put("control_rpc_line", m["name"].replace(".", "_"), line + "\n")
put("control_rpc_line", "notification_list", '{"jsonrpc":"2.0","method":"call.list"}\n')
put("control_rpc_line", "bad_version", '{"jsonrpc":"1.0","id":"x","method":"call.hangup","params":{"call":"c1"}}\n')

put("config_toml", "example", open("../examples/softphoned.toml").read())
put("config_toml", "accounts", """[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
allow_from = ["127.0.0.1"]
[media]
codecs = ["opus", "G722", "PCMU"]
srtp = "optional"
[[accounts]]
id = "main"
aor = "sip:agent@pbx.example.com"
registrar = "sip:pbx.example.com"
password = "secret"
transport = "tcp"
codecs = ["PCMA"]
""")
