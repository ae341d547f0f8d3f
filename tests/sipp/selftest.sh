#!/usr/bin/env bash
# Runs every scenario in this folder against a sipp counterpart on
# 127.0.0.1 and checks sipp's exit codes, so the scenarios can be
# re-verified without the daemon.  Needs sipp and sox; with tcpdump and
# tshark (and root) it also counts the RTP of the tone pairs.
#
#   tests/sipp/selftest.sh            # all pairs
#   KEEP=1 tests/sipp/selftest.sh     # keep the work dir (logs, pcaps)
#
# Every sipp runs with -timeout, and the whole script is wrapped in
# `timeout`, so nothing can hang.  Exit status 0 = every check passed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/sipp-selftest.XXXXXX)
cd "$WORK" || exit 2
# rtp_stream reads the tone relative to the working directory.
sox -n -r 8000 -c 1 -e u-law -t raw tone1k.ulaw synth 30 sine 1000 || exit 2

FAILS=0
UAS_PORT=5070
UAC_PORT=5071
UAS_MP=6000
UAC_MP=6010 # sipp binds -mp and -mp+2: keep instances 4 apart

# sipp flags shared by every run (see README.md).  -timeout_error
# makes -timeout a hard bound (exit 255); without it sipp waits for a
# call in progress forever.
common() { # tag
  # -key hdr: the caller scenarios place [hdr] (a header the tests vary)
  # in their INVITE, as tests/common/sipp.rs gives it.
  COMMON=(-i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1
    -m 1 -nostdin -timeout 60 -timeout_error
    -key hdr "X-Softphoned-Test: plain"
    -recv_timeout 10000
    -trace_msg -message_file "$1.msg"
    -trace_err -error_file "$1.err"
    -trace_logs -log_file "$1.log")
}

check() { # name got want
  if [ "$2" = "$3" ]; then
    echo "ok   $1 (exit $2)"
  else
    echo "FAIL $1 (exit $2, want $3)"
    FAILS=$((FAILS + 1))
  fi
}

capture_start() { # pcap
  CAP_PID=
  command -v tcpdump >/dev/null || return 0
  # --immediate-mode: otherwise packets of the last ~1 s are still in
  # libpcap's buffer when tcpdump is stopped, and are lost.
  tcpdump -i lo -n -U --immediate-mode -w "$1" \
    "udp and host 127.0.0.1 and portrange $UAS_MP-$((UAC_MP + 1))" >/dev/null 2>&1 &
  CAP_PID=$!
  sleep 1 # tcpdump needs a moment before it captures
}

capture_stop() {
  [ -n "$CAP_PID" ] || return 0
  sleep 0.3
  kill "$CAP_PID" 2>/dev/null
  wait "$CAP_PID" 2>/dev/null
}

rtp_count() { # pcap dst_port -> packets of PT 0 sent to that port
  tshark -r "$1" -d "udp.port==$2,rtp" -Y "rtp && udp.dstport==$2 && rtp.p_type==0" \
    -T fields -e rtp.seq 2>/dev/null | wc -l
}

# pair NAME WANT_UAS WANT_UAC UAS_SCENARIO [ARGS...] -- UAC_SCENARIO [ARGS...]
# Scenario paths are relative to this folder unless absolute.  Later
# flags override the common ones (sipp keeps the last value).
pair() {
  local name=$1 want_uas=$2 want_uac=$3
  shift 3
  local uas_args=() uac_args=()
  while [ "$1" != -- ]; do uas_args+=("$1"); shift; done
  shift
  uac_args=("$@")
  local uas_sf=${uas_args[0]} uac_sf=${uac_args[0]}
  [[ $uas_sf = /* ]] || uas_sf=$HERE/$uas_sf
  [[ $uac_sf = /* ]] || uac_sf=$HERE/$uac_sf

  common "$name.uas"
  sipp -sf "$uas_sf" -p $UAS_PORT -mp $UAS_MP "${COMMON[@]}" "${uas_args[@]:1}" \
    >"$name.uas.out" 2>&1 &
  local uas=$!
  sleep 0.5 # let the UAS bind before the UAC sends
  common "$name.uac"
  sipp -sf "$uac_sf" 127.0.0.1:$UAS_PORT -s agent -p $UAC_PORT -mp $UAC_MP \
    "${COMMON[@]}" "${uac_args[@]:1}" >"$name.uac.out" 2>&1
  local rc_uac=$?
  wait $uas
  local rc_uas=$?
  check "$name: uas" "$rc_uas" "$want_uas"
  check "$name: uac" "$rc_uac" "$want_uac"
}

# 1. Tone UAS, caller hangs up after 3 s; both sides stream PCMU.
capture_start tone.pcap
pair tone 0 0 uas_tone.xml -- uac_call_tone.xml -d 3000
capture_stop
if [ -n "$CAP_PID" ] && command -v tshark >/dev/null; then
  n_uas=$(rtp_count tone.pcap $UAC_MP) # sent by the UAS to the UAC
  n_uac=$(rtp_count tone.pcap $UAS_MP)
  # 3 s at 50 packets/s; allow slack for start-up and scheduling.
  [ "$n_uas" -ge 130 ] && [ "$n_uas" -le 170 ]
  check "tone: RTP from uas ($n_uas pkts)" $? 0
  [ "$n_uac" -ge 130 ] && [ "$n_uac" -le 170 ]
  check "tone: RTP from uac ($n_uac pkts)" $? 0
fi

# 1b. Tone UAS hangs up itself after 2 s.
pair tone_bye 0 0 uas_tone_bye.xml -d 2000 -- uac_call_wait_bye.xml

# 1c. The caller holds (sendonly, tone stopped) for 1 s and resumes.
pair hold_tone 0 0 uas_slow_reinvite.xml -- uac_hold_tone.xml -d 1000

# 1c. Plain caller (no RTP) against the tone UAS.
pair call 0 0 uas_tone.xml -- uac_call.xml -d 1000

# 1d. An offer without PCMU must fail uas_tone (its check_it regex).
# sipp only marks the call failed and carries on, so the caller still
# gets its 200 and succeeds.
sed -e 's| RTP/AVP 0 8 101| RTP/AVP 8 101|' -e '/rtpmap:0 /d' \
  "$HERE/uac_call.xml" >"$WORK/uac_call_nopcmu.xml"
pair nopcmu 1 0 uas_tone.xml -- "$WORK/uac_call_nopcmu.xml" -d 500

# 2. Busy.
pair busy 0 0 uas_busy.xml -- uac_call_rejected.xml

# 6. Decline.
pair decline 0 0 uas_decline.xml -- uac_call_rejected.xml

# 3 + 5. Ringing UAS, caller cancels after 1 s, then at once.
pair cancel 0 0 uas_ring_cancel.xml -- uac_cancel.xml -d 1000
pair cancel_now 0 0 uas_ring_cancel.xml -- uac_cancel.xml -d 0

# 5. The 487 before the CANCEL's 200 (uac_cancel.xml's other branch).
pair cancel_487_first 0 0 selftest/uas_487_first.xml -- uac_cancel.xml -d 200

# 3 (negative).  No CANCEL ever comes: the caller gives up silently
# (-default_behaviors none, else its abort would send a CANCEL), and the
# ringing UAS must not exit 0 (255 here: its -timeout 5 fires first).
pair nocancel 255 1 uas_ring_cancel.xml -timeout 5 -- \
  uac_call.xml -recv_timeout 2000 -default_behaviors none

echo "work dir: $WORK"
[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
if [ "$FAILS" -eq 0 ]; then echo "ALL OK"; else echo "$FAILS check(s) failed"; fi
[ "$FAILS" -eq 0 ]
