//! Paging for ListVolumes / ListSnapshots. The token is a cursor ("the last
//! id of the previous page"), not an index: a volume created or deleted
//! between two pages neither duplicates nor skips the others. A token we did
//! not issue is ABORTED (CSI spec).

use rds_bus::VolumeId;

use crate::error::FrontendError;

const PREFIX: &str = "after:";

/// One page of `items` (sorted by `key`), plus the next token ("" = last page).
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    max_entries: i32,
    starting_token: &str,
) -> Result<(Vec<T>, String), FrontendError> {
    let max = usize::try_from(max_entries).map_err(|_| {
        FrontendError::InvalidArgument(format!("max_entries {max_entries} is negative"))
    })?;
    items.sort_by(|a, b| key(a).cmp(key(b)));
    if !starting_token.is_empty() {
        let after = parse_token(starting_token)?;
        items.retain(|i| key(i) > after);
    }
    if max == 0 || items.len() <= max {
        return Ok((items, String::new()));
    }
    items.truncate(max);
    let next = items
        .last()
        .map(|i| format!("{PREFIX}{}", key(i)))
        .unwrap_or_default();
    Ok((items, next))
}

fn parse_token(t: &str) -> Result<&str, FrontendError> {
    let bad = || FrontendError::BadToken(t.chars().take(64).collect());
    let id = t.strip_prefix(PREFIX).ok_or_else(bad)?;
    // Cursors are ids, so they follow the id grammar.
    VolumeId::parse(id).map_err(|_| bad())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).rev().map(|i| format!("v{i:02}")).collect()
    }

    #[test]
    fn pages_walk_every_item_once_in_order() {
        let (p1, t1) = page(ids(5), |s| s.as_str(), 2, "").unwrap();
        assert_eq!(p1, ["v00", "v01"]);
        let (p2, t2) = page(ids(5), |s| s.as_str(), 2, &t1).unwrap();
        assert_eq!(p2, ["v02", "v03"]);
        let (p3, t3) = page(ids(5), |s| s.as_str(), 2, &t2).unwrap();
        assert_eq!(p3, ["v04"]);
        assert_eq!(t3, "");
        let (all, t) = page(ids(5), |s| s.as_str(), 0, "").unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(t, "");
    }

    #[test]
    fn rest_after_a_token_when_unlimited() {
        let (_, t1) = page(ids(5), |s| s.as_str(), 2, "").unwrap();
        let (rest, t) = page(ids(5), |s| s.as_str(), 0, &t1).unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!(t, "");
    }

    #[test]
    fn deletions_between_pages_skip_nothing() {
        let (_, t1) = page(ids(5), |s| s.as_str(), 2, "").unwrap();
        let mut fewer = ids(5);
        fewer.retain(|s| s != "v01");
        let (p2, _) = page(fewer, |s| s.as_str(), 2, &t1).unwrap();
        assert_eq!(p2, ["v02", "v03"]);
    }

    #[test]
    fn foreign_tokens_abort_and_negative_max_is_invalid() {
        for t in ["invalid-token", "after:", "after:a b", "7"] {
            assert!(
                matches!(
                    page(ids(3), |s| s.as_str(), 0, t),
                    Err(FrontendError::BadToken(_))
                ),
                "{t}"
            );
        }
        assert!(matches!(
            page(ids(3), |s| s.as_str(), -1, ""),
            Err(FrontendError::InvalidArgument(_))
        ));
    }
}
