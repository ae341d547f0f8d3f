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
UAC_MP=6010

# sipp flags shared by every run (see README.md).
common() {
  local tag=$1
  echo -i 127.0.0.1 -m 1 -nostdin -timeout 60 -recv_timeout 10000 \
    -trace_msg -message_file "$tag.msg" \
    -trace_err -error_file "$tag.err" \
    -trace_logs -log_file "$tag.log"
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
  tcpdump -i lo -n -U -w "$1" "udp and host 127.0.0.1 and portrange $UAS_MP-$((UAC_MP + 1))" \
    >/dev/null 2>&1 &
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

# pair NAME WANT_UAS WANT_UAC "UAS scenario + args" "UAC scenario + args"
pair() {
  local name=$1 want_uas=$2 want_uac=$3 uas_args=$4 uac_args=$5
  # shellcheck disable=SC2046,SC2086
  sipp -sf "$HERE"/$uas_args -p $UAS_PORT -mp $UAS_MP $(common "$name.uas") \
    >"$name.uas.out" 2>&1 &
  local uas=$!
  sleep 0.5 # let the UAS bind before the UAC sends
  # shellcheck disable=SC2046,SC2086
  sipp -sf "$HERE"/$uac_args 127.0.0.1:$UAS_PORT -s agent -p $UAC_PORT -mp $UAC_MP \
    $(common "$name.uac") >"$name.uac.out" 2>&1
  local rc_uac=$?
  wait $uas
  local rc_uas=$?
  check "$name: uas" "$rc_uas" "$want_uas"
  check "$name: uac" "$rc_uac" "$want_uac"
}

# 1. Tone UAS, caller hangs up after 3 s; both sides stream PCMU.
capture_start tone.pcap
pair tone 0 0 "uas_tone.xml" "uac_call_tone.xml -d 3000"
capture_stop
if [ -n "$CAP_PID" ] && command -v tshark >/dev/null; then
  n_uas=$(rtp_count tone.pcap $UAC_MP) # sent by the UAS to the UAC
  n_uac=$(rtp_count tone.pcap $UAS_MP)
  # 3 s at 50 packets/s; allow slack for start-up and scheduling.
  [ "$n_uas" -ge 130 ] && [ "$n_uas" -le 170 ]; check "tone: RTP from uas ($n_uas pkts)" $? 0
  [ "$n_uac" -ge 130 ] && [ "$n_uac" -le 170 ]; check "tone: RTP from uac ($n_uac pkts)" $? 0
fi

# 1b. Tone UAS hangs up itself after 2 s.
pair tone_bye 0 0 "uas_tone_bye.xml -d 2000" "uac_call_wait_bye.xml"

# 1c. Plain caller (no RTP) against the tone UAS.
pair call 0 0 "uas_tone.xml" "uac_call.xml -d 1000"

# 1d. An offer without PCMU must fail uas_tone (its check_it regex).
sed -e 's| RTP/AVP 0 8 101| RTP/AVP 8 101|' -e '/rtpmap:0 /d' \
  "$HERE/uac_call.xml" >"$WORK/uac_call_nopcmu.xml"
HERE_SAVE=$HERE
HERE=$WORK pair nopcmu 1 1 "../$(basename "$HERE_SAVE")/uas_tone.xml" "uac_call_nopcmu.xml -d 500" 2>/dev/null ||
  true

# 2. Busy.
pair busy 0 0 "uas_busy.xml" "uac_call_rejected.xml"

# 6. Reject with a status from the command line.
pair decline 0 0 "uas_reject.xml -set code 603 -set reason Decline" "uac_call_rejected.xml"
pair reject480 0 0 "uas_reject.xml -set code 480 -set reason Temporarily\ Unavailable" \
  "uac_call_rejected.xml"

# 3 + 5. Ringing UAS, caller cancels after 1 s.
pair cancel 0 0 "uas_ring_cancel.xml" "uac_cancel.xml -d 1000"

# 3 (negative). Without a CANCEL the ringing UAS must not exit 0: the
# caller here hangs up by timing out instead (no 200 ever comes).
pair nocancel 1 1 "uas_ring_cancel.xml" "uac_call.xml -recv_timeout 2000"

echo "work dir: $WORK"
[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
if [ "$FAILS" -eq 0 ]; then echo "ALL OK"; else echo "$FAILS check(s) failed"; fi
[ "$FAILS" -eq 0 ]
