//! Cursor pagination, the same for every list: `?limit=N&cursor=C` → `{items, next_cursor}`.

use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// How many items a page holds: 1 to 1000; anything else is a 400, as the document says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "usize")]
pub struct Limit(usize);

impl TryFrom<usize> for Limit {
    type Error = String;

    fn try_from(n: usize) -> Result<Limit, String> {
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(format!("limit must be from 1 to {MAX_LIMIT}, not {n}"))
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[schema(value_type = Option<usize>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One page of `items`, ordered by `key`, starting after the cursor.
pub fn paginate<T>(mut items: Vec<T>, key: impl Fn(&T) -> String, query: &PageQuery) -> Page<T> {
    items.sort_by_key(|a| key(a));
    let limit = query.limit.map_or(DEFAULT_LIMIT, |l| l.0);
    let start = match &query.cursor {
        Some(c) => items.partition_point(|i| key(i) <= *c),
        None => 0,
    };
    let mut page: Vec<T> = items.into_iter().skip(start).collect();
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(&key)
    } else {
        None
    };
    Page {
        items: page,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let items: Vec<u32> = (0..25).rev().collect();
        let key = |i: &u32| format!("{i:04}");
        let mut query = PageQuery {
            limit: Some(Limit(10)),
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = paginate(items.clone(), key, &query);
            seen.extend(page.items);
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn a_limit_is_from_1_to_1000() {
        assert!(Limit::try_from(0).is_err());
        assert_eq!(Limit::try_from(1000), Ok(Limit(1000)));
        assert!(Limit::try_from(1001).is_err());
    }
}
