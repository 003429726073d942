//! The fencing rules (docs/ARCHITECTURE.md §6) as pure functions: given the current record
//! and a request, what happens. No I/O here, so every rule is unit-tested.
//!
//! - Single-node modes hold one node; another node is refused naming the
//!   holder. There is no time-based hand-off: only a Detach, the node's
//!   disappearance or its VolumeAttachment's disappearance releases it.
//! - Multi-node modes are for block volumes only and allow two nodes (a
//!   KubeVirt live migration: source + target). A third node is refused.

use jiff::{SignedDuration, Timestamp};
use rds_bus::{NodeId, VolumeId};

use crate::error::Error;
use crate::model::{AccessMode, Migration, NodeAttachment, PvcRef, Record};

/// A validated Attach request.
#[derive(Clone, Debug)]
pub struct AttachIntent {
    pub volume: VolumeId,
    pub node: NodeId,
    pub access_mode: AccessMode,
    pub block: bool,
    pub readonly: bool,
    pub pvc: Option<PvcRef>,
    /// Already resolved: never 0.
    pub migration_timeout_secs: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AttachPlan {
    /// This node already holds the volume with the same parameters.
    Already(Record),
    /// This node holds the volume, but the record's parameters were inferred
    /// from the API: they are replaced by the request's (no events).
    Refresh(Record),
    /// Nobody holds the volume: a new record.
    Attach(Record),
    /// Second node of a multi-node volume: the migration window opens.
    StartMigration(Record),
}

/// Multi-node access is only for raw block volumes (docs/csi.md §6).
pub fn check_mode(access_mode: AccessMode, block: bool) -> Result<(), Error> {
    if access_mode.is_multi_node() && !block {
        return Err(Error::AccessModeUnsupported(format!(
            "{} is only supported for block volumes (filesystem volumes would be \
             corrupted by two writers)",
            access_mode.as_str()
        )));
    }
    Ok(())
}

pub fn plan_attach(
    current: Option<&Record>,
    want: &AttachIntent,
    now: Timestamp,
) -> Result<AttachPlan, Error> {
    check_mode(want.access_mode, want.block)?;
    let Some(cur) = current.filter(|r| !r.nodes.is_empty()) else {
        return Ok(AttachPlan::Attach(Record {
            volume: want.volume.clone(),
            nodes: vec![NodeAttachment {
                node: want.node.clone(),
                attached_at: now,
                readonly: want.readonly,
            }],
            access_mode: want.access_mode,
            block: want.block,
            pvc: want.pvc.clone(),
            migration_timeout_secs: want.migration_timeout_secs,
            migration: None,
            inferred: false,
        }));
    };

    if let Some(mine) = cur.nodes.iter().find(|n| n.node == want.node) {
        if cur.inferred && (cur.nodes.len() == 1 || want.access_mode.is_multi_node()) {
            let mut next = cur.clone();
            next.access_mode = want.access_mode;
            next.block = want.block;
            next.migration_timeout_secs = want.migration_timeout_secs;
            if next.pvc.is_none() {
                next.pvc = want.pvc.clone();
            }
            for n in next.nodes.iter_mut().filter(|n| n.node == want.node) {
                n.readonly = want.readonly;
            }
            next.inferred = false;
            return Ok(AttachPlan::Refresh(next));
        }
        if cur.access_mode != want.access_mode
            || cur.block != want.block
            || mine.readonly != want.readonly
        {
            return Err(Error::Incompatible {
                volume: want.volume.clone(),
                node: want.node.clone(),
                existing: describe(cur.access_mode, cur.block, mine.readonly),
                requested: describe(want.access_mode, want.block, want.readonly),
            });
        }
        return Ok(AttachPlan::Already(cur.clone()));
    }

    let holder = cur.nodes[0].node.clone();
    if !cur.access_mode.is_multi_node()
        || !want.access_mode.is_multi_node()
        || cur.access_mode != want.access_mode
        || !cur.block
    {
        return Err(Error::AttachedElsewhere {
            volume: want.volume.clone(),
            holder,
            mode: cur.access_mode.as_str(),
        });
    }

    if cur.nodes.len() >= 2 {
        return Err(Error::MigrationLimit {
            volume: want.volume.clone(),
            nodes: cur.node_ids(),
            hint: migration_hint(cur.migration.as_ref(), now),
        });
    }

    let mut next = cur.clone();
    next.nodes.push(NodeAttachment {
        node: want.node.clone(),
        attached_at: now,
        readonly: want.readonly,
    });
    next.migration_timeout_secs = want.migration_timeout_secs;
    next.migration = Some(Migration {
        started_at: now,
        timeout_secs: want.migration_timeout_secs,
        timed_out: false,
    });
    if next.pvc.is_none() {
        next.pvc = want.pvc.clone();
    }
    Ok(AttachPlan::StartMigration(next))
}

fn describe(mode: AccessMode, block: bool, readonly: bool) -> String {
    format!(
        "{} {}{}",
        mode.as_str(),
        if block { "block" } else { "filesystem" },
        if readonly { " readonly" } else { "" }
    )
}

fn migration_hint(m: Option<&Migration>, now: Timestamp) -> String {
    match m {
        Some(m) if m.timed_out => format!(
            "The live migration started {} ago and timed out after {}s; both nodes stay \
             attached because either may still be writing. Detach one of them to end it.",
            secs(now.duration_since(m.started_at)),
            m.timeout_secs
        ),
        Some(m) => format!(
            "Wait for the live migration to complete (started {} ago, times out after {}s).",
            secs(now.duration_since(m.started_at)),
            m.timeout_secs
        ),
        None => "Detach one of them first.".to_owned(),
    }
}

fn secs(d: SignedDuration) -> String {
    format!("{}s", d.as_secs().max(0))
}

/// What a detach of one node does to a record of two.
#[derive(Clone, Debug, PartialEq)]
pub enum MigrationOutcome {
    /// The source left: the target took over (MigrationCompleted).
    Completed {
        source: NodeId,
        target: NodeId,
        duration: SignedDuration,
    },
    /// The target left before the source: the migration was abandoned
    /// (MigrationFailed; KubeVirt deletes the target pod on failure).
    Aborted {
        source: NodeId,
        target: NodeId,
        elapsed: SignedDuration,
    },
    /// One node left after the window had already expired (MigrationFailed was
    /// posted then); this is a plain detach of that node.
    AfterTimeout { detached: NodeId },
    /// Two nodes without a migration (adopted from the API): a plain detach.
    NoMigration { detached: NodeId },
}

#[derive(Clone, Debug, PartialEq)]
pub enum DetachPlan {
    NotAttached,
    /// No node holds the volume afterwards.
    Remove {
        old: Record,
        detached: Vec<NodeId>,
    },
    /// One node is left.
    Partial {
        new: Record,
        outcome: MigrationOutcome,
    },
}

/// `node` = None detaches every node (CSI: an empty node id unpublishes the
/// volume from all nodes).
pub fn plan_detach(current: Option<&Record>, node: Option<&NodeId>, now: Timestamp) -> DetachPlan {
    let Some(cur) = current else {
        return DetachPlan::NotAttached;
    };
    let Some(node) = node else {
        return DetachPlan::Remove {
            old: cur.clone(),
            detached: cur.node_ids(),
        };
    };
    let Some(pos) = cur.nodes.iter().position(|n| &n.node == node) else {
        return DetachPlan::NotAttached;
    };
    if cur.nodes.len() == 1 {
        return DetachPlan::Remove {
            old: cur.clone(),
            detached: vec![node.clone()],
        };
    }
    let mut new = cur.clone();
    new.nodes.remove(pos);
    new.migration = None;
    let outcome = match &cur.migration {
        None => MigrationOutcome::NoMigration {
            detached: node.clone(),
        },
        Some(m) if m.timed_out => MigrationOutcome::AfterTimeout {
            detached: node.clone(),
        },
        Some(m) => {
            let source = cur.nodes[0].node.clone();
            let target = cur.nodes[1].node.clone();
            let elapsed = now.duration_since(m.started_at);
            if pos == 0 {
                MigrationOutcome::Completed {
                    source,
                    target,
                    duration: elapsed,
                }
            } else {
                MigrationOutcome::Aborted {
                    source,
                    target,
                    elapsed,
                }
            }
        }
    };
    DetachPlan::Partial { new, outcome }
}

/// The record after the migration window expired: both nodes stay attached
/// (either may still be writing — dropping one would unfence it), the
/// record is marked so no third node gets in and the failure is reported
/// once. A Detach of either node then ends the state.
pub fn expire_migration(cur: &Record, now: Timestamp) -> Option<Record> {
    let m = cur.migration.as_ref()?;
    if m.timed_out || cur.nodes.len() < 2 || now < m.deadline() {
        return None;
    }
    let mut next = cur.clone();
    if let Some(m) = next.migration.as_mut() {
        m.timed_out = true;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol() -> VolumeId {
        VolumeId::parse("pvc-1").unwrap()
    }
    fn node(n: &str) -> NodeId {
        NodeId::parse(n).unwrap()
    }
    fn intent(n: &str, mode: AccessMode, block: bool) -> AttachIntent {
        AttachIntent {
            volume: vol(),
            node: node(n),
            access_mode: mode,
            block,
            readonly: false,
            pvc: PvcRef::new("ns", "claim"),
            migration_timeout_secs: 300,
        }
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }
    fn attached(plan: Result<AttachPlan, Error>) -> Record {
        match plan.unwrap() {
            AttachPlan::Attach(r)
            | AttachPlan::StartMigration(r)
            | AttachPlan::Already(r)
            | AttachPlan::Refresh(r) => r,
        }
    }

    #[test]
    fn rwo_second_node_is_refused_naming_the_holder() {
        let r = attached(plan_attach(
            None,
            &intent("a", AccessMode::SingleNodeWriter, false),
            t(0),
        ));
        let err = plan_attach(
            Some(&r),
            &intent("b", AccessMode::SingleNodeWriter, false),
            t(1),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::AttachedElsewhere { ref holder, .. } if holder.as_str() == "a")
        );
        assert!(err.to_string().contains("node a"), "{err}");
    }

    #[test]
    fn same_node_repeat_is_idempotent_and_a_changed_flag_is_incompatible() {
        let want = intent("a", AccessMode::SingleNodeWriter, false);
        let r = attached(plan_attach(None, &want, t(0)));
        assert_eq!(
            plan_attach(Some(&r), &want, t(5)).unwrap(),
            AttachPlan::Already(r.clone())
        );
        let mut ro = want.clone();
        ro.readonly = true;
        assert!(matches!(
            plan_attach(Some(&r), &ro, t(5)),
            Err(Error::Incompatible { .. })
        ));
    }

    #[test]
    fn an_inferred_record_takes_the_holders_parameters() {
        let want = intent("a", AccessMode::SingleNodeMultiWriter, false);
        let mut r = attached(plan_attach(
            None,
            &intent("a", AccessMode::SingleNodeWriter, false),
            t(0),
        ));
        r.inferred = true;
        match plan_attach(Some(&r), &want, t(1)).unwrap() {
            AttachPlan::Refresh(n) => {
                assert_eq!(n.access_mode, AccessMode::SingleNodeMultiWriter);
                assert!(!n.inferred);
            }
            other => panic!("{other:?}"),
        }
        // Another node is still refused.
        assert!(
            plan_attach(
                Some(&r),
                &intent("b", AccessMode::SingleNodeWriter, false),
                t(1)
            )
            .is_err()
        );
    }

    #[test]
    fn rwx_filesystem_is_refused_and_block_allows_exactly_two_nodes() {
        assert!(matches!(
            plan_attach(
                None,
                &intent("a", AccessMode::MultiNodeMultiWriter, false),
                t(0)
            ),
            Err(Error::AccessModeUnsupported(_))
        ));
        let rwx = AccessMode::MultiNodeMultiWriter;
        let one = attached(plan_attach(None, &intent("a", rwx, true), t(0)));
        let two = match plan_attach(Some(&one), &intent("b", rwx, true), t(10)).unwrap() {
            AttachPlan::StartMigration(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(two.migration.as_ref().unwrap().started_at, t(10));
        let err = plan_attach(Some(&two), &intent("c", rwx, true), t(11)).unwrap_err();
        assert!(matches!(err, Error::MigrationLimit { .. }));
        assert!(err.to_string().contains("a, b"), "{err}");
    }

    #[test]
    fn rwo_request_on_an_rwx_volume_is_refused() {
        let one = attached(plan_attach(
            None,
            &intent("a", AccessMode::MultiNodeMultiWriter, true),
            t(0),
        ));
        assert!(matches!(
            plan_attach(
                Some(&one),
                &intent("b", AccessMode::SingleNodeWriter, true),
                t(1)
            ),
            Err(Error::AttachedElsewhere { .. })
        ));
    }

    fn migrating() -> Record {
        let rwx = AccessMode::MultiNodeMultiWriter;
        let one = attached(plan_attach(None, &intent("src", rwx, true), t(0)));
        attached(plan_attach(Some(&one), &intent("dst", rwx, true), t(100)))
    }

    #[test]
    fn source_detach_completes_and_target_detach_aborts() {
        let two = migrating();
        match plan_detach(Some(&two), Some(&node("src")), t(145)) {
            DetachPlan::Partial {
                new,
                outcome: MigrationOutcome::Completed { duration, .. },
            } => {
                assert_eq!(duration, SignedDuration::from_secs(45));
                assert_eq!(new.node_ids(), vec![node("dst")]);
                assert!(new.migration.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan_detach(Some(&two), Some(&node("dst")), t(120)),
            DetachPlan::Partial {
                outcome: MigrationOutcome::Aborted { .. },
                ..
            }
        ));
    }

    #[test]
    fn expiry_keeps_both_nodes_and_blocks_a_third() {
        let two = migrating();
        assert!(expire_migration(&two, t(399)).is_none());
        let expired = expire_migration(&two, t(400)).unwrap();
        assert_eq!(expired.nodes.len(), 2, "nothing is dropped on timeout");
        assert!(
            expire_migration(&expired, t(500)).is_none(),
            "reported once"
        );
        let err = plan_attach(
            Some(&expired),
            &intent("third", AccessMode::MultiNodeMultiWriter, true),
            t(500),
        )
        .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(matches!(
            plan_detach(Some(&expired), Some(&node("src")), t(501)),
            DetachPlan::Partial {
                outcome: MigrationOutcome::AfterTimeout { .. },
                ..
            }
        ));
    }

    #[test]
    fn detach_of_an_unknown_node_or_volume_is_not_attached() {
        let two = migrating();
        assert_eq!(
            plan_detach(Some(&two), Some(&node("other")), t(1)),
            DetachPlan::NotAttached
        );
        assert_eq!(
            plan_detach(None, Some(&node("a")), t(1)),
            DetachPlan::NotAttached
        );
        assert!(matches!(
            plan_detach(Some(&two), None, t(1)),
            DetachPlan::Remove { ref detached, .. } if detached.len() == 2
        ));
    }
}
