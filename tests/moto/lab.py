"""The EC2 side of the integration lab, against moto's server (tests/moto/launch.py).

Subcommands (ENDPOINT is moto's URL as seen from where this runs):
  setup ENDPOINT              VPC, subnet, two instances, an EIP on node a's
                              ENI and secondary IP; checks that the launcher's
                              patches are in effect; prints the ids as JSON.
  imds HOST PORT ENDPOINT INSTANCE_ID
                              an IMDSv2 stub for one node, filled from the
                              emulator's state (token with TTL header, then
                              instance-id, placement/region, mac,
                              network/interfaces/macs/MAC/interface-id and
                              local-ipv4s); prints "ready" when listening.
  notify MODE ENDPOINT ALLOCATION_ID PRIVATE_IP INSTANCE_ID
                              a notify_master script as people
                              write it (assign the secondary IP, associate
                              the EIP); MODE ok, fail (exits 1 at once) or
                              twice (runs its body twice).
  observe ENDPOINT TARGET SECONDS
                              polls the cloud every 10 ms for at most
                              SECONDS; prints "ready", then "EPOCH ENI" each
                              time TARGET's holder changes ("-" for none):
                              an allocation ID's ENI (DescribeAddresses),
                              or the ENIs carrying a private IP
                              (DescribeNetworkInterfaces, comma-separated).
  client ENDPOINT ALLOCATION_ID VIP ENI=GW,ENI=GW SECONDS OUT
                              the demo's client: every 10 ms, the node that
                              holds the EIP on VIP:8000 (an observer thread
                              follows the EIP every 10 ms); counts to OUT.
  routes ENDPOINT RTB...       prints "RTB TARGET" for the lab's route VIP in
                              each table: an ENI, "blackhole", "instance:ID"
                              or "-" (no route).
  route ENDPOINT RTB TARGET   points that route at TARGET (an ENI,
                              "instance:ID", "blackhole", or "delete").
  notify_route MODE ENDPOINT INSTANCE_ID RTB...
                              a route VIP's notify_master (ReplaceRoute in
                              each table); MODE ok or first-only.
  source_dest_check ENDPOINT ENI on|off
                              turns an ENI's source/destination check on or
                              off (set-up turns both nodes' off).
  second_eip ENDPOINT PRIVATE_IP ENI
                              a second EIP on ENI's secondary PRIVATE_IP (the
                              active-active lab); prints its allocation ID.
  where ENDPOINT ALLOCATION_ID
                              prints the ENI the EIP is on, or "-".
  holders ENDPOINT PRIVATE_IP prints the ENIs that carry PRIVATE_IP, space
                              separated, or "-".
  assign ENDPOINT PRIVATE_IP ENI
                              assigns PRIVATE_IP to ENI with
                              AllowReassignment, as an operator or a stray
                              script would.
  calls ENDPOINT              mutating calls since recording started, as JSON
                              {"client": {"Action eni": n}}; client is
                              "watchdog" (aws-sdk-rust) or "other". Calls
                              with DryRun=true mutate nothing and are left
                              out (moto honours DryRun for the two mutating
                              actions that take it, AssociateAddress and
                              DisassociateAddress: see the EIP tests).
  requests ENDPOINT           every call since recording started (or was
                              reset), as JSON {"client node": {"Action": n}}
                              ("DryRun:Action" for a DryRun call);
                              client is "watchdog", "aws-cli", "boto3" or
                              "other", node is "a" or "b" from the address
                              the client called, "-" for any other.
  reset ENDPOINT              empties the recording (recording goes on).
"""

import base64
import json
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

REGION = "eu-west-1"
VIP_PRIVATE_IP = "10.213.0.100"
# A route VIP: a /32 outside the VPC's range, routed to the MASTER's ENI.
ROUTE_DESTINATION = "192.168.100.10/32"
MUTATING = {
    "AssociateAddress",
    "DisassociateAddress",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "CreateRoute",
    "ReplaceRoute",
}


def ec2(endpoint):
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def setup(endpoint):
    c = ec2(endpoint)
    vpc = c.create_vpc(CidrBlock="10.213.0.0/16")["Vpc"]["VpcId"]
    subnet = c.create_subnet(VpcId=vpc, CidrBlock="10.213.0.0/24")["Subnet"]["SubnetId"]
    nodes = {}
    for name, ip in (("a", "10.213.0.11"), ("b", "10.213.0.12")):
        inst = c.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=ip
        )["Instances"][0]
        nic = inst["NetworkInterfaces"][0]
        nodes[name] = {
            "instance_id": inst["InstanceId"],
            "eni": nic["NetworkInterfaceId"],
            "mac": nic["MacAddress"],
        }
    alloc = c.allocate_address(Domain="vpc")["AllocationId"]
    eni_a = nodes["a"]["eni"]
    c.assign_private_ip_addresses(
        NetworkInterfaceId=eni_a, PrivateIpAddresses=[VIP_PRIVATE_IP], AllowReassignment=True
    )
    c.associate_address(
        AllocationId=alloc, NetworkInterfaceId=eni_a, PrivateIpAddress=VIP_PRIVATE_IP, AllowReassociation=True
    )
    # The launcher's patches must be in effect, or the tests would prove nothing.
    addr = c.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert addr["PrivateIpAddress"] == VIP_PRIVATE_IP, f"moto is not patched: {addr}"
    try:
        c.assign_private_ip_addresses(NetworkInterfaceId=nodes["b"]["eni"], PrivateIpAddresses=[VIP_PRIVATE_IP])
        raise AssertionError("moto is not patched: reassignment without AllowReassignment succeeded")
    except c.exceptions.ClientError as e:
        assert "PrivateIpAddressInUse" in str(e), e
    # The watchdogs' permission check relies on DryRun mutating nothing.
    try:
        c.associate_address(
            AllocationId=alloc, NetworkInterfaceId=nodes["b"]["eni"], AllowReassociation=True, DryRun=True
        )
        raise AssertionError("moto performed a DryRun AssociateAddress")
    except c.exceptions.ClientError as e:
        assert "DryRunOperation" in str(e), e
    addr = c.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert addr["NetworkInterfaceId"] == eni_a, f"a DryRun AssociateAddress moved the EIP: {addr}"
    assert addr.get("InstanceId") == nodes["a"]["instance_id"], f"moto is not patched (InstanceId): {addr}"
    # A secondary private IP is found by addresses.private-ip-address (patch 5).
    found = c.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [VIP_PRIVATE_IP, "10.213.0.254"]}]
    )["NetworkInterfaces"]
    assert [n["NetworkInterfaceId"] for n in found] == [eni_a], f"moto is not patched (private-ip filter): {found}"
    # A tag EC2 would refuse is refused (patch 6).
    try:
        c.create_tags(Resources=[alloc], Tags=[{"Key": "vip-watchdog:check", "Value": "not#valid"}])
        raise AssertionError("moto is not patched: CreateTags took a value EC2 refuses")
    except c.exceptions.ClientError as e:
        assert "InvalidParameterValue" in str(e), e
    tables = setup_routes(c, vpc, subnet, eni_a, nodes["b"]["eni"])
    print(
        json.dumps(
            {
                "region": REGION,
                "allocation_id": alloc,
                "private_ip": VIP_PRIVATE_IP,
                "nodes": nodes,
                "route_tables": tables,
                "route_destination": ROUTE_DESTINATION,
            }
        )
    )


def setup_routes(c, vpc, subnet, eni_a, eni_b):
    """Two route tables whose route for ROUTE_DESTINATION targets node a's
    ENI; checks the launcher's route patches."""
    tables = []
    for _ in range(2):
        rtb = c.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        c.create_route(RouteTableId=rtb, DestinationCidrBlock=ROUTE_DESTINATION, NetworkInterfaceId=eni_a)
        tables.append(rtb)
    rtb = tables[0]
    for call in (
        lambda: c.replace_route(
            RouteTableId=rtb, DestinationCidrBlock=ROUTE_DESTINATION, NetworkInterfaceId=eni_b, DryRun=True
        ),
        lambda: c.create_route(
            RouteTableId=rtb, DestinationCidrBlock="192.168.201.1/32", NetworkInterfaceId=eni_b, DryRun=True
        ),
    ):
        try:
            call()
            raise AssertionError("moto is not patched: a route DryRun was performed")
        except c.exceptions.ClientError as e:
            assert "DryRunOperation" in str(e), e
    try:
        c.create_route(RouteTableId=rtb, DestinationCidrBlock=ROUTE_DESTINATION, NetworkInterfaceId=eni_b)
        raise AssertionError("moto is not patched: a duplicate CreateRoute overwrote the route")
    except c.exceptions.ClientError as e:
        assert "RouteAlreadyExists" in str(e), e
    assert route_target(c, rtb, ROUTE_DESTINATION) == eni_a, "a route DryRun or a refused CreateRoute moved it"
    gone = c.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    c.create_route(RouteTableId=rtb, DestinationCidrBlock="192.168.201.1/32", NetworkInterfaceId=gone)
    c.delete_network_interface(NetworkInterfaceId=gone)
    assert route_target(c, rtb, "192.168.201.1/32") == "blackhole", "moto is not patched: no blackhole"
    c.delete_route(RouteTableId=rtb, DestinationCidrBlock="192.168.201.1/32")
    # As an operator does for a route VIP: traffic for an address that is
    # not the instance's own must not be dropped.
    for eni in (eni_a, eni_b):
        source_dest_check(endpoint=None, eni=eni, on="off", client=c)
    return tables


def source_dest_check(endpoint, eni, on, client=None):
    """Turns ENI's source/destination check "on" or "off"."""
    c = client or ec2(endpoint)
    c.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": on == "on"})
    got = c.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["SourceDestCheck"]
    assert got == (on == "on"), f"SourceDestCheck is {got}"



def route_target(c, rtb, destination):
    """The ENI the route targets, "blackhole", "instance:ID", or "-"."""
    table = c.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    for r in table["Routes"]:
        if r.get("DestinationCidrBlock") == destination:
            if r.get("State") == "blackhole":
                return "blackhole"
            if r.get("NetworkInterfaceId"):
                return r["NetworkInterfaceId"]
            if r.get("InstanceId"):
                return "instance:" + r["InstanceId"]
    return "-"


def routes(endpoint, *tables):
    """Prints, for each table, "RTB TARGET" (see route_target)."""
    c = ec2(endpoint)
    for t in tables:
        print(t, route_target(c, t, ROUTE_DESTINATION))


def route(endpoint, rtb, target, subnet_of=None):
    """Points the lab route in RTB at TARGET: an ENI ID, "instance:ID", or
    "blackhole" (a new ENI in the lab's subnet, then deleted); "delete"
    removes the route. As a script or an operator would."""
    c = ec2(endpoint)
    if target == "delete":
        c.delete_route(RouteTableId=rtb, DestinationCidrBlock=ROUTE_DESTINATION)
        return
    kw = {}
    if target == "blackhole":
        subnet = c.describe_subnets()["Subnets"][0]["SubnetId"]
        gone = c.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        kw = {"NetworkInterfaceId": gone}
    elif target.startswith("instance:"):
        kw = {"InstanceId": target.split(":", 1)[1]}
    else:
        kw = {"NetworkInterfaceId": target}
    c.replace_route(RouteTableId=rtb, DestinationCidrBlock=ROUTE_DESTINATION, **kw)
    if target == "blackhole":
        c.delete_network_interface(NetworkInterfaceId=kw["NetworkInterfaceId"])


def notify_route(mode, endpoint, instance_id, *tables):
    """A notify_master script for a route VIP, as commonly written
    it: ReplaceRoute in each table to this instance's ENI. MODE "ok", or
    "first-only" (it updates the first table and fails, as a script cut
    short by a throttled call does)."""
    c = ec2(endpoint)
    inst = c.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for i, t in enumerate(tables):
        if mode == "first-only" and i > 0:
            sys.exit(1)
        c.replace_route(RouteTableId=t, DestinationCidrBlock=ROUTE_DESTINATION, NetworkInterfaceId=eni)
    sys.stdout.flush()
    import os

    os._exit(0)


def imds(host, port, endpoint, instance_id):
    c = ec2(endpoint)

    def values():
        inst = c.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        nic = inst["NetworkInterfaces"][0]
        eni = c.describe_network_interfaces(NetworkInterfaceIds=[nic["NetworkInterfaceId"]])["NetworkInterfaces"][0]
        mac = nic["MacAddress"]
        base = f"network/interfaces/macs/{mac}/"
        return {
            "instance-id": instance_id,
            "placement/region": REGION,
            "mac": mac,
            base + "interface-id": nic["NetworkInterfaceId"],
            base + "local-ipv4s": "\n".join(p["PrivateIpAddress"] for p in eni["PrivateIpAddresses"]),
        }

    token = "vip-watchdog-test-token"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body, headers=()):
            data = body.encode()
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
                return self.reply(400, "bad token request")
            ttl = self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
            self.reply(200, token, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") != token:
                return self.reply(401, "IMDSv2 token required")
            path = self.path.removeprefix("/latest/meta-data/")
            v = values().get(path)
            if v is None:
                return self.reply(404, "not found")
            self.reply(200, v)

    server = ThreadingHTTPServer((host, int(port)), Handler)
    print("ready", flush=True)
    server.serve_forever()


def notify(mode, endpoint, alloc, private_ip, instance_id):
    """Moves the EIP to this node as a notify_master script does. Modes: ok,
    twice (the calls twice), fail (exit 1, no call), noop (exit 0, no call:
    an empty or wrong script), linger:SECONDS (the calls, then SECONDS more
    before it exits, as the AWS CLI takes to tear down), delayed:SECONDS (runs
    late, as a slow script or a late Keepalived run does), switch:PATH (what
    the file PATH says when it runs: "fail", "delay SECONDS", "twice", or ok
    when the file is absent)."""
    if mode.startswith("switch:"):
        import os

        path = mode.split(":", 1)[1]
        said = open(path).read().split() if os.path.exists(path) else []
        if said[:1] == ["fail"]:
            sys.exit(1)
        mode = f"delayed:{said[1]}" if said[:1] == ["delay"] else "twice" if said[:1] == ["twice"] else "ok"
    if mode == "fail":
        sys.exit(1)
    if mode == "noop":
        sys.exit(0)
    if mode.startswith("delayed:"):
        import time

        time.sleep(float(mode.split(":", 1)[1]))
    c = ec2(endpoint)
    inst = c.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for _ in range(2 if mode == "twice" else 1):
        c.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[private_ip], AllowReassignment=True)
        c.associate_address(AllocationId=alloc, NetworkInterfaceId=eni, PrivateIpAddress=private_ip, AllowReassociation=True)
    if mode.startswith("linger:"):
        import time

        time.sleep(float(mode.split(":", 1)[1]))
    # Exit as soon as the last call returned, as a shell script whose last
    # command is curl does: a Python process with boto3 loaded takes about
    # 180 ms more to tear down, and the notify wrapper can only report the
    # end of the run (docs/operations.md, "The notify wrapper").
    sys.stdout.flush()
    import os

    os._exit(0)


def where(endpoint, alloc):
    addr = ec2(endpoint).describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    print(addr.get("NetworkInterfaceId") or "-")


def holders(endpoint, private_ip):
    found = ec2(endpoint).describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [private_ip]}]
    )["NetworkInterfaces"]
    print(" ".join(sorted(n["NetworkInterfaceId"] for n in found)) or "-")


def assign(endpoint, private_ip, eni):
    ec2(endpoint).assign_private_ip_addresses(
        NetworkInterfaceId=eni, PrivateIpAddresses=[private_ip], AllowReassignment=True
    )


def observe(endpoint, target, seconds):
    """TARGET: an EIP's allocation ID (the ENI it is associated with), or a
    private IP (the ENIs that carry it, comma-separated)."""
    import time

    c = ec2(endpoint)

    def holder():
        if target.startswith("eipalloc-"):
            addr = c.describe_addresses(AllocationIds=[target])["Addresses"][0]
            return addr.get("NetworkInterfaceId") or "-"
        found = c.describe_network_interfaces(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [target]}]
        )["NetworkInterfaces"]
        return ",".join(sorted(n["NetworkInterfaceId"] for n in found)) or "-"

    last = None
    print("ready", flush=True)
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        eni = holder()
        if eni != last:
            print(f"{time.time():.6f} {eni}", flush=True)
            last = eni
        time.sleep(0.01)


def client(endpoint, alloc, vip, gateways, seconds, out):
    """The demo's client, outside the pair: every 10 ms it asks the node
    the emulator says holds the EIP, on VIP:8000/service, which HAProxy
    answers with its node's name. An observer thread asks DescribeAddresses
    every 10 ms and points the route to the private IP at the holder's
    link, as EC2 sends the EIP's traffic to the ENI that holds it, noting
    each move's time. GATEWAYS is "ENI=ADDRESS,ENI=ADDRESS". Writes its
    counts as JSON to OUT every second and at the end: requests, answered
    by each node, failed, and each move of the EIP (time, ENI)."""
    import json
    import signal
    import subprocess
    import threading
    import time

    via = dict(g.split("=") for g in gateways.split(","))
    counts = {"requests": 0, "failed": 0, "answered": {}, "moves": []}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.time() + float(seconds)

    def observe():
        c = ec2(endpoint)
        routed = None
        while not stop.is_set() and time.time() < deadline:
            at = time.time()
            eni = c.describe_addresses(AllocationIds=[alloc])["Addresses"][0].get("NetworkInterfaceId") or "-"
            if eni != routed:
                target = ["via", via[eni]] if eni in via else []
                cmd = ["ip", "route", "replace"] + (["blackhole"] if not target else []) + [f"{vip}/32"] + target
                subprocess.run(cmd, check=True)
                counts["moves"].append([at, eni])
                routed = eni
            time.sleep(max(0.0, 0.01 - (time.time() - at)))

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    while not counts["moves"] and time.time() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    last_write = 0.0
    while not stop.is_set() and time.time() < deadline:
        started = time.time()
        counts["requests"] += 1
        try:
            with urllib.request.urlopen(f"http://{vip}:8000/service", timeout=0.3) as r:
                node = r.read().decode().strip()
            counts["answered"][node] = counts["answered"].get(node, 0) + 1
        except Exception:
            counts["failed"] += 1
        if started - last_write >= 1.0:
            with open(out, "w") as f:
                json.dump(counts, f)
            last_write = started
        time.sleep(max(0.0, 0.01 - (time.time() - started)))
    stop.set()
    watcher.join(timeout=2)
    with open(out, "w") as f:
        json.dump(counts, f)


def recorded(endpoint):
    """Yields (headers, url, params) for each recorded request."""
    text = urllib.request.urlopen(endpoint + "/moto-api/recorder/download-recording").read().decode()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            # moto appends each record while the recording is read: a last
            # line without its newline may be one still being written (it
            # is read whole at the next download). Anywhere else, an error.
            if i == len(lines) - 1:
                continue
            raise
        body = rec.get("body") or ""
        if rec.get("body_encoded"):
            body = base64.b64decode(body).decode()
        yield rec.get("headers", {}), rec.get("url", ""), urllib.parse.parse_qs(body)


def dry_run(params):
    return params.get("DryRun", ["false"])[0].lower() == "true"


def calls(endpoint):
    counts = {}
    for headers, _, params in recorded(endpoint):
        action = params.get("Action", [""])[0]
        if action not in MUTATING or dry_run(params):
            continue
        ua = headers.get("User-Agent", "")
        client = "watchdog" if "aws-sdk-rust" in ua else "other"
        key = f"{action} {params.get('NetworkInterfaceId', ['-'])[0]}"
        counts.setdefault(client, {}).setdefault(key, 0)
        counts[client][key] += 1
    print(json.dumps(counts))


def requests(endpoint):
    # Each node reaches the emulator at its own address (see Lab::add_cloud).
    nodes = {"10.213.1.2": "a", "10.213.2.2": "b"}
    counts = {}
    for headers, url, params in recorded(endpoint):
        ua = headers.get("User-Agent", "")
        if "aws-sdk-rust" in ua:
            client = "watchdog"
        elif "aws-cli" in ua:
            client = "aws-cli"
        elif "Boto3" in ua:
            client = "boto3"
        else:
            client = "other"
        host = urllib.parse.urlsplit(url).hostname or headers.get("Host", "").split(":")[0]
        key = f"{client} {nodes.get(host, '-')}"
        action = params.get("Action", ["?"])[0]
        if dry_run(params):
            action = "DryRun:" + action
        counts.setdefault(key, {}).setdefault(action, 0)
        counts[key][action] += 1
    print(json.dumps(counts))


def allocate(endpoint, n):
    """N more Elastic IPs, not associated; prints their allocation IDs."""
    c = ec2(endpoint)
    print(json.dumps([c.allocate_address(Domain="vpc")["AllocationId"] for _ in range(int(n))]))


def second_eip(endpoint, private_ip, eni):
    """An Elastic IP on ENI's secondary PRIVATE_IP (assigned first), as the
    active-active lab's second VIP; prints its allocation ID."""
    c = ec2(endpoint)
    alloc = c.allocate_address(Domain="vpc")["AllocationId"]
    c.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[private_ip], AllowReassignment=True)
    c.associate_address(AllocationId=alloc, NetworkInterfaceId=eni, PrivateIpAddress=private_ip, AllowReassociation=True)
    print(alloc)


def describe_sizes(endpoint, node):
    """How many allocation IDs each DescribeAddresses of node's watchdog named."""
    nodes = {"10.213.1.2": "a", "10.213.2.2": "b"}
    sizes = []
    for headers, url, params in recorded(endpoint):
        if params.get("Action", [""])[0] != "DescribeAddresses" or dry_run(params):
            continue
        if "aws-sdk-rust" not in headers.get("User-Agent", ""):
            continue
        host = urllib.parse.urlsplit(url).hostname or headers.get("Host", "").split(":")[0]
        if nodes.get(host) == node:
            sizes.append(sum(1 for k in params if k.startswith("AllocationId.")))
    print(json.dumps(sizes))


def reset(endpoint):
    req = urllib.request.Request(endpoint + "/moto-api/recorder/reset-recording", method="POST")
    urllib.request.urlopen(req).read()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"setup": setup, "imds": imds, "notify": notify, "observe": observe, "where": where,
     "holders": holders, "assign": assign, "calls": calls,
     "requests": requests, "reset": reset, "allocate": allocate, "describe_sizes": describe_sizes,
     "routes": routes, "route": route, "notify_route": notify_route,
     "source_dest_check": source_dest_check, "second_eip": second_eip, "client": client}[cmd](*args)
