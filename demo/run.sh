#!/usr/bin/env bash
# The local demo (README's first command). Debian 12, as root.
#
# Two network namespaces, vwdemo-a and vwdemo-b, joined by a veth pair; in
# each, HAProxy on 127.0.0.1:8080, Keepalived (unicast VRRP, VIP 10.213.0.100)
# and vip-watchdog on 127.0.0.1:9842. Node a (priority 150) becomes MASTER;
# then the demo stops HAProxy on a and you watch b take over, as Keepalived
# reports it and as the watchdogs' metrics show it. Everything is removed on
# exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib.sh

need_root
install_packages keepalived haproxy iproute2 curl procps
ensure_rust
echo "== building vip-watchdog"
cargo build --quiet --locked --bin vip-watchdog
bin="$CARGO_TARGET_DIR/debug/vip-watchdog"

vip=10.213.0.100
dir=$(mktemp -d /tmp/vip-watchdog-demo.XXXXXX)
cleanup() {
    for ns in vwdemo-a vwdemo-b; do
        # SIGTERM first (Keepalived stops and reaps its children), then
        # SIGKILL whatever is left; at most 3 s.
        sig=TERM
        for i in $(seq 30); do
            pids=$(ip netns pids "$ns" 2>/dev/null) || break
            [ -n "$pids" ] || break
            [ "$i" -le 10 ] || sig=KILL
            echo "$pids" | xargs -r kill -s "$sig" 2>/dev/null || true
            sleep 0.1
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup_done=$(ip netns list | grep -c '^vwdemo-' || true)
[ "$cleanup_done" = 0 ] || { echo "== removing a previous demo's namespaces"; cleanup; dir=$(mktemp -d /tmp/vip-watchdog-demo.XXXXXX); }

in_ns() { local ns=$1; shift; ip netns exec "vwdemo-$ns" "$@"; }
wd() { in_ns "$1" curl -sf --max-time 2 "http://127.0.0.1:9842$2"; }

fill() { # fill TEMPLATE NODE PRIORITY ADDR PEER
    sed -e "s|@NAME@|$2|g" -e "s|@FIFO@|$dir/$2/keepalived.fifo|g" -e "s|@DIR@|$dir/$2|g" \
        -e "s|@PRIORITY@|$3|g" -e "s|@ADDR@|$4|g" -e "s|@PEER@|$5|g" -e "s|@VIP@|$vip|g" \
        -e "s|@LISTEN@|127.0.0.1:9842|g" -e "s|@LOG_FORMAT@|text|g" -e "s|@JSON_DUMP@|true|g" \
        -e "s|@NOTIFY@||g" -e "s|@CLOUD@||g" "$1"
}

echo "== namespaces vwdemo-a and vwdemo-b, joined by a veth pair"
for n in a b; do
    ip netns add "vwdemo-$n"
    ip -n "vwdemo-$n" link set lo up
    mkdir -p "$dir/$n"
done
ip link add eth0 netns vwdemo-a type veth peer name eth0 netns vwdemo-b
ip -n vwdemo-a addr add 10.213.0.1/24 dev eth0
ip -n vwdemo-b addr add 10.213.0.2/24 dev eth0
ip -n vwdemo-a link set eth0 up
ip -n vwdemo-b link set eth0 up

start_node() { # start_node NODE PRIORITY ADDR PEER
    local n=$1 d="$dir/$1"
    fill lab/keepalived.conf.in "$@" > "$d/keepalived.conf"
    fill lab/watchdog.toml.in "$@" > "$d/watchdog.toml"
    cp lab/haproxy.cfg "$d/haproxy.cfg"
    # The watchdog first: it creates the FIFO that Keepalived will write to.
    in_ns "$n" "$bin" run --config "$d/watchdog.toml" 2> "$d/watchdog.log" &
    # Not through in_ns: $! must be HAProxy's own pid (ip netns exec execs it).
    ip netns exec "vwdemo-$n" haproxy -db -f "$d/haproxy.cfg" > "$d/haproxy.log" 2>&1 &
    echo $! > "$d/haproxy.pid"
    for _ in $(seq 50); do [ -p "$d/keepalived.fifo" ] && break; sleep 0.1; done
    TMPDIR="$d" in_ns "$n" keepalived --dont-fork --vrrp --log-console -f "$d/keepalived.conf" \
        -p "$d/keepalived.pid" -r "$d/keepalived_vrrp.pid" -c "$d/keepalived_checkers.pid" \
        > "$d/keepalived.log" 2>&1 &
}
echo "== starting HAProxy, Keepalived and vip-watchdog on each node"
start_node a 150 10.213.0.1 10.213.0.2
start_node b 100 10.213.0.2 10.213.0.1

state_of() { # the VRRP state node $1's watchdog reports for VI_1
    wd "$1" /metrics 2>/dev/null | awk '/^vip_watchdog_vrrp_state\{/ && /vrrp_instance="VI_1"/ && $NF == 1 {
        match($0, /state="[a-z]+"/); print substr($0, RSTART + 7, RLENGTH - 8) }'
}
wait_state() { # wait_state NODE STATE SECONDS
    local deadline=$((SECONDS + $3))
    while [ "$(state_of "$1")" != "$2" ]; do
        [ $SECONDS -lt "$deadline" ] || die "node $1 did not report $2 within $3 s (logs in $dir)"
        sleep 0.2
    done
}
show() {
    for n in a b; do
        printf '   node %s: VI_1 %-7s probe_up=%s keepalived_up=%s VIP on interface: %s\n' "$n" "$(state_of "$n")" \
            "$(wd "$n" /metrics | awk '/^vip_watchdog_probe_up\{/ {print $NF}')" \
            "$(wd "$n" /metrics | awk '/^vip_watchdog_keepalived_up\{/ {print $NF}')" \
            "$(ip -n "vwdemo-$n" -o addr show dev eth0 | grep -q " $vip/" && echo yes || echo no)"
    done
}

echo "== waiting for the pair to settle (Keepalived takes about 4 s)"
wait_state a master 30
wait_state b backup 30
show

echo
echo "== failover: stopping HAProxy on node a (the MASTER)"
kill "$(cat "$dir/a/haproxy.pid")"
wait_state b master 20
wait_state a fault 20
show

echo
echo "== what the watchdogs logged about it"
grep -h -E "state (changed|learned)|probe health|keepalived is" "$dir/a/watchdog.log" | sed 's/^/   a: /' | tail -n 4
grep -h -E "state (changed|learned)|probe health|keepalived is" "$dir/b/watchdog.log" | sed 's/^/   b: /' | tail -n 3

echo
echo "== node b's metrics (excerpt)"
wd b /metrics | grep -E '^vip_watchdog_(vrrp_state|vrrp_transitions_total|keepalived_up|probe_up)' | grep -v ' 0$' | sed 's/^/   /'

echo
echo "The pair is running. In another shell, try:"
echo "   ip netns exec vwdemo-b curl -s 127.0.0.1:9842/v1/status"
echo "   ip netns exec vwdemo-a curl -s 127.0.0.1:9842/metrics"
echo "   kill -TERM \$(cat $dir/b/keepalived.pid)     # stop Keepalived on the new MASTER"
if [ -t 0 ]; then
    read -r -p "Press Enter to stop the demo and remove everything. "
fi
