//! The network endpoints: list, create, inspect, remove, prune, connect,
//! disconnect; docker's JSON is the engine's inspect.

use std::collections::BTreeMap;

use berth_engine::network::{Endpoint, NetworkOptions};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let filters = ctx
        .query
        .filters_with(|p| berth_engine::filters::NetworkFilters::parse(p))?;
    let v = ctx
        .api
        .blocking(move |e| {
            let mut out = Vec::new();
            for n in e.networks()?.iter().filter(|n| filters.matches(n)) {
                out.push(e.network_inspect(n.name())?);
            }
            Ok(out)
        })
        .await?;
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

pub async fn inspect(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let v = ctx.api.blocking(move |e| e.network_inspect(&id)).await?;
    Ok(body::json(StatusCode::OK, &v))
}

pub async fn remove(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    ctx.api.blocking(move |e| e.network_remove(&id)).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

pub async fn prune(ctx: Ctx) -> Result<Response, ApiError> {
    let (f, _) = ctx.query.prune_filters("network", false, &[])?;
    let p = ctx.api.blocking(move |e| e.network_prune(&f)).await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"NetworksDeleted": p.networks}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    name: String,
    check_duplicate: Option<bool>,
    driver: String,
    internal: bool,
    attachable: bool,
    ingress: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    /// API 1.48; berth's bridges always carry IPv4.
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    scope: String,
    config_only: bool,
    config_from: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
    aux_address: Option<BTreeMap<String, String>>,
}

pub async fn create(mut ctx: Ctx) -> Result<Response, ApiError> {
    let opts = create_options(&ctx.json().await?)?;
    let n = ctx.api.blocking(move |e| e.network_create(&opts)).await?;
    Ok(body::json(
        StatusCode::CREATED,
        &json!({"Id": n.id, "Warning": ""}),
    ))
}

/// A create body as the engine's options; what berth cannot do is refused
/// by name.
pub(crate) fn create_options(b: &CreateBody) -> Result<NetworkOptions, ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if b.name.is_empty() {
        return bad("a network needs a Name".into());
    }
    berth_engine::network::check_driver(&b.driver)?;
    if b.ingress || b.config_only || b.config_from.is_some() {
        return bad("Ingress, ConfigOnly and ConfigFrom are not supported by berth".into());
    }
    if b.enable_ipv4 == Some(false) {
        return bad("EnableIPv4=false is not supported by berth: its networks carry IPv4".into());
    }
    if !matches!(b.scope.as_str(), "" | "local") {
        return bad(format!("network scope {:?} is not supported", b.scope));
    }
    let _ = (b.check_duplicate, b.attachable);
    let mut opts = NetworkOptions {
        name: b.name.clone(),
        internal: b.internal,
        labels: b.labels.clone(),
        ipv6: b.enable_ipv6 == Some(true),
        ..Default::default()
    };
    for (k, v) in &b.options {
        match k.as_str() {
            "com.docker.network.bridge.name" => opts.bridge = Some(v.clone()),
            _ => return bad(format!("network option {k:?} is not supported by berth")),
        }
    }
    if let Some(ipam) = &b.ipam {
        if !matches!(ipam.driver.as_str(), "" | "default")
            || ipam.options.as_ref().is_some_and(|o| !o.is_empty())
        {
            return bad("only the default IPAM driver without options is supported".into());
        }
        let cfgs = ipam.config.as_deref().unwrap_or_default();
        let (v6, v4): (Vec<&IpamConfig>, Vec<&IpamConfig>) = cfgs
            .iter()
            .partition(|c| c.subnet.contains(':') || c.gateway.contains(':'));
        if v4.len() > 1 || v6.len() > 1 {
            return bad("one IPAM config per address family is supported".into());
        }
        if cfgs
            .iter()
            .any(|c| c.aux_address.as_ref().is_some_and(|a| !a.is_empty()))
        {
            return bad("IPAM AuxAddress is not supported by berth".into());
        }
        if let Some(c) = v4.first() {
            let net = |s: &str, what: &str| -> Result<Option<berth_net::Ipv4Net>, ApiError> {
                if s.is_empty() {
                    return Ok(None);
                }
                s.parse()
                    .map(Some)
                    .map_err(|e| ApiError::bad_request(format!("invalid {what} {s:?}: {e}")))
            };
            opts.subnet = net(&c.subnet, "Subnet")?;
            opts.ip_range = net(&c.ip_range, "IPRange")?;
            if !c.gateway.is_empty() {
                opts.gateway = Some(c.gateway.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid Gateway {:?}", c.gateway))
                })?);
            }
        }
        if let Some(c) = v6.first() {
            if !opts.ipv6 {
                return bad(format!("IPv6 subnet {:?} without EnableIPv6", c.subnet));
            }
            if !c.ip_range.is_empty() {
                return bad("an IPv6 IPRange is not supported by berth".into());
            }
            if !c.subnet.is_empty() {
                opts.subnet6 = Some(c.subnet.parse().map_err(|e| {
                    ApiError::bad_request(format!("invalid Subnet {:?}: {e}", c.subnet))
                })?);
            }
            if !c.gateway.is_empty() {
                opts.gateway6 = Some(c.gateway.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid Gateway {:?}", c.gateway))
                })?);
            }
        }
    }
    Ok(opts)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<Value>,
    force: bool,
}

pub async fn connect(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let b: ConnectBody = ctx.json().await?;
    let mut ep = Endpoint {
        network: id.clone(),
        ..Default::default()
    };
    if let Some(cfg) = &b.endpoint_config {
        ep.aliases = cfg["Aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ip) = cfg["IPAMConfig"]["IPv4Address"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            ep.ip = Some(
                ip.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid IPv4Address {ip:?}")))?,
            );
        }
        if let Some(m) = cfg["MacAddress"].as_str().filter(|s| !s.is_empty()) {
            ep.mac = Some(m.to_string());
        }
        for k in ["Links", "DriverOpts"] {
            if cfg[k].as_array().is_some_and(|a| !a.is_empty())
                || cfg[k].as_object().is_some_and(|o| !o.is_empty())
            {
                return Err(ApiError::bad_request(format!(
                    "EndpointConfig.{k} is not supported by berth"
                )));
            }
        }
    }
    ctx.api
        .blocking(move |e| e.network_connect(&id, &b.container, ep))
        .await?;
    Ok(body::empty(StatusCode::OK))
}

pub async fn disconnect(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let b: ConnectBody = ctx.json().await?;
    if b.force {
        return Err(ApiError::bad_request(
            "disconnect with Force is not supported by berth yet",
        ));
    }
    ctx.api
        .blocking(move |e| e.network_disconnect(&id, &b.container))
        .await?;
    Ok(body::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CreateBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dual_stack_creates_take_a_config_per_family() {
        // What `docker network create --ipv6 --subnet 10.1.2.0/24 --subnet fd00:1::/64` sends.
        let o = create_options(&body(json!({
            "Name": "n6", "EnableIPv6": true,
            "IPAM": {"Driver": "default", "Config": [
                {"Subnet": "10.1.2.0/24"},
                {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}
            ]}
        })))
        .unwrap();
        assert!(o.ipv6);
        assert_eq!(o.subnet.unwrap().to_string(), "10.1.2.0/24");
        assert_eq!(o.subnet6.unwrap().to_string(), "fd00:1::/64");
        assert_eq!(o.gateway6.unwrap().to_string(), "fd00:1::1");
        // IPv6 alone: the IPv4 subnet comes from the pool.
        let o = create_options(&body(json!({"Name": "n", "EnableIPv6": true}))).unwrap();
        assert!(o.ipv6 && o.subnet.is_none() && o.subnet6.is_none());
        for (bad, why) in [
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "fd00:1::/64"}]}}),
                "without EnableIPv6",
            ),
            (
                json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": [
                    {"Subnet": "fd00:1::/64"}, {"Subnet": "fd00:2::/64"}]}}),
                "per address family",
            ),
            (
                json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": [
                    {"Subnet": "fd00:1::/64", "IPRange": "fd00:1::/80"}]}}),
                "IPRange",
            ),
        ] {
            let e = create_options(&body(bad)).unwrap_err();
            assert!(e.message.contains(why), "{}", e.message);
        }
    }

    #[test]
    fn host_and_null_drivers_are_forbidden_as_dockerd_does() {
        let e = create_options(&body(json!({"Name": "h", "Driver": "null"}))).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "only one instance of \"null\" network is allowed"
        );
        let e = create_options(&body(json!({"Name": "m", "Driver": "macvlan"}))).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
    }
}
