//! Cursor pagination, the same for every list: `?limit=N&cursor=C` → `{items, next_cursor}`.

use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
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
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
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
            limit: Some(10),
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
}
