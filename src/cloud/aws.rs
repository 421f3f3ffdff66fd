//! `Cloud` on aws-sdk-ec2. The SDK's own retries are off: the executor owns
//! the retry policy (the SDK's default retried a dropped connection on
//! AssociateAddress, a mutating call). Each call has the configured timeout.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use super::{
    Action, Address, ClaimTarget, Cloud, CloudError, DryRunAnswer, ErrorKind, PrivateIpSeen, Route,
    RouteTable, classify,
};

#[derive(Clone, Debug)]
pub struct Aws {
    client: Client,
    /// This node's VPC, read once from its ENI: private IPs are asked for
    /// in it alone.
    vpc: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

impl Aws {
    /// Credentials by the SDK's default chain; the endpoint from the config
    /// or `AWS_ENDPOINT_URL(_EC2)`.
    pub async fn connect(region: &str, endpoint: Option<&str>, call_timeout: Duration) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // In the User-Agent, so CloudTrail (and the tests) can tell our calls.
            .app_name(aws_config::AppName::new("vip-watchdog").expect("a valid app name"))
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(call_timeout)
                    .operation_timeout(call_timeout)
                    .build(),
            );
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        Aws {
            client: Client::new(&loader.load().await),
            vpc: Default::default(),
        }
    }
}

fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> CloudError {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let (kind, code) = match &e {
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, "Timeout".to_owned()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (ErrorKind::Timeout, "Timeout".to_owned())
        }
        SdkError::DispatchFailure(_) => (ErrorKind::Transport, "DispatchFailure".to_owned()),
        _ => {
            let code = e.code().unwrap_or("Unknown").to_owned();
            (classify(&code, status), code)
        }
    };
    let message = match e.message() {
        Some(m) => m.to_owned(),
        None => crate::error_chain(&e),
    };
    CloudError {
        operation,
        kind,
        code,
        message,
    }
}

/// A `DryRun` call's result as an answer: `DryRunOperation` allows, a
/// success means `DryRun` was ignored, an error (a refusal is `Auth`) is the
/// call's error.
fn dry_run_answer<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
    action: Action,
    r: Result<T, SdkError<E, aws_sdk_ec2::config::http::HttpResponse>>,
) -> Result<DryRunAnswer, CloudError> {
    match r {
        Ok(_) => Ok(DryRunAnswer::Ignored),
        Err(e) if e.code() == Some("DryRunOperation") => Ok(DryRunAnswer::Allowed),
        Err(e) => Err(error(action.dry_run_operation(), e)),
    }
}

fn bad_answer(operation: &'static str, message: String) -> CloudError {
    CloudError {
        operation,
        kind: ErrorKind::Client,
        code: "BadAnswer".into(),
        message,
    }
}

fn ip(operation: &'static str, text: Option<&str>) -> Result<Option<IpAddr>, CloudError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|_| bad_answer(operation, format!("{t:?} is not an IP address")))
        })
        .transpose()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// One address of a DescribeAddresses answer, as the watchdog sees it: an
/// answer that does not make sense is a typed error, never a panic.
pub fn address_of(a: &aws_sdk_ec2::types::Address) -> Result<Address, CloudError> {
    const OP: &str = "DescribeAddresses";
    let allocation_id = non_empty(a.allocation_id())
        .ok_or_else(|| bad_answer(OP, "an address without AllocationId".into()))?;
    Ok(Address {
        allocation_id,
        public_ip: non_empty(a.public_ip()),
        association_id: non_empty(a.association_id()),
        network_interface_id: non_empty(a.network_interface_id()),
        private_ip: ip(OP, a.private_ip_address())?,
        instance_id: non_empty(a.instance_id()),
        state_tags: state_tags_of(a.tags()),
    })
}

/// The state tags (`core::state_tag`) among `tags`, by what follows the
/// key's prefix; every other tag is left out.
pub fn state_tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            let suffix = crate::core::state_tag::suffix_of_key(t.key()?)?;
            Some((suffix.to_owned(), t.value().unwrap_or_default().to_owned()))
        })
        .collect()
}

/// One route table of a DescribeRouteTables answer; a route whose
/// destination is not a CIDR block (a prefix list) is left out.
pub fn route_table_of(t: &aws_sdk_ec2::types::RouteTable) -> Result<RouteTable, CloudError> {
    const OP: &str = "DescribeRouteTables";
    let id = non_empty(t.route_table_id())
        .ok_or_else(|| bad_answer(OP, "a route table without RouteTableId".into()))?;
    let routes = t
        .routes()
        .iter()
        .filter_map(|r| {
            let cidr = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())?;
            let destination = crate::core::target::normalize_cidr(cidr)?.0;
            let other = [
                r.gateway_id(),
                r.nat_gateway_id(),
                r.transit_gateway_id(),
                r.vpc_peering_connection_id(),
                r.egress_only_internet_gateway_id(),
                r.carrier_gateway_id(),
                r.local_gateway_id(),
            ]
            .into_iter()
            .find_map(non_empty);
            Some(Route {
                destination,
                network_interface_id: non_empty(r.network_interface_id()),
                instance_id: non_empty(r.instance_id()),
                other_target: other,
                blackhole: r.state() == Some(&aws_sdk_ec2::types::RouteState::Blackhole),
            })
        })
        .collect();
    Ok(RouteTable {
        id,
        routes,
        state_tags: state_tags_of(t.tags()),
    })
}

/// The private IPs of `eni` in a DescribeNetworkInterfaces answer.
pub fn private_ips_of(
    eni: &str,
    interfaces: &[aws_sdk_ec2::types::NetworkInterface],
) -> Result<Vec<IpAddr>, CloudError> {
    const OP: &str = "DescribeNetworkInterfaces";
    interface_of(eni, interfaces)?
        .private_ip_addresses()
        .iter()
        .filter_map(|p| ip(OP, p.private_ip_address()).transpose())
        .collect()
}

/// Where each of `ips` is in a DescribeNetworkInterfaces answer.
pub fn private_ips_seen(
    ips: &[IpAddr],
    interfaces: &[aws_sdk_ec2::types::NetworkInterface],
) -> Result<Vec<PrivateIpSeen>, CloudError> {
    const OP: &str = "DescribeNetworkInterfaces";
    let mut seen: Vec<PrivateIpSeen> = ips
        .iter()
        .map(|ip| PrivateIpSeen {
            ip: *ip,
            network_interface_ids: vec![],
            state_tags: BTreeMap::new(),
        })
        .collect();
    for n in interfaces {
        let id = non_empty(n.network_interface_id())
            .ok_or_else(|| bad_answer(OP, "a network interface without an ID".into()))?;
        for p in n.private_ip_addresses() {
            let Some(ip) = ip(OP, p.private_ip_address())? else {
                continue;
            };
            if let Some(s) = seen.iter_mut().find(|s| s.ip == ip) {
                s.network_interface_ids.push(id.clone());
                s.state_tags.extend(state_tags_of(n.tag_set()));
            }
        }
    }
    Ok(seen)
}

/// `eni` in a DescribeNetworkInterfaces answer.
fn interface_of<'a>(
    eni: &str,
    interfaces: &'a [aws_sdk_ec2::types::NetworkInterface],
) -> Result<&'a aws_sdk_ec2::types::NetworkInterface, CloudError> {
    interfaces
        .iter()
        .find(|n| n.network_interface_id() == Some(eni))
        .ok_or_else(|| {
            bad_answer(
                "DescribeNetworkInterfaces",
                format!("{eni} is not in the answer"),
            )
        })
}

impl Aws {
    /// One DescribeNetworkInterfaces for `eni`.
    async fn describe_interface(
        &self,
        eni: &str,
    ) -> Result<
        aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput,
        CloudError,
    > {
        self.client
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .map_err(|e| error("DescribeNetworkInterfaces", e))
    }
}

impl Cloud for Aws {
    async fn describe_addresses(
        &self,
        allocation_ids: &[String],
    ) -> Result<Vec<Address>, CloudError> {
        const OP: &str = "DescribeAddresses";
        let out = self
            .client
            .describe_addresses()
            .set_allocation_ids(Some(allocation_ids.to_vec()))
            .send()
            .await
            .map_err(|e| error(OP, e))?;
        out.addresses().iter().map(address_of).collect()
    }

    async fn private_ips(&self, eni: &str) -> Result<Vec<IpAddr>, CloudError> {
        let out = self.describe_interface(eni).await?;
        private_ips_of(eni, out.network_interfaces())
    }

    async fn assign_private_ip(&self, eni: &str, ip: IpAddr) -> Result<(), CloudError> {
        self.client
            .assign_private_ip_addresses()
            .network_interface_id(eni)
            .private_ip_addresses(ip.to_string())
            .allow_reassignment(true)
            .send()
            .await
            .map_err(|e| error("AssignPrivateIpAddresses", e))?;
        Ok(())
    }

    async fn associate(
        &self,
        allocation_id: &str,
        eni: &str,
        ip: IpAddr,
    ) -> Result<String, CloudError> {
        const OP: &str = "AssociateAddress";
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(eni)
            .private_ip_address(ip.to_string())
            // Always explicit: an omitted flag refuses to move an associated EIP.
            .allow_reassociation(true)
            .send()
            .await
            .map_err(|e| error(OP, e))?;
        non_empty(out.association_id())
            .ok_or_else(|| bad_answer(OP, "no AssociationId in the answer".into()))
    }

    async fn associate_instance(
        &self,
        allocation_id: &str,
        instance: &str,
    ) -> Result<String, CloudError> {
        const OP: &str = "AssociateAddress";
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .instance_id(instance)
            .allow_reassociation(true)
            .send()
            .await
            .map_err(|e| error(OP, e))?;
        non_empty(out.association_id())
            .ok_or_else(|| bad_answer(OP, "no AssociationId in the answer".into()))
    }

    async fn create_tags(
        &self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> Result<(), CloudError> {
        let mut req = self
            .client
            .create_tags()
            .set_resources(Some(resources.to_vec()));
        for (k, v) in tags {
            req = req.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
        }
        req.send().await.map_err(|e| error("CreateTags", e))?;
        Ok(())
    }

    async fn describe_route_tables(&self, ids: &[String]) -> Result<Vec<RouteTable>, CloudError> {
        const OP: &str = "DescribeRouteTables";
        let out = self
            .client
            .describe_route_tables()
            .set_route_table_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| error(OP, e))?;
        out.route_tables().iter().map(route_table_of).collect()
    }

    async fn set_route(
        &self,
        table: &str,
        destination: &str,
        eni: &str,
        create: bool,
    ) -> Result<(), CloudError> {
        // The two builders are distinct types with the same setters.
        macro_rules! to_this_eni {
            ($req:expr) => {{
                let req = $req.route_table_id(table).network_interface_id(eni);
                if destination.contains(':') {
                    req.destination_ipv6_cidr_block(destination)
                } else {
                    req.destination_cidr_block(destination)
                }
            }};
        }
        if create {
            let req = to_this_eni!(self.client.create_route());
            req.send().await.map_err(|e| error("CreateRoute", e))?;
        } else {
            let req = to_this_eni!(self.client.replace_route());
            req.send().await.map_err(|e| error("ReplaceRoute", e))?;
        }
        Ok(())
    }

    async fn describe_private_ips(
        &self,
        eni: &str,
        ips: &[IpAddr],
    ) -> Result<Vec<PrivateIpSeen>, CloudError> {
        const OP: &str = "DescribeNetworkInterfaces";
        let vpc = self
            .vpc
            .get_or_try_init(|| async {
                let out = self.describe_interface(eni).await?;
                non_empty(interface_of(eni, out.network_interfaces())?.vpc_id())
                    .ok_or_else(|| bad_answer(OP, format!("{eni} has no VpcId")))
            })
            .await?;
        let filter = |name: &str, values: Vec<String>| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .set_values(Some(values))
                .build()
        };
        let out = self
            .client
            .describe_network_interfaces()
            .filters(filter(
                "addresses.private-ip-address",
                ips.iter().map(IpAddr::to_string).collect(),
            ))
            .filters(filter("vpc-id", vec![vpc.clone()]))
            .send()
            .await
            .map_err(|e| error(OP, e))?;
        private_ips_seen(ips, out.network_interfaces())
    }

    async fn source_dest_check(&self, eni: &str) -> Result<bool, CloudError> {
        let out = self.describe_interface(eni).await?;
        // EC2 reports it for every ENI; absent, it is on (the default).
        interface_of(eni, out.network_interfaces()).map(|n| n.source_dest_check().unwrap_or(true))
    }

    async fn dry_run(&self, action: Action, t: &ClaimTarget) -> Result<DryRunAnswer, CloudError> {
        let c = &self.client;
        match action {
            Action::DescribeAddresses => dry_run_answer(
                action,
                c.describe_addresses()
                    .allocation_ids(&t.allocation_id)
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Action::DescribeNetworkInterfaces => dry_run_answer(
                action,
                c.describe_network_interfaces()
                    .network_interface_ids(&t.eni)
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Action::AssignPrivateIpAddresses => Err(bad_answer(
                action.dry_run_operation(),
                "EC2's AssignPrivateIpAddresses has no DryRun parameter".into(),
            )),
            Action::AssociateAddress => {
                let req = c.associate_address().allocation_id(&t.allocation_id);
                let req = match &t.instance {
                    Some(i) => req.instance_id(i),
                    None => req.network_interface_id(&t.eni),
                };
                dry_run_answer(
                    action,
                    req.allow_reassociation(true).dry_run(true).send().await,
                )
            }
            Action::DescribeRouteTables | Action::ReplaceRoute | Action::CreateRoute => {
                Err(bad_answer(
                    action.dry_run_operation(),
                    "route permissions are learnt from real calls".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{NetworkInterface, NetworkInterfacePrivateIpAddress};

    fn interface(id: Option<&str>, ips: &[&str]) -> NetworkInterface {
        let mut b = NetworkInterface::builder().set_network_interface_id(id.map(str::to_owned));
        for ip in ips {
            b = b.private_ip_addresses(
                NetworkInterfacePrivateIpAddress::builder()
                    .private_ip_address(*ip)
                    .build(),
            );
        }
        b.build()
    }

    #[test]
    fn private_ips_seen_names_every_eni_that_carries_an_ip_asked_for() {
        let asked: Vec<IpAddr> = vec!["10.0.1.100".parse().unwrap(), "10.0.1.101".parse().unwrap()];
        let answer = [
            interface(Some("eni-a"), &["10.0.1.10", "10.0.1.100"]),
            interface(Some("eni-b"), &["10.0.1.11", "10.0.1.100"]),
        ];
        let seen = private_ips_seen(&asked, &answer).expect("a sound answer");
        assert_eq!(
            seen,
            vec![
                PrivateIpSeen {
                    ip: asked[0],
                    network_interface_ids: vec!["eni-a".into(), "eni-b".into()],
                    state_tags: BTreeMap::new(),
                },
                PrivateIpSeen {
                    ip: asked[1],
                    network_interface_ids: vec![],
                    state_tags: BTreeMap::new(),
                },
            ]
        );
    }

    #[test]
    fn a_private_ip_answer_that_makes_no_sense_is_a_named_error() {
        let asked: Vec<IpAddr> = vec!["10.0.1.100".parse().unwrap()];
        let no_id = private_ips_seen(&asked, &[interface(None, &["10.0.1.100"])]).unwrap_err();
        assert_eq!(no_id.code, "BadAnswer");
        assert!(no_id.message.contains("without an ID"), "{no_id}");
        let bad_ip =
            private_ips_seen(&asked, &[interface(Some("eni-a"), &["10.0.1.x"])]).unwrap_err();
        assert!(
            bad_ip.message.contains("\"10.0.1.x\" is not an IP address"),
            "{bad_ip}"
        );
    }
}
