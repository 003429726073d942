//! Which resources the fake serves, described by k8s-openapi's own
//! constants (group, version, plural, kind, scope), so URL paths and kinds
//! are the real ones.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use k8s_openapi::{NamespaceResourceScope, Resource};

/// One served resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// `v1` for the core group, else `group/version`.
    pub api_version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Has a `/status` subresource: the main resource's update keeps the
    /// stored status, the subresource changes only the status.
    pub status_subresource: bool,
}

/// Whether a k8s-openapi resource lives in namespaces.
pub fn namespaced<K: Resource>() -> bool
where
    K::Scope: 'static,
{
    std::any::TypeId::of::<K::Scope>() == std::any::TypeId::of::<NamespaceResourceScope>()
}

impl ResourceType {
    pub fn of<K: Resource>() -> ResourceType
    where
        K::Scope: 'static,
    {
        ResourceType {
            api_version: K::API_VERSION.to_owned(),
            plural: K::URL_PATH_SEGMENT.to_owned(),
            kind: K::KIND.to_owned(),
            namespaced: namespaced::<K>(),
            status_subresource: false,
        }
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }
}

/// The resources the project uses.
pub fn defaults() -> Vec<ResourceType> {
    vec![
        ResourceType::of::<PersistentVolume>().with_status(),
        ResourceType::of::<PersistentVolumeClaim>().with_status(),
        ResourceType::of::<VolumeAttachment>().with_status(),
        ResourceType::of::<Lease>(),
        ResourceType::of::<Event>(),
        ResourceType::of::<CoreEvent>(),
        ResourceType::of::<Node>().with_status(),
        ResourceType::of::<CSINode>(),
        ResourceType::of::<Pod>().with_status(),
    ]
}
