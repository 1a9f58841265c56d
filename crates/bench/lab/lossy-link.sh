#!/usr/bin/env bash
# The lossy-link lab: our download against TCP (curl from a static file server) over a real
# kernel path with a 100 Mbit/s bottleneck, 20 ms of round-trip delay and random loss, plus
# fairness among three of our downloads and one of ours sharing the link with a TCP download.
#
# Three network namespaces in a line, joined by veth pairs:
#   msglab-srv (10.77.1.1) --> msglab-rtr (10.77.1.2 | 10.77.2.1) --> msglab-cli (10.77.2.2)
# - bottleneck: tc tbf on the router's way out to the client, 100 Mbit/s, a queue of about one
#   BDP. It sits on a router of its own, as on a real path: a queue on the server's own
#   interface would hold the server's TCP back by TCP small queues (TSQ allows a socket only
#   about a millisecond of data below it), which starved TCP in an earlier version of this lab;
# - delay: packets arriving at the client are redirected (tc mirred) through a TUN device and
#   a user-space delay line (delayline.py; this kernel has no netem);
# - loss: nftables drops a random share of the packets that reach the client (numgen random).
#
# Needs root, iproute2, nftables, python3 and curl; prints "skipped: ..." and exits 0 without
# them. Build first: cargo build --release. Usage: crates/bench/lab/lossy-link.sh [SIZE_MB]
# (LAB_SECTIONS="loss fair share" picks parts: the loss table, three-way fairness, sharing).
set -euo pipefail
cd "$(dirname "$0")/../../.."
SIZE_MB=${1:-64}
RATE=100mbit
DELAY_MS=20
BIN=target/release
SRV=msglab-srv
RTR=msglab-rtr
CLI=msglab-cli
SRV_IP=10.77.1.1

skip() { echo "skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, tc, nftables)"
for tool in ip tc nft python3 curl; do
  command -v "$tool" >/dev/null || skip "needs $tool (apt-get install -y iproute2 nftables python3 curl)"
done
[ -x "$BIN/messenger-server" ] && [ -x "$BIN/messenger" ] || skip "build first: cargo build --release"
[ -c /dev/net/tun ] || skip "needs /dev/net/tun"

WORK=$(mktemp -d /dev/shm/msglab.XXXXXX)
PIDS=()
# A namespace may only pick an allowed TCP congestion controller: allow CUBIC for the run.
ALLOWED=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
cleanup() {
  sysctl -qw net.ipv4.tcp_allowed_congestion_control="$ALLOWED" || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$SRV" "$RTR" "$CLI"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_quietly() { for ns in "$SRV" "$RTR" "$CLI"; do ip netns del "$ns" 2>/dev/null || true; done; }
cleanup_quietly

in_srv() { ip netns exec "$SRV" "$@"; }
in_rtr() { ip netns exec "$RTR" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }

# --- the link ---------------------------------------------------------------------------
for ns in "$SRV" "$RTR" "$CLI"; do ip netns add "$ns"; ip netns exec "$ns" ip link set lo up; done
ip link add veth-s netns "$SRV" type veth peer name veth-rs netns "$RTR"
ip link add veth-rc netns "$RTR" type veth peer name veth-c netns "$CLI"
in_srv ip addr add "$SRV_IP/24" dev veth-s
in_rtr ip addr add 10.77.1.2/24 dev veth-rs
in_rtr ip addr add 10.77.2.1/24 dev veth-rc
in_cli ip addr add 10.77.2.2/24 dev veth-c
in_srv ip link set veth-s up
in_rtr ip link set veth-rs up
in_rtr ip link set veth-rc up
in_cli ip link set veth-c up
in_srv ip route add default via 10.77.1.2
in_cli ip route add default via 10.77.2.1
in_rtr sysctl -qw net.ipv4.ip_forward=1
# Segmentation offloads would let one "packet" on the veth be 64 KiB: cut at the MTU, as a
# real link does.
in_srv ethtool -K veth-s tso off gso off gro off 2>/dev/null || true
in_rtr ethtool -K veth-rs tso off gso off gro off 2>/dev/null || true
in_rtr ethtool -K veth-rc tso off gso off gro off 2>/dev/null || true
in_cli ethtool -K veth-c tso off gso off gro off 2>/dev/null || true
# Bottleneck: 100 Mbit/s from the router to the client, a queue of about one BDP (20 ms at
# 100 Mbit/s).
in_rtr tc qdisc add dev veth-rc root tbf rate "$RATE" burst 16kb limit 250kb
# Delay: what reaches the client goes through the delay line first.
# (ip netns exec directly, not through in_cli: $! must be the process itself for cleanup)
ip netns exec "$CLI" python3 crates/bench/lab/delayline.py tun-delay "$DELAY_MS" \
  > "$WORK/delayline.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do in_cli ip link show tun-delay >/dev/null 2>&1 && break; sleep 0.1; done
in_cli ip link set tun-delay up
in_cli sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
in_cli sysctl -qw net.ipv4.conf.tun-delay.rp_filter=0 net.ipv4.conf.veth-c.rp_filter=0
in_cli tc qdisc add dev veth-c handle ffff: ingress
in_cli tc filter add dev veth-c parent ffff: protocol ip u32 match u32 0 0 \
  action mirred egress redirect dev tun-delay

# Loss: a random share of the packets that come out of the delay line into the client. They
# are single packets there (a TUN device takes no segmentation offload), so a 64 KiB batch of
# datagrams or of TCP segments is not dropped as one, as it would be on the server's side.
set_loss() { # percent, as a whole number or with one decimal
  local per_mille
  per_mille=$(python3 -c "print(int(round(float('$1') * 10)))")
  in_cli nft flush ruleset
  if [ "$per_mille" -gt 0 ]; then
    in_cli nft add table inet lab
    in_cli nft add chain inet lab in '{ type filter hook prerouting priority 0; }'
    in_cli nft add rule inet lab in iifname tun-delay numgen random mod 1000 "<" "$per_mille" counter drop
  fi
}

# --- what is served ---------------------------------------------------------------------
mkdir -p "$WORK/files" "$WORK/dl"
head -c "$((SIZE_MB * 1000 * 1000))" /dev/urandom > "$WORK/files/big.bin"
for i in 1 2 3; do cp "$WORK/files/big.bin" "$WORK/files/big$i.bin"; done
ip netns exec "$SRV" "$BIN/messenger-server" --bind $SRV_IP:50000 --files "$WORK/files" \
  --data-dir "$WORK/data" --udp-ports 55000-55009 > "$WORK/server.log" 2>&1 &
PIDS+=($!)
(cd "$WORK/files" && exec ip netns exec "$SRV" python3 -m http.server 8080 --bind $SRV_IP) \
  > "$WORK/http.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  in_cli bash -c "exec 3<>/dev/tcp/$SRV_IP/50000" 2>/dev/null && break
  sleep 0.1
done
# Let the server hash the files (a running server has them hashed already).
sleep 2

now() { date +%s.%N; }
# mbit BYTES START END
mbit() { python3 -c "print(f'{$1 * 8 / ($3 - $2) / 1e6:.1f}')"; }

ours() { # NAME FILE -> prints Mbit/s
  local start end
  start=$(now)
  in_cli "$BIN/messenger" --server $SRV_IP:50000 --known-servers "$WORK/known_servers" --name "$1" --download-dir "$WORK/dl" \
    get "$2" -o "$WORK/dl/$1.bin" > /dev/null 2>> "$WORK/client.log"
  end=$(now)
  rm -f "$WORK/dl/$1.bin"
  mbit "$((SIZE_MB * 1000 * 1000))" "$start" "$end"
}

tcp() { # NAME FILE -> prints Mbit/s
  local start end
  start=$(now)
  in_cli curl -s -o "$WORK/dl/$1.curl" "http://$SRV_IP:8080/$2"
  end=$(now)
  rm -f "$WORK/dl/$1.curl"
  mbit "$((SIZE_MB * 1000 * 1000))" "$start" "$end"
}

sysctl -qw net.ipv4.tcp_allowed_congestion_control="$ALLOWED cubic bbr"
tcp_cc() { in_srv sysctl -qw net.ipv4.tcp_congestion_control="$1"; }
pct() { python3 -c "print(f'{$1:.0f}')"; }

SECTIONS=${LAB_SECTIONS:-loss fair share}
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

if section loss; then
echo
echo "link: $RATE, RTT ${DELAY_MS} ms (plus the path's own), ${SIZE_MB} MB per download;"
echo "Mbit/s from start to verified file (ours) or last byte (curl); % of the link in brackets"
echo
echo "| loss | messenger | TCP (curl), CUBIC | TCP (curl), BBR |"
echo "|---|---|---|---|"
for loss in 0 1 5; do
  set_loss "$loss"
  a=$(ours solo big.bin)
  tcp_cc cubic
  b=$(tcp solo big.bin)
  tcp_cc bbr
  c=$(tcp solo big.bin)
  echo "| $loss % | $a ($(pct "$a") %) | $b ($(pct "$b") %) | $c ($(pct "$c") %) |"
  [ "$loss" = 0 ] || in_cli nft list ruleset | grep -o 'counter packets [0-9]*' \
    | sed 's/^/    dropped (all three runs): /' >&2
done
sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -o 'lost=[0-9]* .*min_rtt_us=[0-9]*' | tail -1 \
  | sed 's/^/    our last transfer: /' >&2

fi
set_loss 0

r1=$WORK/r1; r2=$WORK/r2; r3=$WORK/r3
if section fair; then
echo
echo "three of our downloads at once (0 % loss):"
ours one big1.bin > "$r1" & p1=$!
ours two big2.bin > "$r2" & p2=$!
ours three big3.bin > "$r3" & p3=$!
wait $p1 $p2 $p3
python3 - "$(cat "$r1")" "$(cat "$r2")" "$(cat "$r3")" <<'PY'
import sys
x = [float(v) for v in sys.argv[1:]]
jain = sum(x) ** 2 / (len(x) * sum(v * v for v in x))
print(f"  each: {', '.join(f'{v:.1f}' for v in x)} Mbit/s; sum {sum(x):.1f}; Jain's fairness {jain:.3f}")
PY

fi

if section share; then
# Sharing: one of ours and one TCP download start together on a file too large to finish and
# both stop after SHARE_SECS; what each got in that time is its share. SHARE_ROUNDS rounds,
# the TCP controllers taking turns; the median share is reported.
SHARE_SECS=${SHARE_SECS:-20}
SHARE_ROUNDS=${SHARE_ROUNDS:-3}
head -c "$((SHARE_SECS * 20 * 1000 * 1000))" /dev/urandom > "$WORK/files/huge.bin"
in_cli "$BIN/messenger" --server $SRV_IP:50000 --known-servers "$WORK/known_servers" --name warm get huge.bin -o "$WORK/dl/warm.bin" \
  > /dev/null 2>&1 || true  # the server hashes it once
rm -f "$WORK"/dl/warm.bin*
echo "one of ours and one TCP download sharing the link for ${SHARE_SECS} s (0 % loss), ${SHARE_ROUNDS} rounds:"
for round in $(seq "$SHARE_ROUNDS"); do
  for cc in cubic bbr; do
    tcp_cc "$cc"
    rm -f "$WORK"/dl/share*
    in_cli timeout -s KILL "$SHARE_SECS" "$BIN/messenger" --server $SRV_IP:50000 --known-servers "$WORK/known_servers" --name share \
      get huge.bin -o "$WORK/dl/share.bin" > /dev/null 2>&1 &
    p1=$!
    in_cli curl -s --max-time "$SHARE_SECS" -o "$WORK/dl/share.curl" \
      -w '%{size_download}' "http://$SRV_IP:8080/huge.bin" > "$r2" 2>/dev/null &
    p2=$!
    wait $p1 $p2 || true
    python3 - "$WORK/dl/share.bin.part.meta" "$(cat "$r2")" "$SHARE_SECS" "$cc" "$round" \
      "$WORK/shares-$cc" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["contiguous"]
tcp, secs, cc, rnd, record = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
mbit = lambda b: b * 8 / secs / 1e6
share = 100 * tcp / (ours + tcp)
print(f"  round {rnd}, TCP {cc}: messenger {mbit(ours):.1f} Mbit/s, TCP {mbit(tcp):.1f} Mbit/s "
      f"(TCP keeps {share:.0f} % of what the two moved)")
with open(record, "a") as f:
    f.write(f"{share}\n")
PY
    sleep 1
  done
done
for cc in cubic bbr; do
  python3 - "$WORK/shares-$cc" "$cc" <<'PY'
import statistics, sys
shares = [float(line) for line in open(sys.argv[1])]
print(f"  median: TCP {sys.argv[2]} keeps {statistics.median(shares):.0f} % of the link")
PY
done
fi
