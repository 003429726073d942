//! The ownership tag (docs/decisions.md §13): every disk this driver creates
//! carries `comment="rds-csi: cluster=<id> pv=<pv> pvc=<ns>/<name>"`, so an
//! operator reading `/disk print detail` on the RDS sees which cluster and PVC
//! own it. Keys with empty values are left out; no owner, no comment. The tag
//! is information only: it never gates a delete (the Go driver's disks have
//! none).

use rds_proto::agent::VolumeOwner;
use rds_proto::common::PvcRef;
use rds_routeros::DiskComment;

use crate::error::AgentError;

/// What every tag starts with; a comment without it is someone else's.
pub const TAG_PREFIX: &str = "rds-csi:";

const MAX_VALUE: usize = rds_bus::ids::TAG_VALUE_MAX;

/// The tag grammar (`rds_ids::is_tag_value`, shared with the frontend).
fn check(what: &str, v: &str) -> Result<(), AgentError> {
    if rds_bus::ids::is_tag_value(v) {
        Ok(())
    } else {
        Err(AgentError::InvalidArgument(format!(
            "owner {what} {:?} is not [a-z0-9][a-z0-9.-]* of at most {MAX_VALUE} characters",
            v.chars().take(64).collect::<String>()
        )))
    }
}

/// The comment for `owner` (`None`: no owner or every field empty).
pub fn comment_for(owner: Option<&VolumeOwner>) -> Result<Option<DiskComment>, AgentError> {
    let Some(o) = owner else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    if !o.cluster_id.is_empty() {
        check("cluster id", &o.cluster_id)?;
        parts.push(format!("cluster={}", o.cluster_id));
    }
    if !o.pv_name.is_empty() {
        check("PV name", &o.pv_name)?;
        parts.push(format!("pv={}", o.pv_name));
    }
    if let Some(p) = o
        .pvc
        .as_ref()
        .filter(|p| !p.namespace.is_empty() || !p.name.is_empty())
    {
        // A PVC is named by both halves or not at all.
        check("PVC namespace", &p.namespace)?;
        check("PVC name", &p.name)?;
        parts.push(format!("pvc={}/{}", p.namespace, p.name));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let text = format!("{TAG_PREFIX} {}", parts.join(" "));
    DiskComment::new(&text)
        .map(Some)
        .map_err(|e| AgentError::InvalidArgument(format!("ownership tag: {e}")))
}

/// The owner a disk's comment names (`None`: no comment, or not our tag).
/// Unknown keys are skipped, so a later tag with more keys still reads.
pub fn parse(comment: Option<&str>) -> Option<VolumeOwner> {
    let rest = comment?.trim().strip_prefix(TAG_PREFIX)?;
    let mut o = VolumeOwner::default();
    for word in rest.split_whitespace() {
        match word.split_once('=') {
            Some(("cluster", v)) => o.cluster_id = v.to_owned(),
            Some(("pv", v)) => o.pv_name = v.to_owned(),
            Some(("pvc", v)) => {
                if let Some((ns, name)) = v.split_once('/') {
                    o.pvc = Some(PvcRef {
                        namespace: ns.to_owned(),
                        name: name.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn owner(c: &str, pv: &str, ns: &str, name: &str) -> VolumeOwner {
        VolumeOwner {
            cluster_id: c.into(),
            pv_name: pv.into(),
            pvc: (!ns.is_empty() || !name.is_empty()).then(|| PvcRef {
                namespace: ns.into(),
                name: name.into(),
            }),
        }
    }

    #[test]
    fn tag_round_trips_and_leaves_out_empty_keys() {
        let o = owner("home", "pvc-1", "default", "data");
        let c = comment_for(Some(&o)).unwrap().unwrap();
        assert_eq!(
            c.as_str(),
            "rds-csi: cluster=home pv=pvc-1 pvc=default/data"
        );
        assert_eq!(parse(Some(c.as_str())), Some(o));
        let only_pv = owner("", "pvc-2", "", "");
        let c = comment_for(Some(&only_pv)).unwrap().unwrap();
        assert_eq!(c.as_str(), "rds-csi: pv=pvc-2");
        assert_eq!(parse(Some(c.as_str())), Some(only_pv));
        assert_eq!(comment_for(None).unwrap(), None);
        assert_eq!(comment_for(Some(&owner("", "", "", ""))).unwrap(), None);
        assert_eq!(parse(Some("someone else's note")), None);
        assert_eq!(parse(None), None);
    }

    #[test]
    fn bad_values_are_invalid_arguments() {
        for o in [
            owner("Home", "", "", ""),
            owner("a b", "", "", ""),
            owner("", "pv\"x", "", ""),
            owner("", "", "default", ""),
            owner("", "", "ns;x", "n"),
            owner("", "", "ns", "-n"),
            owner(&"a".repeat(254), "", "", ""),
        ] {
            let e = comment_for(Some(&o)).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{o:?}");
        }
    }
}
