//! Sizes (docs/csi.md §5): whole MiB, rounded UP (the Go driver truncated
//! 1.5 GiB to 1 GiB); CreateVolume keeps the Go driver's 1 GiB minimum when
//! the request allows it; `limit_bytes` is honoured, OUT_OF_RANGE when no
//! whole-MiB size fits.

use rds_proto::csi::v1::CapacityRange;

use crate::error::FrontendError;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// The Go driver's minimum volume (used when the request leaves room).
pub const MIN_CREATE_BYTES: u64 = GIB;
/// The Go driver's maximum volume (16 TiB).
pub const MAX_VOLUME_BYTES: u64 = 16 << 40;

pub fn round_up_mib(b: u64) -> u64 {
    b.div_ceil(MIB).saturating_mul(MIB)
}

pub fn round_down_mib(b: u64) -> u64 {
    b / MIB * MIB
}

/// `(required, limit)` as unsigned; 0 = unset. Negative → INVALID_ARGUMENT,
/// required > limit → OUT_OF_RANGE.
pub fn range(r: Option<&CapacityRange>) -> Result<(u64, u64), FrontendError> {
    let Some(r) = r else { return Ok((0, 0)) };
    let req = u64::try_from(r.required_bytes).map_err(|_| {
        FrontendError::InvalidArgument(format!("required_bytes {} is negative", r.required_bytes))
    })?;
    let lim = u64::try_from(r.limit_bytes).map_err(|_| {
        FrontendError::InvalidArgument(format!("limit_bytes {} is negative", r.limit_bytes))
    })?;
    if lim > 0 && req > lim {
        return Err(FrontendError::OutOfRange(format!(
            "required_bytes {req} is larger than limit_bytes {lim}"
        )));
    }
    Ok((req, lim))
}

/// Size for a new volume. `floor` is the size of the content source (a
/// restore or clone is never smaller than its source).
pub fn create_size(r: Option<&CapacityRange>, floor: u64) -> Result<u64, FrontendError> {
    let (req, lim) = range(r)?;
    if lim > 0 && floor > lim {
        return Err(FrontendError::OutOfRange(format!(
            "the content source is {floor} bytes, more than limit_bytes {lim}"
        )));
    }
    let need = req.max(floor);
    let mut size = round_up_mib(need.max(MIN_CREATE_BYTES));
    if lim > 0 && size > lim {
        // The 1 GiB minimum is a default, not a rule: the largest whole MiB
        // within the limit still satisfies the request.
        size = round_down_mib(lim);
        if size < need.max(1) {
            return Err(FrontendError::OutOfRange(format!(
                "no whole-MiB size between required_bytes {req} and limit_bytes {lim}"
            )));
        }
    }
    if size > MAX_VOLUME_BYTES {
        return Err(FrontendError::OutOfRange(format!(
            "{size} bytes is more than the maximum volume size {MAX_VOLUME_BYTES}"
        )));
    }
    Ok(size)
}

/// Size for ControllerExpandVolume: required (or limit) rounded up to 1 MiB.
pub fn expand_size(r: Option<&CapacityRange>) -> Result<u64, FrontendError> {
    let Some(cr) = r else {
        return Err(FrontendError::InvalidArgument(
            "capacity_range is required".into(),
        ));
    };
    let (req, lim) = range(Some(cr))?;
    let want = if req > 0 { req } else { lim };
    if want == 0 {
        return Err(FrontendError::InvalidArgument(
            "capacity_range needs required_bytes or limit_bytes".into(),
        ));
    }
    let size = round_up_mib(want);
    if lim > 0 && size > lim {
        return Err(FrontendError::OutOfRange(format!(
            "{want} bytes rounded up to whole MiB ({size}) exceeds limit_bytes {lim}"
        )));
    }
    if size > MAX_VOLUME_BYTES {
        return Err(FrontendError::OutOfRange(format!(
            "{size} bytes is more than the maximum volume size {MAX_VOLUME_BYTES}"
        )));
    }
    Ok(size)
}

/// Whether an existing volume of `size` satisfies the range (idempotent create).
pub fn fits(size: u64, r: Option<&CapacityRange>) -> bool {
    match range(r) {
        Ok((req, lim)) => size >= req && (lim == 0 || size <= lim),
        Err(_) => false,
    }
}

/// i64 for CSI messages (sizes are bounded far below i64::MAX).
pub fn to_i64(b: u64) -> i64 {
    i64::try_from(b).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cr(req: i64, lim: i64) -> CapacityRange {
        CapacityRange {
            required_bytes: req,
            limit_bytes: lim,
        }
    }

    #[test]
    fn create_rounds_up_and_keeps_the_minimum() {
        assert_eq!(create_size(None, 0).unwrap(), GIB);
        assert_eq!(create_size(Some(&cr(0, 0)), 0).unwrap(), GIB);
        assert_eq!(create_size(Some(&cr(5, 0)), 0).unwrap(), GIB);
        let g15 = GIB + GIB / 2;
        assert_eq!(create_size(Some(&cr(g15 as i64, 0)), 0).unwrap(), g15);
        assert_eq!(
            create_size(Some(&cr(GIB as i64 + 1, 0)), 0).unwrap(),
            GIB + MIB,
            "1 GiB + 1 byte rounds up to the next MiB"
        );
        let ten_t = 10u64 << 40;
        assert_eq!(
            create_size(Some(&cr(ten_t as i64 - 1, 0)), 0).unwrap(),
            ten_t
        );
    }

    #[test]
    fn create_respects_the_limit() {
        let g10 = 10 * GIB as i64;
        assert_eq!(create_size(Some(&cr(g10, g10)), 0).unwrap(), 10 * GIB);
        // Smaller than the 1 GiB default, but the limit asks for it.
        assert_eq!(
            create_size(Some(&cr(0, 512 * MIB as i64)), 0).unwrap(),
            512 * MIB
        );
        assert_eq!(
            create_size(Some(&cr(MIB as i64 + 1, 2 * MIB as i64)), 0).unwrap(),
            2 * MIB
        );
        for bad in [cr(MIB as i64 + 1, MIB as i64 + 2), cr(10, 5), cr(0, 1000)] {
            assert!(
                matches!(
                    create_size(Some(&bad), 0),
                    Err(FrontendError::OutOfRange(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            create_size(Some(&cr(-1, 0)), 0),
            Err(FrontendError::InvalidArgument(_))
        ));
        assert!(matches!(
            create_size(Some(&cr((17u64 << 40) as i64, 0)), 0),
            Err(FrontendError::OutOfRange(_))
        ));
    }

    #[test]
    fn restore_is_never_smaller_than_its_source() {
        assert_eq!(
            create_size(Some(&cr(GIB as i64, 0)), 3 * GIB).unwrap(),
            3 * GIB
        );
        assert!(matches!(
            create_size(Some(&cr(0, GIB as i64)), 3 * GIB),
            Err(FrontendError::OutOfRange(_))
        ));
    }

    #[test]
    fn expand_sizes() {
        assert_eq!(
            expand_size(Some(&cr(11 * GIB as i64, 0))).unwrap(),
            11 * GIB
        );
        assert_eq!(
            expand_size(Some(&cr(GIB as i64 + 1, 0))).unwrap(),
            GIB + MIB
        );
        assert!(matches!(
            expand_size(None),
            Err(FrontendError::InvalidArgument(_))
        ));
        assert!(matches!(
            expand_size(Some(&cr(0, 0))),
            Err(FrontendError::InvalidArgument(_))
        ));
        assert!(matches!(
            expand_size(Some(&cr(GIB as i64 + 1, GIB as i64 + 2))),
            Err(FrontendError::OutOfRange(_))
        ));
    }

    #[test]
    fn fits_is_the_csi_compatibility_rule() {
        assert!(fits(10 * GIB, Some(&cr(10 * GIB as i64, 10 * GIB as i64))));
        assert!(!fits(10 * GIB, Some(&cr(20 * GIB as i64, 20 * GIB as i64))));
        assert!(fits(10 * GIB, Some(&cr(5 * GIB as i64, 0))));
        assert!(!fits(10 * GIB, Some(&cr(0, 5 * GIB as i64))));
        assert!(fits(GIB, None));
    }
}
