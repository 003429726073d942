//! The CSI client subcommands: build a request from flags, make one traced
//! call, print the result as text or `--json`.

pub mod controller;
pub mod info;
pub mod node;
pub mod snapshot;
pub mod volume;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cli::{AccessArgs, ClientArgs, ContextArgs};
use crate::csi::requests::Access;
use crate::csi::{Csi, Traced};
use crate::error::{CtlError, Result};
use crate::trace::ClientTracer;

/// A connected client plus how to print.
pub struct Ctx {
    pub csi: Csi,
    pub format: crate::output::Format,
    pub show_trace: bool,
}

impl Ctx {
    pub fn new(args: &ClientArgs, tracer: Arc<ClientTracer>) -> Result<Ctx> {
        let endpoint = match (&args.endpoint, &args.state_dir) {
            (Some(e), _) => e.clone(),
            (None, Some(dir)) => format!(
                "unix://{}",
                crate::stack::layout::absolute(dir)?
                    .join("csi.sock")
                    .display()
            ),
            (None, None) => {
                return Err(CtlError::Usage(
                    "give --endpoint (or $CSI_ENDPOINT) or --state-dir of a local stack".into(),
                ));
            }
        };
        Ok(Ctx {
            csi: Csi::connect(&endpoint, args.timeout, tracer)?,
            format: args.out.format(),
            show_trace: args.show_trace,
        })
    }

    /// Unwraps a call's result, printing its trace id first when asked.
    pub fn done<T>(&self, t: Traced<T>) -> Result<T> {
        if self.show_trace {
            eprintln!(
                "trace_id={} elapsed_ms={}",
                t.trace_id,
                t.elapsed.as_millis()
            );
        }
        t.result
    }

    /// Prints `value` as JSON or YAML (`-o`), or `human` as text.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        crate::output::print(self.format, value, human)
    }

    /// Prints a [`Done`] for a call whose reply carries nothing.
    pub fn print_done(
        &self,
        call: &str,
        volume_id: &str,
        node_id: Option<&str>,
        path: Option<String>,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        let done = Done {
            ok: true,
            call,
            volume_id,
            node_id,
            path,
        };
        self.print(&done, human)
    }

    /// The volume_context given with `--context` or `--context-from`, else the
    /// one ListVolumes reports (which may be empty: then `required` refuses).
    pub async fn volume_context(
        &self,
        volume_id: &str,
        given: &ContextArgs,
        required: bool,
    ) -> Result<HashMap<String, String>> {
        if !given.pairs.is_empty() {
            return crate::csi::requests::key_values(&given.pairs, "--context");
        }
        if let Some(path) = &given.context_from {
            let text = std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                CtlError::Usage(format!("--context-from {}: not JSON: {e}", path.display()))
            })?;
            if v["volume_id"].as_str().is_some_and(|id| id != volume_id) {
                return Err(CtlError::Usage(format!(
                    "--context-from {}: it describes volume {}, not {volume_id}",
                    path.display(),
                    v["volume_id"]
                )));
            }
            let ctx = v["volume_context"].as_object().ok_or_else(|| {
                CtlError::Usage(format!(
                    "--context-from {}: no volume_context object",
                    path.display()
                ))
            })?;
            return ctx
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_owned()))
                        .ok_or_else(|| {
                            CtlError::Usage(format!("--context-from: {k} is not a string"))
                        })
                })
                .collect();
        }
        let all = self.csi.all_volumes().await?;
        let ctx = all
            .into_iter()
            .filter_map(|e| e.volume)
            .find(|v| v.volume_id == volume_id)
            .map(|v| v.volume_context)
            .ok_or_else(|| {
                CtlError::Usage(format!(
                    "volume {volume_id} is not in ListVolumes of {}; pass its volume_context with --context k=v",
                    self.csi.endpoint()
                ))
            })?;
        if ctx.is_empty() && required {
            return Err(CtlError::Usage(format!(
                "ListVolumes reports no volume_context for {volume_id}; pass --context k=v or \
                 --context-from FILE (the output of `rdsctl volume create --json`)"
            )));
        }
        Ok(ctx)
    }
}

impl AccessArgs {
    pub fn access(&self) -> Access {
        Access {
            block: self.block,
            fs_type: if self.block {
                String::new()
            } else {
                self.fs_type.clone()
            },
            mount_flags: self.mount_flags.clone(),
            mode: self.access_mode,
        }
    }
}

/// `{ "ok": true, ... }` for calls whose reply carries nothing.
#[derive(Serialize)]
pub struct Done<'a> {
    pub ok: bool,
    pub call: &'a str,
    pub volume_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

pub fn size_arg(s: &str) -> Result<i64> {
    let bytes = crate::units::parse_size(s).map_err(CtlError::Usage)?;
    i64::try_from(bytes).map_err(|_| CtlError::Usage(format!("size {s:?} is too large")))
}
