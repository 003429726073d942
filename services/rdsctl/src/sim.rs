//! `rdsctl sim …`: the simulator's fault controls, through its HTTP/JSON
//! control endpoint (rds-sim `control.rs`: GET /health, GET /disks,
//! GET|POST|DELETE /faults, DELETE /faults/{id}, POST /reboot).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{FaultCmd, SimArgs, SimCmd};
use crate::error::{CtlError, Result};
use crate::http;
use crate::stack::layout::{Endpoints, Layout};
use crate::units::parse_duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn control_addr(args: &SimArgs) -> Result<SocketAddr> {
    let text = match (&args.control, &args.state_dir) {
        (Some(c), _) => c.clone(),
        (None, Some(dir)) => Endpoints::read(&Layout::new(dir)?)?.sim_control,
        (None, None) => {
            return Err(CtlError::Usage(
                "give --state-dir of a running `rdsctl up` (or --control host:port)".into(),
            ));
        }
    };
    let text = text.trim_start_matches("http://");
    text.parse()
        .map_err(|_| CtlError::Usage(format!("sim control address {text:?} is not host:port")))
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let body = body.map(Value::to_string);
    let reply = http::request(addr, method, path, body.as_deref(), DEADLINE).await?;
    if !(200..300).contains(&reply.status) {
        return Err(CtlError::SimControl(format!(
            "{method} {path}: HTTP {}: {}",
            reply.status,
            reply.body.trim()
        )));
    }
    if reply.body.trim().is_empty() {
        return Ok(Value::Null);
    }
    // /health answers plain text.
    Ok(serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body)))
}

fn print(format: crate::output::Format, v: &Value, human: String) {
    if let Err(e) = crate::output::print(format, v, || human) {
        eprintln!("rdsctl: {e}");
    }
}

pub async fn run(args: SimArgs) -> Result<()> {
    let addr = control_addr(&args)?;
    match args.cmd.clone() {
        SimCmd::Status => {
            let health = call(addr, "GET", "/health", None).await?;
            let faults = call(addr, "GET", "/faults", None).await?;
            let v =
                json!({ "control": format!("http://{addr}"), "health": health, "faults": faults });
            print(
                args.out.format(),
                &v,
                format!(
                    "sim control http://{addr}: {}\n{}",
                    health.as_str().unwrap_or("ok"),
                    fault_table(&faults)
                ),
            );
        }
        SimCmd::Disks => {
            let disks = call(addr, "GET", "/disks", None).await?;
            let human = disk_lines(&disks);
            print(args.out.format(), &disks, human);
        }
        SimCmd::Reboot { downtime } => {
            let ms = u64::try_from(downtime.as_millis()).unwrap_or(u64::MAX);
            call(addr, "POST", "/reboot", Some(&json!({ "downtime_ms": ms }))).await?;
            print(
                args.out.format(),
                &json!({ "rebooting": true, "downtime_ms": ms }),
                format!("sim rebooting: down for {downtime:?}"),
            );
        }
        SimCmd::Fault { cmd } => fault(addr, args.out.format(), cmd).await?,
    }
    Ok(())
}

/// One line a disk of the sim's `/disks` answer.
fn disk_lines(disks: &Value) -> String {
    match disks.as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|d| {
                format!(
                    "{}  {}  {} bytes  export={}  nqn={}",
                    d["slot"].as_str().unwrap_or("?"),
                    d["file_path"].as_str().unwrap_or("?"),
                    d["size"],
                    d["export"],
                    d["effective_nqn"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => "no disks".to_owned(),
    }
}

/// `rdsctl sim fault add|list|remove|clear`.
async fn fault(
    addr: std::net::SocketAddr,
    format: crate::output::Format,
    cmd: FaultCmd,
) -> Result<()> {
    match cmd {
        FaultCmd::Add {
            action,
            command,
            after,
            times,
        } => {
            let rule = fault_rule(&action, command, after, times)?;
            let v = call(addr, "POST", "/faults", Some(&rule)).await?;
            print(format, &v, format!("fault rule {} added: {rule}", v["id"]));
        }
        FaultCmd::List => {
            let v = call(addr, "GET", "/faults", None).await?;
            print(format, &v, fault_table(&v));
        }
        FaultCmd::Remove { id } => {
            call(addr, "DELETE", &format!("/faults/{id}"), None).await?;
            print(
                format,
                &json!({ "removed": id }),
                format!("fault rule {id} removed"),
            );
        }
        FaultCmd::Clear => {
            call(addr, "DELETE", "/faults", None).await?;
            print(
                format,
                &json!({ "cleared": true }),
                "fault rules cleared".to_owned(),
            );
        }
    }
    Ok(())
}

fn fault_table(v: &Value) -> String {
    match v.as_array() {
        Some(list) if !list.is_empty() => {
            let mut s = String::from("fault rules:");
            for r in list {
                let mut rule = r.clone();
                let id = rule["id"].take();
                let seen = rule["seen"].take();
                let fired = rule["fired"].take();
                if let Some(o) = rule.as_object_mut() {
                    o.remove("id");
                    o.remove("seen");
                    o.remove("fired");
                }
                s.push_str(&format!("\n  #{id}  seen {seen}  fired {fired}  {rule}"));
            }
            s
        }
        _ => "fault rules: none".to_owned(),
    }
}

/// The JSON rule the control endpoint takes, checked locally with the sim's
/// own parser first so a typo is reported here, clearly.
pub fn fault_rule(
    action: &str,
    command: Option<String>,
    after: u32,
    times: Option<u32>,
) -> Result<Value> {
    let rule = json!({
        "command": command,
        "after": after,
        "times": times,
        "action": fault_action(action)?,
    });
    rds_sim::FaultRule::from_json(&rule.to_string())
        .map_err(|e| CtlError::Usage(format!("fault {action:?}: {e}")))?;
    Ok(rule)
}

fn ms(value: &str, action: &str) -> Result<u64> {
    let d = parse_duration(value).map_err(|e| CtlError::Usage(format!("{action}: {e}")))?;
    Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn number<T: std::str::FromStr>(value: &str, action: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| CtlError::Usage(format!("{action}: {value:?} is not a number")))
}

fn fault_action(action: &str) -> Result<Value> {
    let a = action.trim();
    if a.starts_with('{') || a.starts_with('"') {
        return serde_json::from_str(a)
            .map_err(|e| CtlError::Usage(format!("fault action JSON: {e}")));
    }
    let (name, value) = match a.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (a, None),
    };
    let need = |v: Option<&'_ str>| -> Result<String> {
        v.map(str::to_owned)
            .ok_or_else(|| CtlError::Usage(format!("fault {name} needs a value: {name}=…")))
    };
    Ok(match name {
        "hang" | "drop-before-effect" | "drop-after-effect" | "disk-full" | "reject-auth"
        | "host-key-change" | "close-after-ident" => {
            if value.is_some() {
                return Err(CtlError::Usage(format!("fault {name} takes no value")));
            }
            json!(name)
        }
        "latency" | "reboot" | "handshake-delay" => {
            json!({ name: { "ms": ms(&need(value)?, name)? } })
        }
        "session-limit" => json!({ name: { "max": number::<u32>(&need(value)?, name)? } }),
        "exit-status" => {
            let v = need(value)?;
            let status = if v == "none" {
                Value::Null
            } else {
                json!(number::<u32>(&v, name)?)
            };
            json!({ name: { "status": status } })
        }
        "error-text" => json!({ name: { "text": need(value)? } }),
        "garble" => {
            let v = need(value)?;
            match v.as_str().split_once(':') {
                Some((kind @ ("truncate" | "width"), n)) => {
                    json!({ "garble": { kind: number::<usize>(n, "garble")? } })
                }
                Some(_) => {
                    return Err(CtlError::Usage(format!(
                        "garble {v:?}: only truncate:N and width:N take a number"
                    )));
                }
                None => json!({ "garble": v }),
            }
        }
        other => {
            return Err(CtlError::Usage(format!(
                "unknown fault action {other:?} (see `rdsctl sim fault add --help`)"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn actions_become_the_sims_json() {
        assert_eq!(fault_action("hang").unwrap(), json!("hang"));
        assert_eq!(
            fault_action("latency=500ms").unwrap(),
            json!({"latency": {"ms": 500}})
        );
        assert_eq!(
            fault_action("reboot=5s").unwrap(),
            json!({"reboot": {"ms": 5000}})
        );
        assert_eq!(
            fault_action("exit-status=none").unwrap(),
            json!({"exit-status": {"status": null}})
        );
        assert_eq!(
            fault_action("garble=truncate:10").unwrap(),
            json!({"garble": {"truncate": 10}})
        );
        assert_eq!(
            fault_action("garble=lf-line-endings").unwrap(),
            json!({"garble": "lf-line-endings"})
        );
        assert_eq!(
            fault_action(r#"{"latency":{"ms":1}}"#).unwrap(),
            json!({"latency": {"ms": 1}})
        );
        for bad in [
            "nope",
            "hang=1",
            "latency",
            "latency=soon",
            "session-limit=x",
            "garble=lf:1",
        ] {
            assert!(fault_action(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_are_checked_by_the_sims_parser() {
        let r = fault_rule("disk-full", Some("^/disk add".into()), 1, Some(2)).unwrap();
        assert_eq!(r["command"], "^/disk add");
        assert_eq!(r["times"], 2);
        assert!(fault_rule("garble=no-such-variant", None, 0, None).is_err());
    }
}
