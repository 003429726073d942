//! ControllerExpandVolume: grow the backing file; filesystems then need the
//! node to grow the filesystem (node_expansion_required), raw block does not.

use rds_proto::csi::v1::{ControllerExpandVolumeRequest, ControllerExpandVolumeResponse};

use super::Core;
use crate::capability;
use crate::capacity;
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::ids;

impl Core {
    pub async fn expand(
        &self,
        ctx: &CallCtx,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, FrontendError> {
        ids::required("volume_id", &req.volume_id)?;
        let size = capacity::expand_size(req.capacity_range.as_ref())?;
        let id = ids::volume("volume_id", &req.volume_id)?;
        // Without a capability the CO did not say: assume a filesystem (a
        // NodeExpandVolume on block is a no-op, a skipped resize2fs is not).
        let block = match &req.volume_capability {
            Some(c) => {
                capability::check(c)
                    .map_err(FrontendError::InvalidArgument)?
                    .block
            }
            None => false,
        };
        let _held = self.guard.volume(id.as_str())?;
        let vol = self.require_volume(ctx, &id).await?;
        let capacity = if vol.size_bytes >= size {
            // Already this big (a retry, or a no-op request): never shrink.
            vol.size_bytes
        } else {
            let grown = self.backends.expand_volume(ctx, &id, size).await?;
            tracing::info!(volume_id = %id, from = vol.size_bytes, to = grown.size_bytes, "volume expanded");
            grown.size_bytes
        };
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: capacity::to_i64(capacity),
            // Also on a retry: the resizer may not have seen the first answer,
            // and the filesystem may not have grown yet.
            node_expansion_required: !block,
        })
    }
}
