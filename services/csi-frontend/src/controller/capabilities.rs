//! ControllerGetCapabilities: exactly what this controller implements.

use rds_proto::csi::v1::ControllerServiceCapability;
use rds_proto::csi::v1::controller_service_capability::rpc::Type;
use rds_proto::csi::v1::controller_service_capability::{Rpc, Type as CapType};

/// Implemented RPC capabilities. Not advertised: VOLUME_CONDITION (the RDS
/// reports no per-volume health) and MODIFY_VOLUME (no mutable parameters).
pub const IMPLEMENTED: [Type; 13] = [
    Type::CreateDeleteVolume,
    Type::PublishUnpublishVolume,
    Type::ListVolumes,
    Type::GetCapacity,
    Type::CreateDeleteSnapshot,
    Type::ListSnapshots,
    Type::CloneVolume,
    Type::PublishReadonly,
    Type::ExpandVolume,
    Type::ListVolumesPublishedNodes,
    Type::GetVolume,
    Type::SingleNodeMultiWriter,
    Type::GetSnapshot,
];

pub fn controller_capabilities() -> Vec<ControllerServiceCapability> {
    IMPLEMENTED
        .iter()
        .map(|t| ControllerServiceCapability {
            r#type: Some(CapType::Rpc(Rpc { r#type: *t as i32 })),
        })
        .collect()
}
