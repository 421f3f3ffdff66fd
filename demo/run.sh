#!/usr/bin/env bash
# The local demo (README's first command). Debian 12, as root.
#
# Three network namespaces: vwdemo-a and vwdemo-b, joined by a veth pair,
# each with HAProxy on 127.0.0.1:8080, Keepalived (unicast VRRP, VIP
# 10.213.0.100), an IMDSv2 stub and vip-watchdog on 127.0.0.1:9842; and
# vwdemo-c, the "cloud", running moto's EC2 server (patched, see
# tests/moto/launch.py) with an Elastic IP on node a, and a client that
# asks the EIP's node every 10 ms. The watchdogs run as recommended: `own`
# mode (no notify script, they move the EIP themselves) with the peer
# channel between them. Node a (priority 150) becomes MASTER; then the demo
# stops HAProxy on a and you watch b take over, Keepalived's state and the
# EIP, and it ends on a summary: the failover latency the watchdog measured
# next to the client's view, and the requests the client lost. Everything
# is removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
install_packages keepalived haproxy iproute2 curl procps
ensure_rust
ensure_venv
echo "== building vip-watchdog"
cargo build --quiet --locked --bin vip-watchdog
bin="$CARGO_TARGET_DIR/debug/vip-watchdog"
py="$VENV/bin/python"
lab_py="$(pwd)/tests/moto/lab.py"

vip=10.213.0.100
namespaces="vwdemo-a vwdemo-b vwdemo-c"
dir=$(mktemp -d /tmp/vip-watchdog-demo.XXXXXX)
cleanup() {
    for ns in $namespaces; do
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
if ip netns list | grep -q '^vwdemo-'; then
    echo "== removing a previous demo's namespaces"
    keep=$dir; dir=/nonexistent; cleanup; dir=$keep
fi

in_ns() { local ns=$1; shift; ip netns exec "vwdemo-$ns" "$@"; }
wd() { in_ns "$1" curl -sf --max-time 2 "http://127.0.0.1:9842$2"; }
cloud() { in_ns c "$py" "$lab_py" "$@"; }

echo "== namespaces: nodes vwdemo-a and vwdemo-b, cloud vwdemo-c"
for n in a b c; do
    ip netns add "vwdemo-$n"
    ip -n "vwdemo-$n" link set lo up
    mkdir -p "$dir/$n/run"
done
ip link add eth0 netns vwdemo-a type veth peer name eth0 netns vwdemo-b
ip -n vwdemo-a addr add 10.213.0.1/24 dev eth0
ip -n vwdemo-b addr add 10.213.0.2/24 dev eth0
for n in a b; do ip -n "vwdemo-$n" link set eth0 up; done
ip link add cl0 netns vwdemo-a type veth peer name ca0 netns vwdemo-c
ip link add cl0 netns vwdemo-b type veth peer name cb0 netns vwdemo-c
ip -n vwdemo-a addr add 10.213.1.1/30 dev cl0
ip -n vwdemo-c addr add 10.213.1.2/30 dev ca0
ip -n vwdemo-b addr add 10.213.2.1/30 dev cl0
ip -n vwdemo-c addr add 10.213.2.2/30 dev cb0
for n in a b; do ip -n "vwdemo-$n" link set cl0 up; done
ip -n vwdemo-c link set ca0 up
ip -n vwdemo-c link set cb0 up

echo "== the cloud: moto's EC2 server, a VPC, two instances, an Elastic IP on a"
MOTO_RECORDER_FILEPATH="$dir/c/recording" \
    ip netns exec vwdemo-c "$py" tests/moto/launch.py 0.0.0.0 5000 > "$dir/c/moto.log" 2>&1 &
for _ in $(seq 100); do
    in_ns c curl -s -o /dev/null http://127.0.0.1:5000/moto-api/ 2>/dev/null && break
    sleep 0.1
done
ids=$(cloud setup http://127.0.0.1:5000)
json() { echo "$ids" | "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
alloc=$(json 'd["allocation_id"]')
eni_a=$(json 'd["nodes"]["a"]["eni"]')
eni_b=$(json 'd["nodes"]["b"]["eni"]')
eip_on() {
    case "$(cloud where http://127.0.0.1:5000 "$alloc")" in
        "$eni_a") echo "node a ($eni_a)" ;;
        "$eni_b") echo "node b ($eni_b)" ;;
        *) echo "nowhere" ;;
    esac
}
echo "   Elastic IP $alloc is on $(eip_on)"

fill() { # fill TEMPLATE NODE PRIORITY ADDR PEER CLOUD_TOML PEER_TOML
    local t
    t=$(<"$1")
    t=${t//@NAME@/$2}; t=${t//@PAIR@/lab}; t=${t//@FIFO@/$dir/$2/run/keepalived.fifo}; t=${t//@DIR@/$dir/$2}
    t=${t//@PRIORITY@/$3}; t=${t//@ADDR@/$4}; t=${t//@PEER@/$5}; t=${t//@VIP@/$vip}; t=${t//@VIP_ADDRESS@/$vip/32 dev eth0}
    t=${t//@LISTEN@/127.0.0.1:9842}; t=${t//@LOG_FORMAT@/text}; t=${t//@JSON_DUMP@/true}
    t=${t//@PROCESS_CHECK@/100ms}; t=${t//@PROBE_INTERVAL@/200ms}
    t=${t//@NOTIFY@/}; t=${t//@EXTRA_VIPS@/}; t=${t//@EXTRA_INSTANCES@/}; t=${t//@CLOUD@/$6}; t=${t//@PEER_CHANNEL@/$7}
    t=${t//@CHECK@//usr/bin/curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8080/health}
    t=${t//@CHECK_WEIGHT@/}; t=${t//@PROBE@/kind = \"http\"$'\n'url = \"http://127.0.0.1:8080/health\"}
    printf '%s\n' "$t"
}
cloud_toml() { # cloud_toml LINK_NUMBER
    cat <<EOF
[cloud]
endpoint = "http://10.213.$1.2:5000"
imds_endpoint = "http://127.0.0.1:8081"
verify_interval = "5s"
verify_jitter = "1s"

[[vip]]
kind = "eip"
name = "web"
allocation_id = "$alloc"
private_ip = "$vip"
vrrp_instance = "VI_1"
mode = "own"
EOF
}
peer_toml() { # peer_toml NODE ADDR PEER: the channel to the other watchdog
    cat <<EOF
[peer]
listen = "$2:9843"
address = "$3:9843"
secret_file = "$dir/$1/peer.key"
EOF
}

start_node() { # start_node NODE PRIORITY ADDR PEER LINK_NUMBER
    local n=$1 d="$dir/$1"
    local instance
    instance=$(json "d[\"nodes\"][\"$n\"][\"instance_id\"]")
    fill lab/keepalived.conf.in "$1" "$2" "$3" "$4" "" "" > "$d/keepalived.conf"
    # The same secret on both nodes, readable by the watchdog only.
    (umask 077; echo "the demo pair's shared secret, well over 32 bytes" > "$d/peer.key")
    fill lab/watchdog.toml.in "$1" "$2" "$3" "$4" "$(cloud_toml "$5")" "$(peer_toml "$1" "$3" "$4")" > "$d/watchdog.toml"
    fill lab/haproxy.cfg "$1" "$2" "$3" "$4" "" "" > "$d/haproxy.cfg"
    in_ns "$n" "$py" "$lab_py" imds 127.0.0.1 8081 "http://10.213.$5.2:5000" "$instance" > "$d/imds.log" 2>&1 &
    for _ in $(seq 100); do grep -q ready "$d/imds.log" 2>/dev/null && break; sleep 0.1; done
    # The watchdog first: it creates the FIFO that Keepalived will write to.
    AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
        in_ns "$n" "$bin" run --config "$d/watchdog.toml" 2> "$d/watchdog.log" &
    # Not through in_ns: $! must be HAProxy's own pid (ip netns exec execs it).
    ip netns exec "vwdemo-$n" haproxy -db -f "$d/haproxy.cfg" > "$d/haproxy.log" 2>&1 &
    echo $! > "$d/haproxy.pid"
    for _ in $(seq 50); do [ -p "$d/run/keepalived.fifo" ] && break; sleep 0.1; done
    TMPDIR="$d" in_ns "$n" keepalived --dont-fork --vrrp --log-console -f "$d/keepalived.conf" \
        -p "$d/keepalived.pid" -r "$d/keepalived_vrrp.pid" -c "$d/keepalived_checkers.pid" \
        > "$d/keepalived.log" 2>&1 &
}
echo "== starting an IMDSv2 stub, vip-watchdog, HAProxy and Keepalived on each node"
start_node a 150 10.213.0.1 10.213.0.2 1
start_node b 100 10.213.0.2 10.213.0.1 2

state_of() { # the VRRP state node $1's watchdog reports for VI_1
    wd "$1" /metrics 2>/dev/null | awk '/^vip_watchdog_vrrp_state\{/ && /vrrp_instance="VI_1"/ && $NF == 1 {
        match($0, /state="[a-z]+"/); print substr($0, RSTART + 7, RLENGTH - 8) }'
}
metric() { # metric NODE NAME: the first sample's value
    wd "$1" /metrics 2>/dev/null | awk -v m="$2" 'index($0, m"{") == 1 || index($0, m" ") == 1 {print $NF; exit}'
}
is_state() { [ "$(state_of "$1")" = "$2" ]; }        # is_state NODE STATE
has() { [ "$(metric "$1" "$2")" = "$3" ]; }          # has NODE METRIC VALUE
wait_for() { # wait_for SECONDS WHAT COMMAND... (COMMAND is re-run until it succeeds)
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        if [ $SECONDS -ge "$deadline" ]; then
            for f in "$dir"/*/*.log; do echo "--- $f"; tail -n 8 "$f"; done >&2
            die "$what did not happen in time"
        fi
        sleep 0.2
    done
}
show() {
    for n in a b; do
        printf '   node %s: VI_1 %-7s probe_up=%s  the cloud shows the EIP here: %s\n' "$n" "$(state_of "$n")" \
            "$(metric "$n" vip_watchdog_probe_up)" "$(metric "$n" vip_watchdog_vip_here)"
    done
    echo "   Elastic IP is on $(eip_on)"
}

echo "== waiting for the pair to settle (Keepalived takes about 4 s)"
wait_for 30 "a MASTER" is_state a master
wait_for 30 "b BACKUP" is_state b backup
wait_for 30 "a's watchdog seeing the EIP" has a vip_watchdog_vip_here 1
wait_for 30 "the peer channel up" has a vip_watchdog_peer_up 1
show

echo "== a client in the cloud namespace asks the EIP's node every 10 ms"
in_ns c "$py" "$lab_py" client http://127.0.0.1:5000 "$alloc" "$vip" \
    "$eni_a=10.213.1.1,$eni_b=10.213.2.1" 600 "$dir/c/client.json" > "$dir/c/client.log" 2>&1 &
client_pid=$!
answered() { # answered NODE: requests the client had answered by NODE
    "$py" -c "import json; print(json.load(open('$dir/c/client.json'))['answered'].get('$1', 0))" 2>/dev/null || echo 0
}
more_than() { [ "$(answered "$1")" -gt "$2" ]; }      # more_than NODE COUNT
wait_for 30 "the client answered by a" more_than a 20

echo
echo "== failover: stopping HAProxy on node a (the MASTER)"
kill "$(cat "$dir/a/haproxy.pid")"
wait_for 20 "b MASTER" is_state b master
wait_for 30 "the EIP on b" has b vip_watchdog_vip_here 1
wait_for 10 "a's watchdog seeing the EIP leave" has a vip_watchdog_vip_here 0
wait_for 10 "the client answered by b" more_than b 50
kill "$client_pid" 2>/dev/null || true
wait "$client_pid" 2>/dev/null || true
show

echo
echo "== summary"
since=$(wd b /v1/status | "$py" -c "import json,sys; print(json.load(sys.stdin)['instances'][0]['since'])")
moved_by=$(wd b /metrics | awk '/^vip_watchdog_failover_latency_seconds_count/ && $NF > 0 {
    match($0, /moved_by="[a-z_]+"/); print substr($0, RSTART + 10, RLENGTH - 11) }')
"$py" - "$dir/c/client.json" "$since" "$eni_b" "$(metric b vip_watchdog_failover_last_latency_seconds)" "$moved_by" <<'PY'
import datetime, json, sys
path, since, eni_b, measured, moved_by = sys.argv[1:6]
c = json.load(open(path))
master = datetime.datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
landed = next(t for t, eni in c["moves"] if eni == eni_b)
print(f"   b became MASTER; the EIP was on b {float(measured) * 1000:.0f} ms later by b's watchdog"
      f" (moved by the {moved_by}); {(landed - master) * 1000:.0f} ms later by the client's observer"
      " (DescribeAddresses every 10 ms, outside the pair)")
a, b = c["answered"].get("a", 0), c["answered"].get("b", 0)
print(f"   the client: {c['requests']} requests, {a} answered by a, {b} by b, {c['failed']} failed"
      " (HAProxy on a was down until Keepalived's check noticed it and b took over)")
PY
wd b /metrics | awk '/^vip_watchdog_cloud_api_calls_total/ && /outcome="success"/ && $NF > 0 {
    match($0, /operation="[^"]+"/); printf "   b'"'"'s successful cloud calls: %s %s\n", substr($0, RSTART + 11, RLENGTH - 12), $NF }'

echo
echo "The pair is running. In another shell, try:"
echo "   ip netns exec vwdemo-b curl -s 127.0.0.1:9842/v1/status"
echo "   ip netns exec vwdemo-a curl -s 127.0.0.1:9842/metrics"
echo "   ip netns exec vwdemo-a haproxy -D -f $dir/a/haproxy.cfg   # a takes VI_1 and the EIP back"
if [ -t 0 ]; then
    read -r -p "Press Enter to stop the demo and remove everything. "
fi
