#!/bin/bash
# The baseline the benchmark compares against: a notify_master script as the
# seed article writes it (IMDSv2 with curl, then the AWS CLI). Keepalived runs
# it with no environment, so it sets its own.
# Usage: notify_baseline.sh AWS_CLI ENDPOINT ALLOCATION_ID PRIVATE_IP IMDS
set -u
AWS=$1 ENDPOINT=$2 ALLOC=$3 VIP=$4 IMDS=$5
export HOME=/tmp AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1
TOKEN=$(curl -s -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
IID=$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/latest/meta-data/instance-id")
ENI=$("$AWS" --endpoint-url "$ENDPOINT" ec2 describe-instances --instance-ids "$IID" \
    --query 'Reservations[0].Instances[0].NetworkInterfaces[0].NetworkInterfaceId' --output text)
"$AWS" --endpoint-url "$ENDPOINT" ec2 assign-private-ip-addresses --network-interface-id "$ENI" \
    --private-ip-addresses "$VIP" --allow-reassignment
"$AWS" --endpoint-url "$ENDPOINT" ec2 associate-address --allocation-id "$ALLOC" \
    --network-interface-id "$ENI" --private-ip-address "$VIP" --allow-reassociation >/dev/null
