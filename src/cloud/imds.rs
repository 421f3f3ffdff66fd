//! This node's identity: instance ID, region, MAC and ENI, from IMDSv2
//! (aws-config's client: token with TTL, then the paths), each overridable
//! in the config.

use std::time::Duration;

use aws_config::imds::client::Client;

use crate::config::CloudConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub region: String,
    pub interface_id: String,
}

impl Identity {
    /// This node, as claims and views name it.
    pub fn me(&self) -> crate::core::seen::Me {
        crate::core::seen::Me {
            instance_id: self.instance_id.clone(),
            eni: self.interface_id.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("bad IMDS endpoint {endpoint:?}: {detail}")]
    Endpoint { endpoint: String, detail: String },
    #[error(
        "cannot read {path} from the instance metadata service ({endpoint}): {detail}. \
In a container, raise the IMDSv2 hop limit to 2 or use host networking; \
or set cloud.instance_id, cloud.region and cloud.interface_id"
    )]
    Imds {
        endpoint: String,
        path: String,
        detail: String,
    },
}

async fn get(client: &Client, endpoint: &str, path: &str) -> Result<String, IdentityError> {
    let full = format!("/latest/meta-data/{path}");
    match client.get(&full).await {
        Ok(v) => Ok(v.as_ref().trim().to_owned()),
        Err(e) => Err(IdentityError::Imds {
            endpoint: endpoint.to_owned(),
            path: full,
            detail: crate::error_chain(&e),
        }),
    }
}

/// The configured values, the rest asked of IMDS (only when something is missing).
pub async fn identity(cfg: &CloudConfig) -> Result<Identity, IdentityError> {
    if let (Some(instance_id), Some(region), Some(interface_id)) =
        (&cfg.instance_id, &cfg.region, &cfg.interface_id)
    {
        return Ok(Identity {
            instance_id: instance_id.clone(),
            region: region.clone(),
            interface_id: interface_id.clone(),
        });
    }
    let endpoint = cfg
        .imds_endpoint
        .clone()
        .unwrap_or_else(|| "http://169.254.169.254".to_owned());
    let client = Client::builder()
        .endpoint(&endpoint)
        .map_err(|e| IdentityError::Endpoint {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?
        .max_attempts(2)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .build();
    let instance_id = match &cfg.instance_id {
        Some(v) => v.clone(),
        None => get(&client, &endpoint, "instance-id").await?,
    };
    let region = match &cfg.region {
        Some(v) => v.clone(),
        None => get(&client, &endpoint, "placement/region").await?,
    };
    let interface_id = match &cfg.interface_id {
        Some(v) => v.clone(),
        None => {
            let mac = get(&client, &endpoint, "mac").await?;
            get(
                &client,
                &endpoint,
                &format!("network/interfaces/macs/{mac}/interface-id"),
            )
            .await?
        }
    };
    Ok(Identity {
        instance_id,
        region,
        interface_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(imds_endpoint: Option<String>) -> CloudConfig {
        CloudConfig {
            region: None,
            endpoint: None,
            imds_endpoint,
            instance_id: None,
            interface_id: None,
            call_timeout: Duration::from_secs(1),
            verify_interval: Duration::from_secs(30),
            verify_jitter: Duration::from_secs(1),
            fast_verify_interval: Duration::from_secs(1),
            fast_verify_for: Duration::from_secs(20),
            state_dir: None,
            convergence_timeout: Duration::from_secs(5),
            state_tag_interval: None,
            dry_run: false,
            permission_check: true,
            permission_check_interval: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn an_unreachable_imds_is_a_clear_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = identity(&cloud(Some(format!("http://127.0.0.1:{port}"))))
            .await
            .expect_err("nothing listens");
        let text = err.to_string();
        assert!(text.contains("/latest/meta-data/instance-id"), "{text}");
        assert!(text.contains("hop limit"), "{text}");
    }

    #[tokio::test]
    async fn configured_values_need_no_imds() {
        let mut c = cloud(Some("http://127.0.0.1:1".into()));
        c.instance_id = Some("i-1".into());
        c.region = Some("eu-west-1".into());
        c.interface_id = Some("eni-1".into());
        let id = identity(&c).await.expect("no IMDS call");
        assert_eq!(id.interface_id, "eni-1");
    }
}
