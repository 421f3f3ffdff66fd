#!/bin/bash
# The baseline the benchmark compares against: a notify_master script as
# people typically write it (IMDSv2 with curl, then the AWS CLI). Keepalived runs
# it with no environment, so it sets its own.
# Usage: notify_baseline.sh AWS_CLI ENDPOINT ALLOCATION_ID PRIVATE_IP IMDS [EVERY COUNTER]
# With EVERY and COUNTER, every EVERY-th run (counted in the file COUNTER)
# exits 1 before any call, as the script does when its credentials, the CLI
# or the metadata service fail it; the healing benchmark uses this.
set -u
AWS=$1 ENDPOINT=$2 ALLOC=$3 VIP=$4 IMDS=$5
if [ $# -ge 7 ]; then
    EVERY=$6 COUNTER=$7
    RUNS=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 ))
    echo "$RUNS" >"$COUNTER"
    if [ $(( RUNS % EVERY )) -eq 0 ]; then
        echo "notify_baseline: run $RUNS fails on purpose (every $EVERY)" >&2
        exit 1
    fi
fi
# As the typical script does: make sure this node carries the private IP (never
# removed; a no-op when Keepalived's virtual_ipaddress already put it there).
ip addr add "$VIP/32" dev eth0 2>/dev/null || true
export HOME=/tmp AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1
TOKEN=$(curl -s -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
IID=$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/latest/meta-data/instance-id")
ENI=$("$AWS" --endpoint-url "$ENDPOINT" ec2 describe-instances --instance-ids "$IID" \
    --query 'Reservations[0].Instances[0].NetworkInterfaces[0].NetworkInterfaceId' --output text)
"$AWS" --endpoint-url "$ENDPOINT" ec2 assign-private-ip-addresses --network-interface-id "$ENI" \
    --private-ip-addresses "$VIP" --allow-reassignment
"$AWS" --endpoint-url "$ENDPOINT" ec2 associate-address --allocation-id "$ALLOC" \
    --network-interface-id "$ENI" --private-ip-address "$VIP" --allow-reassociation >/dev/null
